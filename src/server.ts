import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from './app';
import { startAuditWorkers } from './audit/audit.jobs';
import { AuditService } from './audit/audit.service';
import { AuditWriter } from './audit/audit.writer';
import { ExportService } from './audit/export.service';
import { ConsentService } from './consent/consent.service';
import { startExpirySweep } from './consent/consent-expiry.job';
import { loadKeys } from './platform/auth/keys';
import { TokenVerifier } from './platform/auth/tokens';
import { Semaphore } from './platform/concurrency';
import type { AppConfig } from './platform/config';
import { createDb, ensureDatabase } from './platform/db/database';
import { migrateToLatest } from './platform/db/migrator';
import { createLogger, type Logger } from './platform/logger';
import { createMetrics, registerGauges } from './platform/metrics';
import { Queues } from './platform/queues';
import { createRedis } from './platform/redis';
import { DecisionService } from './policy/decision.service';
import type { PortalDeps } from './portal/portal.router';
import { PortalService } from './portal/portal.service';
import { createViews } from './portal/render';
import { SessionStore } from './portal/session';

export interface StartOptions {
  readonly logger?: Logger;
  /** Tests inject a clock to cross an expiry exactly; the service otherwise reads the system clock. */
  readonly clock?: () => Date;
}

export interface RunningService {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

/**
 * Starts one optgate instance: database (created and migrated), Redis, keys, HTTP and, when
 * enabled, the background workers. `close()` shuts it down gracefully.
 */
export async function startService(config: AppConfig, options: StartOptions = {}): Promise<RunningService> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const clock = options.clock ?? (() => new Date());

  await ensureDatabase(config.db.url);
  const { db, pool } = createDb(config.db, logger);
  const redis = createRedis(config.redis.url, logger, 'commands');
  const queueConnection = createRedis(config.redis.url, logger, 'queues');
  const queues = new Queues(queueConnection, config.redis.prefix, logger);
  const auditWriter = new AuditWriter(pool, clock);
  const resources = async () => {
    await queues.close();
    await auditWriter.flushed();
    redis.disconnect();
    queueConnection.disconnect();
    await db.destroy();
  };

  let server: Server | undefined;
  let shuttingDown = false;
  try {
    const migrated = await migrateToLatest(db);
    if (migrated.length) logger.info({ migrations: migrated }, 'database migrated');
    const keys = await loadKeys(config.auth, config.env);
    const verifier = new TokenVerifier(keys, config.auth);
    const metrics = createMetrics();
    registerGauges(metrics, { queueDepths: () => queues.depths(), auditPending: () => auditWriter.pending });
    const consents = new ConsentService({ db, catalog: config.catalog, clock, evidenceKey: keys.evidenceKey, metrics });
    const audit = new AuditService(db, auditWriter, keys, clock, (ids) => consents.eventsByIds(ids));
    const exportService = new ExportService(db, queues, audit, keys, clock);
    const decisions = new DecisionService({
      db,
      catalog: config.catalog,
      clock,
      metrics,
      audit: config.auditDecisions ? audit : undefined,
      batches: new Semaphore(config.batches.concurrency, config.batches.queueTimeoutMs),
    });

    const portal: PortalDeps = {
      config,
      portal: new PortalService(db, config.catalog, consents, audit, keys, clock),
      sessions: new SessionStore(
        redis,
        config.redis.prefix,
        config.portal.idleSeconds * 1000,
        config.portal.sessionMaxHours * 3_600_000,
      ),
      views: createViews(config.messages),
      redis,
      keys,
      logger,
    };
    const app = createApp({
      config,
      db,
      redis,
      keys,
      verifier,
      metrics,
      logger,
      clock,
      consents,
      decisions,
      audit,
      exportService,
      portal,
      isShuttingDown: () => shuttingDown,
    });
    if (config.workers.enabled) {
      // Not awaited: with Redis down, the workers start once it answers, while decisions, which do not
      // need Redis, are served meanwhile.
      void queues
        .ready()
        .then(async () => {
          if (queues.closed) return;
          await startExpirySweep(queues, consents, config.workers.expirySweepIntervalMs, logger);
          await startAuditWorkers(queues, audit, exportService, config.workers.checkpointIntervalMs, logger);
        })
        .catch((err: Error) => logger.error({ err: { message: err.message } }, 'background workers failed to start'));
    }

    server = await new Promise<Server>((resolve, reject) => {
      const s = app.listen(config.http.port, config.http.host, (err?: Error) => (err ? reject(err) : resolve(s)));
    });
    server.keepAliveTimeout = 65_000;
  } catch (err) {
    await resources().catch(() => undefined);
    throw err;
  }

  const port = (server.address() as AddressInfo).port;
  const url = `http://${config.http.host === '0.0.0.0' ? '127.0.0.1' : config.http.host}:${port}`;
  logger.info({ port, workers: config.workers.enabled }, 'optgate listening');

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      shuttingDown = true;
      const s = server!;
      // Stop accepting, let requests in flight finish (closing keep-alive connections as they fall
      // idle), then cut whatever is left at the deadline.
      const drained = new Promise<void>((resolve) => s.close(() => resolve()));
      const sweep = setInterval(() => s.closeIdleConnections(), 50);
      const deadline = setTimeout(() => s.closeAllConnections(), config.http.shutdownTimeoutMs);
      s.closeIdleConnections();
      await drained;
      clearInterval(sweep);
      // A handler whose caller hung up is still running: let its queries finish before the pool goes.
      const until = Date.now() + config.http.shutdownTimeoutMs;
      while ((pool.totalCount > pool.idleCount || pool.waitingCount > 0) && Date.now() < until)
        await new Promise((r) => setTimeout(r, 20));
      clearTimeout(deadline);
      await resources();
      logger.info('optgate stopped');
    })());

  return { url, port, server, close };
}
