import type { Session, SessionStore } from '../platform/sessions';
import type { StaffRole } from '../platform/vocabulary';

/** A staff member's console session (in Redis, see platform/sessions.ts). */
export type StaffSession = Session<{
  /** The identity provider's id of the staff member (`sub`). */
  readonly staffId: string;
  readonly role: StaffRole;
  /**
   * Support only: the one account this session may show, and the ticket given for it. Entering another ticket
   * replaces it: support sees one account at a time.
   */
  ticket?: { readonly accountId: string; readonly reference: string };
}>;

export type StaffSessions = SessionStore<Omit<StaffSession, 'id' | 'csrf' | 'createdAt'>>;
