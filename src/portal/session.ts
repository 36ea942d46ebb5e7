import type { Session, SessionStore } from '../platform/sessions';

/** A subscriber's portal session (in Redis, see platform/sessions.ts). */
export type PortalSession = Session<{
  readonly accountId: string;
  /** The Global Privacy Control signal was applied in this session. */
  gpcApplied?: boolean;
  /** The receipt of the last save or revoke-all, for its confirmation page (absent: nothing changed). */
  lastReceipt?: string;
}>;

export type PortalSessions = SessionStore<Omit<PortalSession, 'id' | 'csrf' | 'createdAt'>>;
