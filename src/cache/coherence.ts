import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import type { Db } from '../platform/db/database';
import type { Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';
import { withTimeout } from '../platform/timeout';
import { type ChangesSince, changesSince, type RecordedChange } from './changes.repository';

/**
 * Keeps every instance's consent cache exact. The protocol (docs/cache.md has it in full, with
 * its failure cases):
 *
 * - Lease. Each instance renews a lease in Redis every `leaseMs / 4` (a sorted set: instance →
 *   expiry, by Redis's clock). A renewal is: note the local monotonic time t0, extend the lease
 *   in Redis, then catch up from PostgreSQL (every account change committed since the previous
 *   renewal's snapshot is dropped from the cache). Only when both succeed is the cache usable,
 *   until t0 + leaseMs, and only while the invalidation subscription is up. Any failure, or a
 *   lost subscription, empties the cache at once: until a renewal succeeds again, decisions read
 *   PostgreSQL.
 * - Announcement. A write commits (with its `account_changes` rows), drops its own entries, then
 *   publishes the accounts and, in the same Redis script, reads which instances hold a lease.
 *   It answers once each of them has acknowledged (dropped the accounts and said so), or once
 *   `leaseMs` has passed since the commit: by then an instance that did not acknowledge has
 *   either renewed (and its catch-up, after the commit, saw the change) or stopped using its
 *   cache, because its last renewal began before the commit.
 *
 * An instance paused, partitioned or killed, a lost message, a Redis that hangs or dies, a writer
 * killed between its commit and its announcement: each is covered by the lease running out or by
 * the catch-up from PostgreSQL, never by hoping.
 */

export type Invalidation = readonly string[] | 'all';
export type InvalidationListener = (accounts: Invalidation) => void;

export interface CoherenceDeps {
  readonly db: Db;
  /** For commands (lease, publish, acknowledgements). */
  readonly redis: Redis;
  /** A connection of its own, in subscriber mode. */
  readonly subscriber: Redis;
  readonly prefix: string;
  readonly leaseMs: number;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

export interface Announced {
  /** Instances that acknowledged. */
  readonly acknowledged: number;
  /** Instances that held a lease and did not acknowledge in time: waited out. */
  readonly waitedOut: number;
  /** The announcement could not be published (Redis unavailable): waited out. */
  readonly unpublished: boolean;
}

/** Above this many accounts, an announcement says "every account". */
const MAX_ACCOUNTS_PER_MESSAGE = 10_000;
/** A catch-up from a snapshot older than this empties the cache instead (the change log keeps more). */
export const MAX_CATCH_UP_MS = 5 * 60_000;

const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
return now`;

/** Publishes, and returns the instances holding a lease at that moment: one atomic step. */
const ANNOUNCE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local live = redis.call('ZRANGE', KEYS[1], 0, -1)
redis.call('PUBLISH', ARGV[1], ARGV[2])
return live`;

interface Message {
  readonly id: string;
  readonly from: string;
  readonly accounts: Invalidation;
  /** The writing transaction: a catch-up that meets it again need not drop the accounts twice. */
  readonly xid?: string;
}

interface PendingAnnouncement {
  readonly waiting: Set<string>;
  readonly done: () => void;
}

export class CacheCoherence {
  readonly instanceId = randomUUID();
  private readonly listeners: InvalidationListener[] = [];
  private readonly pending = new Map<string, PendingAnnouncement>();
  /** Transactions whose invalidation arrived by message, and when: the catch-up skips them (once). */
  private readonly announced = new Map<string, number>();
  private readonly leasesKey: string;
  private readonly channel: string;
  private readonly ackChannel: string;
  /** Local monotonic time (ms) until which the cache may be used. */
  private validUntil = 0;
  private subscribed = false;
  private snapshot: string | undefined;
  private snapshotAt = 0;
  /** Counts losses: a renewal that spans one must not make the cache usable. */
  private losses = 0;
  private timer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly deps: CoherenceDeps) {
    this.leasesKey = `${deps.prefix}:cache:leases`;
    this.channel = `${deps.prefix}:cache:invalidate`;
    this.ackChannel = `${deps.prefix}:cache:ack:${this.instanceId}`;
    deps.redis.defineCommand('optgateLeaseRenew', { numberOfKeys: 1, lua: RENEW });
    deps.redis.defineCommand('optgateAnnounce', { numberOfKeys: 1, lua: ANNOUNCE });
  }

  /** True while the cache may answer: a valid lease, caught up, subscribed. */
  coherent(): boolean {
    return this.subscribed && performance.now() < this.validUntil;
  }

  /** Called with every invalidation this instance applies: from a message, a catch-up, its own write, or a loss. */
  onInvalidate(listener: InvalidationListener): void {
    this.listeners.push(listener);
  }

  /**
   * Subscribes (for acknowledgements of this instance's announcements, and for invalidations), then,
   * when `holdLease` (this instance uses its cache), renews every leaseMs / 4. Never throws: until a
   * renewal succeeds the cache is simply not used.
   */
  start(holdLease: boolean): void {
    const { subscriber } = this.deps;
    subscriber.on('message', (channel: string, text: string) => this.onMessage(channel, text));
    const resubscribe = () => {
      if (this.stopped) return;
      subscriber.subscribe(this.channel, this.ackChannel).then(
        () => {
          this.subscribed = true;
        },
        () => this.lose('subscribe failed'),
      );
    };
    // Messages published while the subscription is down are lost: the cache goes until a renewal catches up.
    subscriber.on('close', () => {
      this.subscribed = false;
      this.lose('subscription lost');
    });
    subscriber.on('ready', resubscribe);
    if (subscriber.status === 'ready') resubscribe();
    if (!holdLease) return;
    this.timer = setInterval(() => void this.renew(), Math.max(50, Math.floor(this.deps.leaseMs / 4)));
    this.timer.unref();
    void this.renew();
  }

  /** Leaves: the lease is given back, so that writers do not wait for this instance. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    await this.renewing;
    this.lose('stopped');
    for (const p of this.pending.values()) p.done();
    // Best effort, bounded: with Redis away the lease runs out by itself.
    const goodbye = Promise.all([
      this.deps.redis.zrem(this.leasesKey, this.instanceId),
      this.deps.subscriber.unsubscribe(),
    ]);
    await withTimeout(goodbye, 1000, () => new Error('redis: timeout')).catch(() => undefined);
  }

  /**
   * After a commit that changed these accounts: drop them here, tell every instance holding a
   * lease, and resolve once each has acknowledged or can no longer be using a stale entry.
   */
  async announce(change: RecordedChange): Promise<Announced> {
    const committedAt = performance.now();
    const deadline = committedAt + this.deps.leaseMs;
    const { accounts, xid } = change;
    const message: Message = {
      id: randomUUID(),
      from: this.instanceId,
      accounts: accounts !== 'all' && accounts.length > MAX_ACCOUNTS_PER_MESSAGE ? 'all' : accounts,
      ...(xid ? { xid } : {}),
    };
    this.apply(message.accounts);
    if (xid) this.announced.set(xid, committedAt);
    const waiting = new Set<string>();
    const acked = new Promise<void>((done) => this.pending.set(message.id, { waiting, done }));
    let live: string[] | undefined;
    try {
      live = await (this.deps.redis as unknown as AnnounceCommand).optgateAnnounce(
        this.leasesKey,
        this.channel,
        JSON.stringify(message),
      );
    } catch (err) {
      this.deps.logger.warn({ err: { message: (err as Error).message } }, 'cache invalidation not published');
    }
    for (const id of live ?? []) if (id !== this.instanceId) waiting.add(id);
    const total = waiting.size;
    if (live && total === 0) this.pending.get(message.id)?.done();
    let timer: NodeJS.Timeout | undefined;
    const waitedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, deadline - performance.now()));
    });
    await (live ? Promise.race([acked, waitedOut]) : waitedOut);
    clearTimeout(timer);
    this.pending.delete(message.id);
    const result: Announced = {
      acknowledged: live ? total - waiting.size : 0,
      waitedOut: live ? waiting.size : 0,
      unpublished: !live,
    };
    this.deps.metrics.cacheAnnouncements.observe(
      { outcome: !live ? 'unpublished' : waiting.size ? 'waited_out' : 'acknowledged' },
      (performance.now() - committedAt) / 1000,
    );
    return result;
  }

  private onMessage(channel: string, text: string): void {
    if (channel === this.ackChannel) {
      const [id, from] = text.split(' ');
      const p = id ? this.pending.get(id) : undefined;
      if (p && from && p.waiting.delete(from) && p.waiting.size === 0) p.done();
      return;
    }
    if (channel !== this.channel) return;
    let message: Message;
    try {
      message = JSON.parse(text) as Message;
    } catch {
      return;
    }
    if (message.from === this.instanceId) return;
    this.apply(message.accounts);
    if (message.xid) this.announced.set(message.xid, performance.now());
    this.deps.metrics.cacheInvalidations.inc({ source: 'message' });
    void this.deps.redis
      .publish(`${this.deps.prefix}:cache:ack:${message.from}`, `${message.id} ${this.instanceId}`)
      .catch(() => undefined);
  }

  private apply(accounts: Invalidation): void {
    for (const listener of this.listeners) listener(accounts);
  }

  /** The cache may hold what this instance can no longer vouch for: empty it, and stop using it until a renewal. */
  private lose(reason: string): void {
    const wasCoherent = this.validUntil > 0;
    this.losses++;
    this.validUntil = 0;
    this.snapshot = undefined;
    this.announced.clear();
    this.apply('all');
    if (wasCoherent && !this.stopped) {
      this.deps.metrics.cacheLeaseLost.inc({ reason });
      this.deps.logger.warn({ reason }, 'consent cache not in use until its lease is renewed');
    }
  }

  /**
   * Drops what changed since the last renewal, except the transactions already dropped by their
   * message (which came after their commit, so that any entry loaded since is fresh).
   */
  private catchUp(changes: ChangesSince['changes'], now: number): void {
    const accounts: string[] = [];
    let all = false;
    for (const c of changes) {
      if (this.announced.delete(c.xid)) continue;
      for (const a of c.accounts) {
        if (a === null) all = true;
        else accounts.push(a);
      }
    }
    // A message whose transaction a catch-up had already met is never met again.
    for (const [xid, at] of this.announced) if (now - at > 4 * this.deps.leaseMs) this.announced.delete(xid);
    if (all) this.apply('all');
    else if (accounts.length) this.apply(accounts);
    if (all || accounts.length) this.deps.metrics.cacheInvalidations.inc({ source: 'catch_up' });
  }

  private renew(): Promise<void> {
    this.renewing ??= this.renewOnce().finally(() => {
      this.renewing = undefined;
    });
    return this.renewing;
  }

  private async renewOnce(): Promise<void> {
    if (this.stopped || !this.subscribed) return;
    const losses = this.losses;
    const t0 = performance.now();
    const since = this.snapshot !== undefined && t0 - this.snapshotAt < MAX_CATCH_UP_MS ? this.snapshot : undefined;
    let changes: ChangesSince;
    try {
      await (this.deps.redis as unknown as RenewCommand).optgateLeaseRenew(
        this.leasesKey,
        this.instanceId,
        this.deps.leaseMs,
      );
      changes = await changesSince(this.deps.db, since);
    } catch {
      this.lose('renewal failed');
      return;
    }
    // Coherence was lost while renewing (the subscription dropped, messages may be gone): start again next time.
    if (this.stopped || !this.subscribed || losses !== this.losses) return;
    if (since === undefined) this.apply('all');
    else this.catchUp(changes.changes, t0);
    this.snapshot = changes.snapshot;
    this.snapshotAt = t0;
    this.validUntil = t0 + this.deps.leaseMs;
  }
}

interface RenewCommand {
  optgateLeaseRenew(key: string, instanceId: string, leaseMs: number): Promise<number>;
}
interface AnnounceCommand {
  optgateAnnounce(key: string, channel: string, message: string): Promise<string[]>;
}
