import express, { type Express, type RequestHandler } from 'express';
import helmet from 'helmet';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { AccountService, accountRouter } from './accounts';
import { AuditArchiver, AuditIntegrity, AuditService, type AuditWriter, auditRouter, ExportService } from './audit';
import { AccountCache, type CacheCoherence } from './cache';
import { ComplianceService, complianceRouter } from './compliance';
import { ConsentService, consentRouter } from './consent';
import { consoleRouter, integrityAlerts, type StaffSessions, StaffSignInService } from './console';
import { NoticeService, noticeRouter } from './notices';
import { openApiDocument, opsRouter } from './ops';
import type { ServiceKeys } from './platform/auth/keys';
import { TokenVerifier } from './platform/auth/tokens';
import { Semaphore } from './platform/concurrency';
import type { AppConfig } from './platform/config';
import { currentNotice } from './platform/config/catalog';
import { type Db, ping } from './platform/db/database';
import { accessLog, requestId } from './platform/http/middleware';
import { errorHandler, notFound } from './platform/http/problem';
import { createViews } from './platform/http/views';
import type { Logger } from './platform/logger';
import type { Metrics } from './platform/metrics';
import type { Queues } from './platform/queues';
import { SessionStore } from './platform/sessions';
import {
  type AccountState,
  DecisionService,
  decisionRouter,
  loadAccountStates,
  sizeOfAccountState,
  UNKNOWN_ACCOUNT,
} from './policy';
import { PortalService, type PortalSessions, portalRouter, SignInService } from './portal';
import { API_ROUTES } from './routes';
import { urlPolicy, WebhookService, webhookRouter } from './webhooks';

/** What the services run on: opened and closed by server.ts, handed to the composition here. */
export interface Infrastructure {
  readonly config: AppConfig;
  readonly db: Db;
  readonly pool: pg.Pool;
  /** Commands (sessions, rate limits): bounded timeouts. */
  readonly redis: Redis;
  readonly queues: Queues;
  readonly keys: ServiceKeys;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly clock: () => Date;
  readonly auditWriter: AuditWriter;
  /** The cache protocol of this instance (started and stopped by server.ts). */
  readonly coherence: CacheCoherence;
}

export type Services = ReturnType<typeof createServices>;

/** The composition root: every service built once, from one dependencies object each. */
export function createServices(infra: Infrastructure) {
  const { config, db, redis, queues, keys, metrics, clock, auditWriter: writer, coherence } = infra;
  const catalog = config.catalog;
  const verifier = new TokenVerifier({ keys, settings: config.auth, clock });
  // Closing an account ends its opt-ins: the consent component does it, in the import's transaction.
  const accounts = new AccountService({
    db,
    clock,
    coherence,
    lapseOnClosure: (trx, ids, now) => consents.lapseOnClosure(trx, ids, now),
  });
  const consents: ConsentService = new ConsentService({
    db,
    catalog,
    clock,
    evidenceKey: keys.evidenceKey,
    metrics,
    accounts,
    coherence,
    keys,
    receipts: {
      brand: config.brand,
      portalUrl: config.portal.baseUrl,
    },
    receiptUrl: (receiptId) => `${config.portal.baseUrl}/receipts/${receiptId}`,
  });
  const subjects = new AccountCache<AccountState>({
    coherence,
    load: (ids) => loadAccountStates(db, ids),
    absent: UNKNOWN_ACCOUNT,
    sizeOf: sizeOfAccountState,
    maxEntries: config.cache.maxEntries,
    maxBytes: config.cache.maxBytes,
    metrics,
  });
  const notices = new NoticeService({ db, catalog, clock, accounts });
  const audit = new AuditService({ db, writer, keys, clock, consentEvents: (ids) => consents.eventsByIds(ids) });
  const exports = new ExportService({ db, queues, audit, keys, clock, limits: config.exports });
  const integrity = new AuditIntegrity({
    db,
    jwks: keys.publicJwks,
    clock,
    intervalMs: config.workers.verifyIntervalMs,
    maxRecords: config.workers.verifyMaxRecords,
    checkpointIntervalMs: config.workers.checkpointIntervalMs,
  });
  const archiver = new AuditArchiver({ db, keys, clock, ...config.archive, signTreeHead: () => audit.checkpoint() });
  const decisions = new DecisionService({
    subjects,
    timeoutMs: config.db.statementTimeoutMs + 500,
    catalog,
    clock,
    metrics,
    audit: config.auditDecisions ? audit : undefined,
    batches: new Semaphore(config.batches.concurrency, config.batches.queueTimeoutMs),
    filterAllowDeclared: config.filterAllowDeclared,
  });
  const { prefix } = config.redis;
  const { idleSeconds, sessionMaxHours, tokenAudience, signInPerMinute } = config.portal;
  const sessions: PortalSessions = new SessionStore({
    redis,
    prefix,
    namespace: 'portal',
    idleMs: idleSeconds * 1000,
    maxMs: sessionMaxHours * 3_600_000,
    clock,
  });
  const signIn = new SignInService({
    redis,
    prefix,
    tokens: verifier,
    accounts,
    sessions,
    clock,
    audience: tokenAudience,
    perMinute: signInPerMinute,
  });
  const portal = new PortalService({
    catalog,
    accounts,
    consents,
    audit,
    clock,
    expiringDays: config.portal.expiringDays,
  });
  const staffSessions: StaffSessions = new SessionStore({
    redis,
    prefix,
    namespace: 'console',
    idleMs: config.console.idleSeconds * 1000,
    maxMs: config.console.sessionMaxHours * 3_600_000,
    clock,
  });
  const staffSignIn = new StaffSignInService({
    redis,
    prefix,
    tokens: verifier,
    sessions: staffSessions,
    audit,
    clock,
    audience: config.console.tokenAudience,
    perMinute: config.console.signInPerMinute,
  });
  const compliance = new ComplianceService({ accounts, consents });
  const { allowPrivate, allowList, retryScheduleMs, timeoutMs, expiringDays } = config.webhooks;
  const webhooks = new WebhookService({
    db,
    clock,
    metrics,
    logger: infra.logger,
    feed: (after, limit) => audit.webhookFeed(after, limit),
    expiringGrants: (withinMs, limit, after) => consents.grantsExpiring(withinMs, limit, after),
    expiringDays,
    policy: urlPolicy(allowPrivate, allowList),
    retryScheduleMs,
    timeoutMs,
  });
  return {
    verifier,
    accounts,
    consents,
    notices,
    subjects,
    audit,
    exports,
    integrity,
    archiver,
    decisions,
    sessions,
    signIn,
    portal,
    staffSessions,
    staffSignIn,
    compliance,
    webhooks,
  };
}

/** The HTTP surface: thin routers over the services, one error handler. */
export function createApp(infra: Infrastructure, s: Services, isShuttingDown: () => boolean): Express {
  const { config, logger, metrics, clock, keys } = infra;
  const { verifier } = s;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.http.trustProxy);
  app.set('etag', false);
  app.use(requestId, accessLog(logger, metrics), apiHeaders);

  const ops = opsRouter({
    probes: { database: () => ping(infra.db), redis: () => infra.redis.ping() },
    metrics,
    publicJwks: keys.publicJwks,
    gpcLastUpdate: (currentNotice(config.catalog, clock()) ?? config.catalog.notices[0]!).effectiveAt
      .toISOString()
      .slice(0, 10),
    openapi: openApiDocument(API_ROUTES),
    isShuttingDown,
  });
  if (!config.workers.serveApi) {
    // A worker-only instance: probes and metrics, nothing a caller or a subscriber could use.
    app.use(ops, notFound, errorHandler(logger));
    return app;
  }
  // The decision path first: it is most of the traffic.
  app.use(decisionRouter({ decisions: s.decisions, verifier }));
  app.use(ops);
  app.use(noticeRouter({ catalog: config.catalog, clock, notices: s.notices, verifier }));
  app.use(accountRouter({ accounts: s.accounts, verifier }));
  app.use(consentRouter({ consents: s.consents, verifier }));
  app.use(auditRouter({ audit: s.audit, exports: s.exports, verifier, catalog: config.catalog }));
  app.use(complianceRouter({ compliance: s.compliance, verifier }));
  app.use(webhookRouter({ webhooks: s.webhooks, verifier }));
  // Below the API's own paths, anything unknown is a problem, never a portal page.
  app.use(apiPrefixes(), notFound);
  // Pages get the full set of browser protections, and a strict policy: their own stylesheet and forms, nothing else,
  // no script at all.
  const pageHeaders = helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
      },
    },
  });
  const pageDeps = { catalog: config.catalog, brand: config.brand, pipelines: config.pipelines, clock, logger };
  app.use(
    '/console',
    pageHeaders,
    consoleRouter({
      ...pageDeps,
      signIn: s.staffSignIn,
      sessions: s.staffSessions,
      accounts: s.accounts,
      audit: s.audit,
      exports: s.exports,
      consents: s.consents,
      views: createViews(config.messages, config.brand, 'src/console/views'),
      cookieSecure: config.portal.cookieSecure,
      integrity: s.integrity,
      integrityAlerts: integrityAlerts(s.integrity, logger),
    }),
  );
  app.use(
    pageHeaders,
    portalRouter({
      ...pageDeps,
      portal: s.portal,
      signIn: s.signIn,
      sessions: s.sessions,
      views: createViews(config.messages, config.brand),
      cookieSecure: config.portal.cookieSecure,
    }),
  );

  app.use(notFound);
  app.use(errorHandler(logger));
  return app;
}

/**
 * What a JSON API response needs of the browser protections (helmet's full set is for pages): no
 * sniffing, no framing, nothing to load, no caching of answers about subscribers. Set once per
 * response, cheaply, on the hot path.
 */
const API_HEADERS: [string, string][] = [
  ['x-content-type-options', 'nosniff'],
  ['content-security-policy', "default-src 'none'; frame-ancestors 'none'"],
  ['cache-control', 'no-store'],
];
const apiHeaders: RequestHandler = (_req, res, next) => {
  for (const [name, value] of API_HEADERS) res.setHeader(name, value);
  next();
};

/** The first segment of every API path (`/v1`, `/.well-known`, `/healthz`, …), from the route table. */
function apiPrefixes(): string[] {
  return [...new Set(API_ROUTES.map((r) => `/${r.path.split('/')[1]}`))];
}
