/** The portal component's public interface: the subscriber's web pages, server-rendered. */
export { portalRouter } from './portal.router';
export { PortalService } from './portal.service';
export type { PortalSession, PortalSessions } from './session';
export { SignInService } from './sign-in.service';
