import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics. Labels are bounded values (catalog ids, reasons, outcomes): never subscriber data. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'optgate_' });
  return {
    registry,
    decisions: new Counter({
      name: 'optgate_decisions_total',
      help: 'Account decisions by purpose, outcome and deciding reason',
      labelNames: ['purpose', 'outcome', 'reason'] as const,
      registers: [registry],
    }),
    decisionDuration: new Histogram({
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
    httpRequests: new Histogram({
      name: 'optgate_http_request_duration_seconds',
      help: 'HTTP requests by method, route pattern and status',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
