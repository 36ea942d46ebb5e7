import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { adminToken, createAccount, decide } from '../support/fixtures';
import { call, startTestService, type TestService } from '../support/harness';

/**
 * The Grafana dashboard and the Prometheus alert rules name only metrics a running service exports: a renamed or
 * removed metric breaks this test, not a dashboard nobody looks at until the night it is needed.
 */

/** Metrics of work still being built (webhook delivery). Once it has landed, this list is empty. */

/** Grafana's reference to the data source variable (a Grafana placeholder, not a template string). */
const GRAFANA_DATASOURCE = '$' + '{DS_PROMETHEUS}';

const root = path.join(__dirname, '../..');
const dashboard = JSON.parse(readFileSync(path.join(root, 'config/grafana/optgate.json'), 'utf8'));
const rules = parseYaml(readFileSync(path.join(root, 'config/prometheus/alerts.yml'), 'utf8')) as {
  groups: { name: string; rules: Record<string, any>[] }[];
};

interface Panel {
  type: string;
  title?: string;
  targets?: { expr?: string }[];
}
const queryPanels = (): Panel[] => (dashboard.panels as Panel[]).filter((p) => p.type !== 'row');
const dashboardExprs = () => queryPanels().flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
const ruleExprs = () => rules.groups.flatMap((g) => g.rules.map((r) => String(r.expr)));

/** The PromQL functions, aggregations and operators the two files use: any other word is taken for a metric. */
const PROMQL_WORDS = new Set(['sum', 'max', 'rate', 'histogram_quantile', 'time', 'clamp_min', 'vector', 'absent']);
const PROMQL_OPERATORS = new Set(['and', 'or', 'unless', 'bool']);

/** The metric names in a PromQL expression: strings, label matchers, ranges, grouping clauses and variables removed. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  const words = [...bare.matchAll(/[a-zA-Z_:][\w:]*/g)].map((m) => m[0]);
  return words.filter((w) => !PROMQL_WORDS.has(w) && !PROMQL_OPERATORS.has(w));
}

/** Every sample name a scrape can hold: a histogram's `_bucket`, `_sum` and `_count` count as its own. */
function exportedNames(scrape: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name!);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name! + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(name! + s);
  }
  return names;
}

/** The value of one sample (`labels` exactly as exposed, e.g. `{queue="consent-expiry"}`), if the scrape has it. */
function sample(scrape: string, name: string, labels = ''): number | undefined {
  const line = scrape.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

const scrape = async (svc: TestService): Promise<string> => (await call(svc.url, 'GET', '/metrics')).body;

async function until(svc: TestService, ok: (scrape: string) => boolean, ms = 15_000): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const text = await scrape(svc);
    if (ok(text) || Date.now() > deadline) return text;
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('the files', () => {
  it('reads metric names out of PromQL', () => {
    const quantile =
      'histogram_quantile(0.99, sum by (le, endpoint) (rate(a_bucket{route=~"/v1/x|{y}",s="503"}[$__r])))';
    expect(metricNames(quantile)).toEqual(['a_bucket']);
    expect(
      metricNames('time() - max(b_seconds) > clamp_min(3 * max(c{q="d"}) or vector(0), 300) and absent(e)'),
    ).toEqual(['b_seconds', 'c', 'e']);
  });

  it('the dashboard is a Grafana model on a Prometheus data source variable, every panel titled and querying', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.templating.list).toContainEqual(
      expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', query: 'prometheus' }),
    );
    const rows = (dashboard.panels as Panel[]).filter((p) => p.type === 'row').map((p) => p.title);
    expect(rows).toEqual(['Decisions', 'Cache', 'Audit', 'Exports', 'Runtime', 'Webhooks']);
    const ids = (dashboard.panels as { id: number }[]).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of queryPanels()) {
      expect(panel.title).toBeTruthy();
      expect(panel.targets?.length).toBeGreaterThan(0);
      for (const t of panel.targets ?? []) expect(t.expr).toMatch(/\w/);
      expect(panel).toMatchObject({ datasource: { type: 'prometheus', uid: GRAFANA_DATASOURCE } });
    }
  });

  it('the webhook panels are a row of their own, the last: nothing else depends on the webhook metrics', () => {
    const panels = dashboard.panels as Panel[];
    const webhooksRow = panels.findIndex((p) => p.type === 'row' && p.title === 'Webhooks');
    const webhook = (p: Panel) => (p.targets ?? []).some((t) => /optgate_webhook_/.test(t.expr ?? ''));
    expect(panels.slice(0, webhooksRow).some(webhook)).toBe(false);
    expect(panels.slice(webhooksRow + 1).every(webhook)).toBe(true);
  });

  it('every rule has an alert name, an expression, a duration, a severity, a summary and a description', () => {
    const names = rules.groups.flatMap((g) => g.rules.map((r) => r.alert));
    expect(names).toEqual([
      'OptgateDecisionsUnavailable',
      'OptgateAuditCommitSlow',
      'OptgateTreeHeadNotSigned',
      'OptgateAuditVerificationFailed',
      'OptgateAuditVerificationLate',
      'OptgateExpirySweepNotRun',
      'OptgateWebhookBacklogOld',
    ]);
    for (const group of rules.groups) {
      expect(group.name).toMatch(/^optgate-/);
      for (const rule of group.rules) {
        expect(rule.alert).toMatch(/^Optgate[A-Za-z]+$/);
        expect(String(rule.expr)).toMatch(/\w/);
        expect(rule.for).toMatch(/^\d+[smh]$/);
        expect(['warning', 'critical']).toContain(rule.labels?.severity);
        expect(rule.annotations?.summary).toBeTruthy();
        expect(rule.annotations?.description).toBeTruthy();
      }
    }
    // The webhook alert is a group of its own.
    const webhookGroups = rules.groups.filter((g) => g.rules.some((r) => /optgate_webhook_/.test(String(r.expr))));
    expect(webhookGroups.map((g) => g.name)).toEqual(['optgate-webhooks']);
    expect(webhookGroups[0]!.rules.every((r) => /optgate_webhook_/.test(String(r.expr)))).toBe(true);
  });
});

describe('against a running service', () => {
  let api: TestService;
  let worker: TestService | undefined;

  beforeAll(async () => {
    api = await startTestService();
  });
  afterAll(async () => {
    await worker?.close();
    await worker?.sql.end();
    await api.stop();
  });

  it('counts the audit records no tree head covers, on an instance that signs nothing itself', async () => {
    const admin = await adminToken(api);
    const accountId = await createAccount(api, admin);
    expect((await decide(api, admin, { accountId, purpose: 'ad_targeting', categories: ['name'] })).status).toBe(200);
    const text = await scrape(api);
    expect(sample(text, 'optgate_audit_unsigned_records')).toBeGreaterThan(0);
    expect(sample(text, 'optgate_audit_tree_head_signed_timestamp_seconds')).toBe(0);
    // No periodic job runs here: no completion to report, no interval.
    expect(text).not.toMatch(/^optgate_job_(last_success_timestamp|interval)_seconds\{/m);
  });

  it('once a worker signs, the API instance reads it from PostgreSQL; the worker reports its own jobs', async () => {
    const started = Date.now() / 1000;
    worker = await startTestService({
      RUN_WORKERS: 'true',
      AUDIT_CHECKPOINT_INTERVAL_MS: '200',
      EXPIRY_SWEEP_INTERVAL_MS: '1000',
      DATABASE_URL: api.databaseUrl,
      REDIS_PREFIX: api.config.redis.prefix,
    });
    const signed = await until(api, (t) => sample(t, 'optgate_audit_unsigned_records') === 0);
    expect(sample(signed, 'optgate_audit_unsigned_records')).toBe(0);
    const signedAt = sample(signed, 'optgate_audit_tree_head_signed_timestamp_seconds')!;
    expect(signedAt).toBeGreaterThanOrEqual(Math.floor(started));
    expect(signedAt).toBeLessThanOrEqual(Date.now() / 1000);

    const sweep = '{queue="consent-expiry"}';
    const checkpoint = '{queue="audit-checkpoint"}';
    const jobs = await until(
      worker,
      (t) => sample(t, 'optgate_job_last_success_timestamp_seconds', sweep) !== undefined,
    );
    for (const labels of [sweep, checkpoint]) {
      const at = sample(jobs, 'optgate_job_last_success_timestamp_seconds', labels)!;
      expect(at).toBeGreaterThanOrEqual(started);
      expect(at).toBeLessThanOrEqual(Date.now() / 1000);
    }
    expect(sample(jobs, 'optgate_job_interval_seconds', sweep)).toBe(1);
    expect(sample(jobs, 'optgate_job_interval_seconds', checkpoint)).toBe(0.2);
  });

  it('exports every metric the dashboard and the alert rules name', async () => {
    const exported = exportedNames(await scrape(worker ?? api));
    const named = new Set([...dashboardExprs(), ...ruleExprs()].flatMap(metricNames));
    expect(named.size).toBeGreaterThan(15);
    const missing = [...named].filter((n) => !exported.has(n));
    expect(missing).toEqual([]);
  });
});
