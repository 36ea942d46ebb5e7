/** The compliance console's public interface: staff pages, server-rendered, under /console. */
export { CONSOLE_COOKIE, type ConsoleDeps, consoleRouter } from './console.router';
export { durationInWords, integrityAlerts } from './integrity';
export type { StaffSession, StaffSessions } from './staff-session';
export { StaffSignInError, StaffSignInService } from './staff-sign-in.service';
