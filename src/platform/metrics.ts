import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from './hot-metrics';
import { withTimeout } from './timeout';

/** Prometheus metrics. Labels are bounded values (catalog ids, reasons, outcomes): never subscriber data. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'optgate_' });
  return {
    registry,
    decisions: new HotCounter({
      name: 'optgate_decisions_total',
      help: 'Account decisions by purpose, outcome and deciding reason',
      labelNames: ['purpose', 'outcome', 'reason'] as const,
      registers: [registry],
    }),
    decisionDuration: new HotHistogram({
      name: 'optgate_decision_duration_seconds',
      help: 'Time to answer a decision request, from parsed request to response',
      labelNames: ['endpoint'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    consentEvents: new Counter({
      name: 'optgate_consent_events_total',
      help: 'Consent events recorded, by kind and channel',
      labelNames: ['kind', 'channel'] as const,
      registers: [registry],
    }),
    cacheRequests: new HotCounter({
      name: 'optgate_cache_requests_total',
      help:
        'Account lookups of the decision path: hit, miss (loaded and kept), bypass (cache not ' +
        'coherent: read through)',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    cacheReads: new Counter({
      name: 'optgate_cache_reads_total',
      help:
        'Reads of PostgreSQL by the decision path (misses and bypasses): concurrent misses share one read, so ' +
        'fewer reads than misses',
      registers: [registry],
    }),
    cacheInvalidations: new Counter({
      name: 'optgate_cache_invalidations_total',
      help:
        "Invalidations applied by this instance, by source: another instance's message, or a " +
        'catch-up from PostgreSQL',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    cacheLeaseLost: new Counter({
      name: 'optgate_cache_lease_lost_total',
      help: 'Times this instance emptied its cache and stopped using it until a renewal, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    cacheAnnouncements: new Histogram({
      name: 'optgate_cache_announcement_seconds',
      help: 'From the commit of a consent or account change to every instance having dropped its entries',
      labelNames: ['outcome'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    auditCommits: new Histogram({
      name: 'optgate_audit_commit_seconds',
      help: 'Group commits of audit records (decisions): time from sending to committed',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    auditCommitRecords: new Histogram({
      name: 'optgate_audit_commit_records',
      help: 'Audit records per group commit',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 20000],
      registers: [registry],
    }),
    webhookDeliveries: new Counter({
      name: 'optgate_webhook_deliveries_total',
      help: 'Webhook delivery attempts by outcome: delivered (2xx), failed (to be retried), dead (retries used up)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    httpRequests: new HotHistogram({
      name: 'optgate_http_request_duration_seconds',
      help: 'HTTP requests by method, route pattern and status',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Gauges read at scrape time: background queue depths and the audit records waiting for their commit. */
export function registerGauges(
  metrics: Metrics,
  sources: {
    queueDepths: () => Promise<{ queue: string; state: string; count: number }[]>;
    auditPending: () => number;
    cache: () => { entries: number; bytes: number; coherent: boolean };
    /** Read from PostgreSQL: the same on every instance, whichever signs. */
    auditSigning: () => Promise<{ unsignedRecords: number; signedAt?: Date }>;
    /** This instance's periodic jobs: when each last completed, and its interval (epoch ms; ms). */
    jobs: () => { lastCompleted: ReadonlyMap<string, number>; intervals: ReadonlyMap<string, number> };
    /** Pending webhook deliveries, and the age of the oldest (read from PostgreSQL at scrape time). */
    webhooks: () => Promise<{ pending: number; oldestSeconds: number }>;
    /** The recorded verifications of the audit log (read from PostgreSQL at scrape time). */
    auditVerification?: () => Promise<VerificationState>;
  },
): void {
  if (sources.auditVerification) registerVerificationGauges(metrics, sources.auditVerification);
  // Read at scrape time, bounded: a scrape must not fail (or hang) because PostgreSQL does.
  const webhooks = () =>
    withTimeout(sources.webhooks(), 1000, () => new Error('webhook backlog: timeout')).catch(() => undefined);
  new Gauge({
    name: 'optgate_webhook_queue_depth',
    help: 'Webhook deliveries pending (not yet delivered nor dead)',
    registers: [metrics.registry],
    async collect() {
      const w = await webhooks();
      if (w) this.set(w.pending);
    },
  });
  new Gauge({
    name: 'optgate_webhook_oldest_undelivered_seconds',
    help: 'Age of the oldest pending webhook delivery (0 when none is pending)',
    registers: [metrics.registry],
    async collect() {
      const w = await webhooks();
      if (w) this.set(w.oldestSeconds);
    },
  });
  // Both audit gauges come from one read per scrape; a scrape must not fail (or hang) because PostgreSQL does.
  let signing: { at: number; read: Promise<{ unsignedRecords: number; signedAt?: Date } | undefined> } | undefined;
  const auditSigning = () => {
    if (!signing || Date.now() - signing.at > 1000) {
      const read = withTimeout(sources.auditSigning(), 1000, () => new Error('audit signing state: timeout'));
      signing = { at: Date.now(), read: read.catch(() => undefined) };
    }
    return signing.read;
  };
  new Gauge({
    name: 'optgate_audit_unsigned_records',
    help: 'Audit records no signed tree head covers yet (empty while PostgreSQL does not answer)',
    registers: [metrics.registry],
    async collect() {
      const state = await auditSigning();
      this.reset();
      if (state) this.set(state.unsignedRecords);
    },
  });
  new Gauge({
    name: 'optgate_audit_tree_head_signed_timestamp_seconds',
    help: 'When the latest tree head (checkpoint) was signed, Unix seconds; 0: none yet',
    registers: [metrics.registry],
    async collect() {
      const state = await auditSigning();
      this.reset();
      if (state) this.set(state.signedAt ? state.signedAt.getTime() / 1000 : 0);
    },
  });
  new Gauge({
    name: 'optgate_job_last_success_timestamp_seconds',
    help: 'When a job of the queue last completed on this instance, Unix seconds (none since the start: no sample)',
    labelNames: ['queue'] as const,
    registers: [metrics.registry],
    collect() {
      this.reset();
      for (const [queue, at] of sources.jobs().lastCompleted) this.set({ queue }, at / 1000);
    },
  });
  new Gauge({
    name: 'optgate_job_interval_seconds',
    help: 'The interval of each periodic job this instance runs (the expiry sweep, the signing of tree heads, …)',
    labelNames: ['queue'] as const,
    registers: [metrics.registry],
    collect() {
      this.reset();
      for (const [queue, ms] of sources.jobs().intervals) this.set({ queue }, ms / 1000);
    },
  });
  new Gauge({
    name: 'optgate_cache_entries',
    help: "Accounts held in this instance's consent cache",
    registers: [metrics.registry],
    collect() {
      this.set(sources.cache().entries);
    },
  });
  new Gauge({
    name: 'optgate_cache_bytes',
    help: "Approximate bytes held by this instance's consent cache",
    registers: [metrics.registry],
    collect() {
      this.set(sources.cache().bytes);
    },
  });
  new Gauge({
    name: 'optgate_cache_coherent',
    help: '1 while this instance answers from its cache (valid lease, caught up, subscribed); 0 while it reads through',
    registers: [metrics.registry],
    collect() {
      this.set(sources.cache().coherent ? 1 : 0);
    },
  });
  new Gauge({
    name: 'optgate_queue_jobs',
    help: 'BullMQ jobs by queue and state',
    labelNames: ['queue', 'state'] as const,
    registers: [metrics.registry],
    async collect() {
      // A scrape must not fail because Redis is down: the gauge is left empty and readiness says why.
      const depths = await sources.queueDepths().catch(() => []);
      this.reset();
      for (const d of depths) this.set({ queue: d.queue, state: d.state }, d.count);
    },
  });
  new Gauge({
    name: 'optgate_audit_pending_records',
    help: 'Decision audit records waiting for their group commit',
    registers: [metrics.registry],
    collect() {
      this.set(sources.auditPending());
    },
  });
}

type VerificationState = { lastIntact?: { finishedAt: Date }; latest?: { result: string }; openFailure?: unknown };

/** When the audit log was last verified intact, and whether the latest verification was (alerts.yml). */
function registerVerificationGauges(metrics: Metrics, source: () => Promise<VerificationState>): void {
  let cached: { at: number; read: Promise<VerificationState | undefined> } | undefined;
  const state = () => {
    if (!cached || Date.now() - cached.at > 1000) {
      const read = withTimeout(source(), 1000, () => new Error('audit verification state: timeout'));
      cached = { at: Date.now(), read: read.catch(() => undefined) };
    }
    return cached.read;
  };
  new Gauge({
    name: 'optgate_audit_verify_last_success_timestamp_seconds',
    help: 'When a verification of the audit log in the database last finished intact, Unix seconds; 0: never',
    registers: [metrics.registry],
    async collect() {
      const s = await state();
      this.reset();
      if (s) this.set(s.lastIntact ? s.lastIntact.finishedAt.getTime() / 1000 : 0);
    },
  });
  new Gauge({
    name: 'optgate_audit_verify_last_result',
    help: '1 when the latest verification of the audit log was intact and no problem found is outstanding; 0 otherwise',
    registers: [metrics.registry],
    async collect() {
      const s = await state();
      this.reset();
      if (s?.latest) this.set(s.latest.result === 'intact' && !s.openFailure ? 1 : 0);
    },
  });
}
