/** The notices component's public interface: the versioned notice texts, public. */
export { noticeRouter } from './notice.router';
export { noticeRoutes } from './notice.schema';
