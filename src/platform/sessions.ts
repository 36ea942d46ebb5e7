import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * Browser sessions in Redis (the portal's and the console's), so that any instance serves any
 * of them. The cookie holds a random 256-bit id; Redis holds it only hashed. Sessions slide with
 * activity (idle timeout) and end at a fixed maximum age whatever the activity.
 */

export interface SessionBase {
  readonly id: string;
  /** Synchronizer token for every form of this session. */
  readonly csrf: string;
  readonly createdAt: number;
}

export type Session<T extends object> = SessionBase & T;

export interface SessionDeps {
  readonly redis: Redis;
  readonly prefix: string;
  /** Whose sessions: `portal`, `console` (the keys are `<prefix>:<namespace>:session:<hash>`). */
  readonly namespace: string;
  readonly idleMs: number;
  readonly maxMs: number;
  readonly clock: () => Date;
}

export class SessionStore<T extends object> {
  constructor(private readonly deps: SessionDeps) {}

  async create(data: T): Promise<Session<T>> {
    const session = { ...data, id: token(), csrf: token(), createdAt: this.now() };
    await this.save(session);
    return session;
  }

  /** The session for a cookie value, its idle timer restarted; undefined when unknown, idle too long or too old. */
  async get(id: string | undefined): Promise<Session<T> | undefined> {
    if (!id || !/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
    const raw = await this.deps.redis.get(this.key(id));
    if (!raw) return undefined;
    const session = { ...(JSON.parse(raw) as Omit<Session<T>, 'id'>), id } as Session<T>;
    if (this.now() - session.createdAt >= this.deps.maxMs) {
      await this.destroy(id);
      return undefined;
    }
    await this.deps.redis.pexpire(this.key(id), this.ttl(session));
    return session;
  }

  async save(session: Session<T>): Promise<void> {
    const { id, ...data } = session;
    await this.deps.redis.set(this.key(id), JSON.stringify(data), 'PX', this.ttl(session));
  }

  async destroy(id: string): Promise<void> {
    await this.deps.redis.del(this.key(id));
  }

  private now(): number {
    return this.deps.clock().getTime();
  }

  private ttl(session: SessionBase): number {
    return Math.max(1, Math.min(this.deps.idleMs, session.createdAt + this.deps.maxMs - this.now()));
  }

  private key(id: string): string {
    return `${this.deps.prefix}:${this.deps.namespace}:session:${hashed(id, 64)}`;
  }
}

const token = () => randomBytes(32).toString('base64url');

/** A SHA-256 of a value, hex, cut to `length` characters: Redis keys never hold the value itself. */
export const hashed = (value: string, length = 32) => createHash('sha256').update(value).digest('hex').slice(0, length);

/** A form's CSRF token against the session's, in constant time. */
export function sameToken(a: string | undefined, b: string): boolean {
  if (typeof a !== 'string') return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A fixed-window counter shared by every instance. False once `limit` is reached within the window. */
export async function underLimit(redis: Redis, key: string, limit: number, windowMs: number): Promise<boolean> {
  const [[, count]] = (await redis.multi().incr(key).pexpire(key, windowMs, 'NX').exec()) as [[Error | null, number]];
  return count <= limit;
}

/** Sign-in links are single use: true the first time a token id is seen, for as long as the token would live. */
export async function firstUse(redis: Redis, key: string, ttlMs: number): Promise<boolean> {
  return (await redis.set(key, '1', 'PX', Math.max(1, ttlMs), 'NX')) === 'OK';
}
