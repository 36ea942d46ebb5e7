import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * Portal sessions in Redis, so that any instance serves any subscriber. The cookie holds a
 * random 256-bit id; Redis holds it only hashed. Sessions slide with activity (idle timeout)
 * and end at a fixed maximum age whatever the activity.
 */

export interface PortalSession {
  readonly id: string;
  readonly accountId: string;
  /** Synchronizer token for every form of this session. */
  readonly csrf: string;
  readonly createdAt: number;
  /** The Global Privacy Control signal was applied in this session. */
  gpcApplied?: boolean;
  /** The receipt of the last save or revoke-all, for its confirmation page (absent: nothing changed). */
  lastReceipt?: string;
}

export interface SessionDeps {
  readonly redis: Redis;
  readonly prefix: string;
  readonly idleMs: number;
  readonly maxMs: number;
  readonly clock: () => Date;
}

export class SessionStore {
  constructor(private readonly deps: SessionDeps) {}

  async create(accountId: string): Promise<PortalSession> {
    const session: PortalSession = { id: token(), accountId, csrf: token(), createdAt: this.now() };
    await this.save(session);
    return session;
  }

  /** The session for a cookie value, its idle timer restarted; undefined when unknown, idle too long or too old. */
  async get(id: string | undefined): Promise<PortalSession | undefined> {
    if (!id || !/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
    const raw = await this.deps.redis.get(this.key(id));
    if (!raw) return undefined;
    const session = { ...(JSON.parse(raw) as Omit<PortalSession, 'id'>), id };
    if (this.now() - session.createdAt >= this.deps.maxMs) {
      await this.destroy(id);
      return undefined;
    }
    await this.deps.redis.pexpire(this.key(id), this.ttl(session));
    return session;
  }

  async save(session: PortalSession): Promise<void> {
    const { id, ...data } = session;
    await this.deps.redis.set(this.key(id), JSON.stringify(data), 'PX', this.ttl(session));
  }

  async destroy(id: string): Promise<void> {
    await this.deps.redis.del(this.key(id));
  }

  private now(): number {
    return this.deps.clock().getTime();
  }

  private ttl(session: PortalSession): number {
    return Math.max(1, Math.min(this.deps.idleMs, session.createdAt + this.deps.maxMs - this.now()));
  }

  private key(id: string): string {
    return `${this.deps.prefix}:portal:session:${createHash('sha256').update(id).digest('hex')}`;
  }
}

const token = () => randomBytes(32).toString('base64url');

export function sameToken(a: string | undefined, b: string): boolean {
  if (typeof a !== 'string') return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
