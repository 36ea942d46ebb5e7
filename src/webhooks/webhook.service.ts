import { randomBytes, randomUUID } from 'node:crypto';
import { appendWithin, staffActionRecord, type WebhookFeedItem } from '../audit';
import type { ExpiringGrant } from '../consent';
import type { Db } from '../platform/db/database';
import { AppError, validationError } from '../platform/errors';
import type { Logger } from '../platform/logger';
import type { Metrics } from '../platform/metrics';
import { encodeCursor, keysetPage } from '../platform/pagination';
import { type DeliveryBody, eventOf, type WebhookEvent } from './events';
import { send } from './sender';
import { checkReceiverUrl, type UrlPolicy, UrlRefused } from './url-guard';
import * as repo from './webhook.repository';
import type { DeliveryStatus, WebhookDeliveryRow, WebhookEndpointRow } from './webhook.table';

export interface WebhookDeps {
  readonly db: Db;
  readonly clock: () => Date;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** The audit component's feed of consent events and account closures, in chain order (injected). */
  readonly feed: (afterSeq: number, limit: number) => Promise<{ items: WebhookFeedItem[]; next: number }>;
  /** The consent component's grants in force that end within `withinMs`, a page at a time (injected). */
  readonly expiringGrants: (withinMs: number, limit: number, after?: ExpiringGrant) => Promise<ExpiringGrant[]>;
  /** `consent.expiring` goes out this many days before a grant's term ends. */
  readonly expiringDays: number;
  readonly policy: UrlPolicy;
  /** Waits before each retry; an attempt after the last of them that fails makes the delivery dead. */
  readonly retryScheduleMs: readonly number[];
  readonly timeoutMs: number;
}

export interface EndpointInput {
  readonly url: string;
  readonly events: readonly WebhookEvent[];
  readonly description?: string;
}

const FEED_PAGE = 500;
/** Endpoints attempted at once by one run of the delivery job. */
const PARALLEL_ENDPOINTS = 16;
/** Deliveries one endpoint may take in a row in one run, while it answers: a backlog drains without waiting a tick. */
const BURST = 100;

const endpointView = (r: WebhookEndpointRow) => ({
  id: r.id,
  url: r.url,
  events: r.events,
  description: r.description,
  createdAt: r.created_at.toISOString(),
});

const deliveryView = (r: WebhookDeliveryRow) => ({
  id: r.id,
  event: r.event,
  seq: r.feed_seq === null ? null : Number(r.feed_seq),
  status: r.status,
  attempts: r.attempts,
  lastStatus: r.last_status,
  lastError: r.last_error,
  nextAttemptAt: r.status === 'pending' ? r.next_attempt_at.toISOString() : null,
  createdAt: r.created_at.toISOString(),
  completedAt: r.completed_at?.toISOString() ?? null,
});

/** `whsec_` + base64 of 32 random bytes: the form Standard Webhooks libraries take. */
const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

export class WebhookService {
  constructor(private readonly deps: WebhookDeps) {}

  /** Registers a receiver; the answer holds the secret, shown this once. */
  async create(clientId: string, input: EndpointInput) {
    try {
      await checkReceiverUrl(input.url, this.deps.policy);
    } catch (err) {
      if (err instanceof UrlRefused) throw validationError([{ path: 'url', message: err.message }]);
      throw err;
    }
    const now = this.deps.clock();
    const events = [...new Set(input.events)];
    const id = randomUUID();
    // A new place consent events go to: on the audit log, in the transaction that registers it.
    const row = await this.deps.db.transaction().execute(async (trx) => {
      const inserted = await repo.insertEndpoint(trx, {
        id,
        client_id: clientId,
        url: input.url,
        events,
        description: input.description ?? '',
        secret: newSecret(),
        created_at: now,
        deleted_at: null,
      });
      const action = { action: 'webhook_registered' as const, actor: clientId, webhookId: id, url: input.url, events };
      await appendWithin(trx, [staffActionRecord(action)], now);
      return inserted;
    });
    return { ...endpointView(row), secret: row.secret };
  }

  async list(clientId: string) {
    return { webhooks: (await repo.findClientEndpoints(this.deps.db, clientId)).map(endpointView) };
  }

  async get(clientId: string, id: string) {
    return endpointView(await this.endpoint(clientId, id));
  }

  /** Stops deliveries to the endpoint (pending ones are not attempted); its deliveries stay listed. */
  async remove(clientId: string, id: string): Promise<void> {
    const now = this.deps.clock();
    await this.deps.db.transaction().execute(async (trx) => {
      if (!(await repo.markEndpointDeleted(trx, clientId, id, now))) throw notFound();
      await appendWithin(trx, [staffActionRecord({ action: 'webhook_deleted', actor: clientId, webhookId: id })], now);
    });
  }

  /** Queues a `webhook.test` delivery: it goes the way every delivery goes, behind those already pending. */
  async test(clientId: string, id: string) {
    const endpoint = await this.endpoint(clientId, id);
    const now = this.deps.clock();
    const data = { endpointId: endpoint.id, message: 'A test event, sent on request.' };
    const delivery = newDelivery(endpoint.id, 'webhook.test', null, now.toISOString(), data, now);
    await repo.insertDeliveries(this.deps.db, [delivery]);
    return { deliveryId: delivery.id, status: 'pending' as const };
  }

  async deliveries(clientId: string, id: string, o: { beforeSeq?: number; status?: DeliveryStatus; limit: number }) {
    const endpoint = await this.endpoint(clientId, id);
    const page = await keysetPage(o.limit, (limit) => repo.findDeliveries(this.deps.db, endpoint.id, { ...o, limit }));
    return {
      deliveries: page.items.map(deliveryView),
      nextCursor: page.next ? encodeCursor(page.next.seq) : null,
    };
  }

  /** Puts a dead (or delivered) delivery back as pending: attempted again, with a fresh set of retries. */
  async replay(clientId: string, id: string, deliveryId: string) {
    const endpoint = await this.endpoint(clientId, id);
    const row = await repo.requeueDelivery(this.deps.db, endpoint.id, deliveryId, this.deps.clock());
    if (row) return deliveryView(row);
    if (await repo.findDelivery(this.deps.db, endpoint.id, deliveryId)) {
      throw new AppError('conflict', 'The delivery is still pending: it is attempted already.');
    }
    throw notFound('No such delivery.');
  }

  /**
   * The dispatcher (a job): reads the feed from the stored cursor and, in the transaction that moves the cursor,
   * creates one delivery per matching live endpoint, in feed order. A crash before the commit loses nothing (the
   * cursor did not move); two instances cannot both move it (the update checks where it was).
   */
  async dispatch(maxPages = 20): Promise<number> {
    let created = 0;
    for (let page = 0; page < maxPages; page++) {
      const after = await repo.readCursor(this.deps.db);
      const { items, next } = await this.deps.feed(after, FEED_PAGE);
      if (next === after) break;
      const n = await this.fanOut(after, items, next).catch((err: unknown) => {
        if (err instanceof CursorMoved) return undefined;
        throw err;
      });
      // Another instance is dispatching: it carries on.
      if (n === undefined) break;
      created += n;
    }
    return created;
  }

  private fanOut(after: number, items: readonly WebhookFeedItem[], next: number): Promise<number> {
    return this.deps.db.transaction().execute(async (trx) => {
      const endpoints = await repo.findLiveEndpoints(trx);
      const now = this.deps.clock();
      const rows: repo.NewDelivery[] = [];
      for (const item of items) {
        const e = eventOf(item);
        if (!e) continue;
        for (const endpoint of endpoints) {
          if (!endpoint.events.includes(e.event)) continue;
          rows.push(newDelivery(endpoint.id, e.event, item.seq, item.occurredAt, e.data, now));
        }
      }
      if (!(await repo.advanceCursor(trx, after, next))) throw new CursorMoved();
      await repo.insertDeliveries(trx, rows);
      return rows.length;
    });
  }

  /**
   * The `consent.expiring` job: every grant in force whose term ends within `expiringDays` and that was not announced
   * yet is announced once, to the live endpoints that subscribe to it (a renewal is a new consent: announced again).
   * While no endpoint subscribes, nothing is marked, so that the first one to subscribe hears of every grant then in
   * the window.
   */
  async announceExpiring(pageSize = 500): Promise<number> {
    const { db, clock, expiringDays } = this.deps;
    const subscribed = (await repo.findLiveEndpoints(db)).some((e) => e.events.includes('consent.expiring'));
    if (!subscribed) return 0;
    let announced = 0;
    let after: ExpiringGrant | undefined;
    for (;;) {
      const grants = await this.deps.expiringGrants(expiringDays * 86_400_000, pageSize, after);
      const known = await repo.findAnnounced(
        db,
        grants.map((g) => g.consentId),
      );
      const fresh = grants.filter((g) => !known.has(g.consentId));
      if (fresh.length) {
        announced += await db.transaction().execute(async (trx) => {
          const now = clock();
          const marked = await repo.markAnnounced(
            trx,
            fresh.map((g) => g.consentId),
            now,
          );
          const endpoints = (await repo.findLiveEndpoints(trx)).filter((e) => e.events.includes('consent.expiring'));
          const rows = fresh
            .filter((g) => marked.has(g.consentId))
            .flatMap((g) => endpoints.map((e) => expiringDelivery(e.id, g, now)));
          await repo.insertDeliveries(trx, rows);
          return marked.size;
        });
      }
      if (grants.length < pageSize) return announced;
      after = grants[grants.length - 1];
    }
  }

  /**
   * The delivery job: attempts each endpoint's oldest pending delivery, when due. Only the oldest is ever attempted,
   * so an endpoint gets its events in feed order; a dead delivery no longer holds the ones after it.
   */
  async deliverDue(): Promise<number> {
    const now = this.deps.clock();
    const heads = await repo.findDueHeads(this.deps.db, now, PARALLEL_ENDPOINTS);
    const counts = await Promise.all(heads.map((h) => this.drain(h.endpoint_id, h.id)));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** Attempts the endpoint's head, and while it is delivered, the next one, in order, up to BURST. */
  private async drain(endpointId: string, firstId: string): Promise<number> {
    let attempted = 0;
    for (let id: string | undefined = firstId; id && attempted < BURST; ) {
      const outcome = await this.attempt(id);
      if (outcome === 'not-claimed') break;
      attempted++;
      // After a failure the endpoint waits for its retry; after a death it goes on with the next one next run.
      if (outcome !== 'delivered') break;
      id = await repo.findEndpointHead(this.deps.db, endpointId, this.deps.clock());
    }
    return attempted;
  }

  private async attempt(id: string): Promise<'delivered' | 'failed' | 'dead' | 'not-claimed'> {
    const { db, clock, retryScheduleMs, timeoutMs, policy, metrics } = this.deps;
    const now = clock();
    const claimed = await repo.claimDelivery(db, id, now, new Date(now.getTime() + timeoutMs + 5_000));
    if (!claimed) return 'not-claimed';
    const stored = claimed.payload as Omit<DeliveryBody, 'id'>;
    const body = JSON.stringify({ id: claimed.id, ...stored });
    const result = await send(
      { url: claimed.url, secret: claimed.secret, id: claimed.id, body, now },
      policy,
      timeoutMs,
    );
    const attempts = claimed.attempts + 1;
    const done = clock();
    if (result.ok) {
      await repo.recordAttempt(db, id, {
        status: 'delivered',
        attempts,
        lastStatus: result.status,
        lastError: null,
        nextAttemptAt: done,
        completedAt: done,
      });
      metrics.webhookDeliveries.inc({ outcome: 'delivered' });
      return 'delivered';
    }
    const wait = retryScheduleMs[attempts - 1];
    const dead = wait === undefined;
    await repo.recordAttempt(db, id, {
      status: dead ? 'dead' : 'pending',
      attempts,
      lastStatus: result.status,
      lastError: result.error,
      nextAttemptAt: new Date(done.getTime() + (wait ?? 0)),
      completedAt: dead ? done : null,
    });
    metrics.webhookDeliveries.inc({ outcome: dead ? 'dead' : 'failed' });
    // The endpoint and delivery ids only: the URL may carry a token of the receiver's.
    if (dead) this.deps.logger.warn({ deliveryId: id, endpointId: claimed.endpoint_id, attempts }, 'webhook dead');
    return dead ? 'dead' : 'failed';
  }

  /** For /metrics: pending deliveries and the age of the oldest. */
  async pendingSummary(): Promise<{ pending: number; oldestSeconds: number }> {
    const { pending, oldest } = await repo.pendingSummary(this.deps.db);
    const oldestSeconds = oldest ? Math.max(0, (this.deps.clock().getTime() - oldest.getTime()) / 1000) : 0;
    return { pending, oldestSeconds };
  }

  private async endpoint(clientId: string, id: string): Promise<WebhookEndpointRow> {
    const row = await repo.findEndpoint(this.deps.db, clientId, id);
    if (!row) throw notFound();
    return row;
  }
}

/** A new delivery, pending now: the body every delivery carries, `{type, seq, timestamp, data}`. */
function newDelivery(
  endpointId: string,
  event: string,
  seq: number | null,
  timestamp: string,
  data: unknown,
  now: Date,
): repo.NewDelivery {
  return {
    id: randomUUID(),
    endpoint_id: endpointId,
    event,
    feed_seq: seq === null ? null : String(seq),
    payload: JSON.stringify({ type: event, seq, timestamp, data }),
    next_attempt_at: now,
    created_at: now,
    last_status: null,
    last_error: null,
    locked_until: null,
    completed_at: null,
  };
}

function expiringDelivery(endpointId: string, g: ExpiringGrant, now: Date): repo.NewDelivery {
  const data = {
    accountId: g.accountId,
    purpose: g.purpose,
    category: g.category,
    kind: 'expiring',
    eventId: g.consentId,
    occurredAt: now.toISOString(),
    expiresAt: g.expiresAt,
    ...(g.recipients ? { recipients: g.recipients } : {}),
  };
  return newDelivery(endpointId, 'consent.expiring', null, now.toISOString(), data, now);
}

/** Another instance moved the cursor first: this page is theirs (the transaction rolls back). */
class CursorMoved extends Error {}

const notFound = (detail = 'No such webhook.') => new AppError('not-found', detail);
