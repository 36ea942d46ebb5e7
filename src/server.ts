import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createApp, createServices, type Infrastructure } from './app';
import { AuditWriter, auditJobs } from './audit';
import { CacheCoherence, cacheJobs } from './cache';
import { consentJobs } from './consent';
import { loadKeys } from './platform/auth/keys';
import type { AppConfig } from './platform/config';
import { createDb } from './platform/db/database';
import { prepareDatabase } from './platform/db/roles';
import { AppError } from './platform/errors';
import { problemDocument } from './platform/http/problem';
import { createLogger, type Logger } from './platform/logger';
import { createMetrics, registerGauges } from './platform/metrics';
import { Queues } from './platform/queues';
import { createRedis } from './platform/redis';
import { webhookJobs } from './webhooks';

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
 * Starts one optgate instance: its infrastructure (database created and migrated, Redis, keys),
 * the services and HTTP, and, when enabled, the background workers. `close()` stops it gracefully.
 */
export async function startService(config: AppConfig, options: StartOptions = {}): Promise<RunningService> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const infra = await openInfrastructure(config, logger, options.clock ?? (() => new Date()));
  let shuttingDown = false;
  let server: Server;
  try {
    const { metrics, queues, auditWriter, coherence, db, clock } = infra.infrastructure;
    const services = createServices(infra.infrastructure);
    const { subjects, webhooks } = services;
    registerGauges(metrics, {
      queueDepths: () => queues.depths(),
      auditPending: () => auditWriter.pending,
      cache: () => ({ entries: subjects.entries, bytes: subjects.bytes, coherent: coherence.coherent() }),
      auditSigning: () => services.audit.signingState(),
      jobs: () => ({ lastCompleted: queues.lastCompleted, intervals: queues.intervals }),
      webhooks: () => webhooks.pendingSummary(),
      auditVerification: () => services.integrity.state(),
    });
    // A worker-only instance answers no decisions: it holds no cache and no lease.
    coherence.start(config.cache.enabled && config.workers.serveApi);
    const app = createApp(infra.infrastructure, services, () => shuttingDown);
    if (config.workers.enabled) {
      const { audit, exports, archiver, consents, integrity } = services;
      const { checkpointIntervalMs, expirySweepIntervalMs, verifyIntervalMs, rollupIntervalMs } = config.workers;
      // A run stopped by its bound continues after a pause as long as it ran (once per point: the job id).
      const verifyAgain = (afterSeq: number, delayMs: number) =>
        queues
          .queue('audit-verify')
          .add(
            'audit-verify-continue',
            { scheduledBy: 'manual' },
            { jobId: `continue-after-${afterSeq}`, delay: delayMs },
          );
      startWorkers(infra.infrastructure, [
        ...consentJobs({ consents, logger, expirySweepIntervalMs }),
        ...auditJobs({
          audit,
          exports,
          archiver,
          logger,
          checkpointIntervalMs,
          expirySweepIntervalMs,
          integrity,
          verifyIntervalMs,
          verifyAgain,
          rollupIntervalMs,
        }),
        ...cacheJobs({ db, logger, clock }),
        ...webhookJobs({ webhooks, logger, ...config.webhooks }),
      ]);
    }
    server = await listen(app, config.http);
  } catch (err) {
    await infra.close().catch(() => undefined);
    throw err;
  }

  const port = (server.address() as AddressInfo).port;
  const url = `http://${config.http.host === '0.0.0.0' ? '127.0.0.1' : config.http.host}:${port}`;
  logger.info({ port, workers: config.workers.enabled, api: config.workers.serveApi }, 'optgate listening');

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      shuttingDown = true;
      // First give the cache lease back: writers elsewhere need not wait for an instance that is leaving.
      await infra.infrastructure.coherence.stop();
      await drain(server, infra.infrastructure.pool, config.http.shutdownTimeoutMs);
      await infra.close();
      logger.info('optgate stopped');
    })());
  return { url, port, server, close };
}

/** Opens what the services run on; `close()` lets queued work and audit records finish, then closes it all. */
async function openInfrastructure(config: AppConfig, logger: Logger, clock: () => Date) {
  const { runtimeUrl, migrated } = await prepareDatabase({ ...config.db, env: config.env }, logger);
  if (migrated.length) logger.info({ migrations: migrated }, 'database migrated');
  const { db, pool } = createDb({ ...config.db, url: runtimeUrl }, logger);
  const redis = createRedis(config.redis, logger, 'commands');
  const subscriber = createRedis(config.redis, logger, 'subscriber');
  const queueConnection = createRedis(config.redis, logger, 'queues');
  const queues = new Queues(queueConnection, config.redis.prefix, logger);
  const metrics = createMetrics();
  const auditWriter = new AuditWriter({ pool, clock, metrics, timeoutMs: config.db.statementTimeoutMs + 500 });
  let coherence: CacheCoherence | undefined;
  const close = async () => {
    await coherence?.stop();
    await queues.close();
    await auditWriter.flushed();
    redis.disconnect();
    subscriber.disconnect();
    queueConnection.disconnect();
    await db.destroy();
  };
  try {
    const keys = await loadKeys(config.auth, config.env);
    const { prefix } = config.redis;
    coherence = new CacheCoherence({ db, redis, subscriber, prefix, leaseMs: config.cache.leaseMs, logger, metrics });
    const infrastructure: Infrastructure = {
      config,
      db,
      pool,
      redis,
      queues,
      keys,
      metrics,
      logger,
      clock,
      auditWriter,
      coherence,
    };
    return { infrastructure, close };
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
}

/**
 * Not awaited: with Redis down, the workers start once it answers, while decisions, which do not
 * need Redis, are served meanwhile.
 */
function startWorkers({ queues, logger }: Infrastructure, jobs: Parameters<Queues['start']>[0][]): void {
  void queues
    .ready()
    .then(async () => {
      for (const job of jobs) if (!queues.closed) await queues.start(job);
    })
    .catch((err: Error) => logger.error({ err: { message: err.message } }, 'background workers failed to start'));
}

async function listen(app: ReturnType<typeof createApp>, http: AppConfig['http']): Promise<Server> {
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(http.port, http.host, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  server.keepAliveTimeout = 65_000;
  server.on('clientError', answerClientError);
  return server;
}

/**
 * A request Node's parser refuses before express sees it (headers over the size limit, a
 * malformed request line) still gets a problem+json answer, not Node's bare status line.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable || !err.code?.startsWith('HPE_')) {
    socket.destroy();
    return;
  }
  const problem =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new AppError('headers-too-large', 'The request headers are larger than this service accepts (16 KiB).')
      : new AppError('bad-request', 'The request is malformed.');
  const body = JSON.stringify(problemDocument(problem, randomUUID()));
  const head = [
    `HTTP/1.1 ${problem.status} ${problem.title}`,
    'content-type: application/problem+json',
    `content-length: ${Buffer.byteLength(body)}`,
    'connection: close',
  ];
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}

/**
 * Stops accepting, lets requests in flight finish (closing keep-alive connections as they fall
 * idle), then cuts whatever is left at the deadline; then waits for handlers whose caller hung up
 * to finish their queries before the pool goes.
 */
async function drain(server: Server, pool: Infrastructure['pool'], timeoutMs: number): Promise<void> {
  const drained = new Promise<void>((resolve) => server.close(() => resolve()));
  const sweep = setInterval(() => server.closeIdleConnections(), 50);
  const deadline = setTimeout(() => server.closeAllConnections(), timeoutMs);
  server.closeIdleConnections();
  await drained;
  clearInterval(sweep);
  const until = Date.now() + timeoutMs;
  while ((pool.totalCount > pool.idleCount || pool.waitingCount > 0) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 20));
  }
  clearTimeout(deadline);
}
