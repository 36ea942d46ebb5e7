/** The notices component's public interface: the versioned notice texts, public, and what each channel gave. */
export { noticeRouter } from './notice.router';
export { noticeRoutes } from './notice.schema';
export { NoticeService } from './notice.service';
