import { Counter, type Registry } from 'prom-client';

/**
 * Metrics updated on every decision, kept cheaply. prom-client validates and hashes a metric's labels on every
 * update, and keys a histogram's buckets by their bounds as property names: per decision, that was 3–5% of an
 * instance's CPU. Here a label set is looked up once by a string key (or bound once, as a child) and then only plain
 * numbers change; prom-client sees the totals when it is scraped. The exposition is the same as prom-client's own.
 */

type Labels<L extends string> = Readonly<Record<L, string>>;

/** A label set's key: its values in labelNames order (built without an array: it is built per update). */
function keyOf<L extends string>(names: readonly L[], labels: Readonly<Record<L, string | undefined>>): string {
  let key = '';
  for (const name of names) key += `${labels[name]}\u0000`;
  return key;
}

interface HistogramSeries {
  readonly labels: Readonly<Record<string, string>>;
  /** Per bucket, not cumulative; the last one is +Inf. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

export interface HistogramChild {
  observe(value: number): void;
}

/** A histogram for the hot path. Registered like a prom-client metric, exposed like one. */
export class HotHistogram<L extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  private readonly labelNames: readonly L[];
  private readonly buckets: readonly number[];
  private series = new Map<string, HistogramSeries>();

  constructor(o: {
    name: string;
    help: string;
    labelNames?: readonly L[];
    buckets: readonly number[];
    registers: readonly Registry[];
  }) {
    this.name = o.name;
    this.help = o.help;
    this.labelNames = o.labelNames ?? [];
    this.buckets = [...o.buckets].sort((a, b) => a - b);
    // The registry asks only for name, type, get() (and reset()): what prom-client's own metrics give it.
    for (const r of o.registers) r.registerMetric(this as never);
  }

  observe(labels: Labels<L>, value: number): void {
    let s = this.series.get(keyOf(this.labelNames, labels));
    s ??= this.seriesOf(this.labelNames.map((l) => labels[l]));
    this.record(s, value);
  }

  /** The series of these label values (in labelNames order), to observe without looking it up again. */
  labels(...values: string[]): HistogramChild {
    let series = this.seriesOf(values);
    let generation = this.series;
    return {
      observe: (value: number) => {
        // A child outlives reset(): it finds its series again.
        if (generation !== this.series) {
          generation = this.series;
          series = this.seriesOf(values);
        }
        this.record(series, value);
      },
    };
  }

  private seriesOf(values: readonly (string | undefined)[]): HistogramSeries {
    if (values.length !== this.labelNames.length || values.some((v) => typeof v !== 'string'))
      throw new Error(`${this.name}: labels ${this.labelNames.join(', ')} are required`);
    // keyOf's key, from the values in order.
    const key = values.map((v) => `${v}\u0000`).join('');
    let s = this.series.get(key);
    if (!s) {
      const labels = Object.fromEntries(this.labelNames.map((l, i) => [l, values[i]!]));
      s = { labels, counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    return s;
  }

  private record(s: HistogramSeries, value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`${this.name}: not a finite number: ${value}`);
    let i = 0;
    while (i < this.buckets.length && value > this.buckets[i]!) i++;
    s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  async get() {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += s.counts[i]!;
        values.push({ labels: { le, ...s.labels }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', ...s.labels }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { ...s.labels }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...s.labels }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.series = new Map();
  }
}

/**
 * A prom-client counter whose increments on the hot path are added up in a map by label set and handed to it when it
 * is scraped.
 */
export class HotCounter<L extends string> {
  readonly counter: Counter<L>;
  private readonly name: string;
  private readonly labelNames: readonly L[];
  private readonly pending = new Map<string, { labels: Labels<L>; n: number }>();

  constructor(o: { name: string; help: string; labelNames: readonly L[]; registers: Registry[] }) {
    this.name = o.name;
    this.labelNames = o.labelNames;
    const pending = this.pending;
    this.counter = new Counter<L>({
      ...o,
      collect() {
        for (const p of pending.values()) {
          if (p.n) this.inc(p.labels, p.n);
          p.n = 0;
        }
      },
    });
  }

  inc(labels: Labels<L>, n = 1): void {
    if (!(n >= 0) || !Number.isFinite(n)) throw new TypeError(`${this.name}: not a count: ${n}`);
    const key = keyOf(this.labelNames, labels);
    const p = this.pending.get(key);
    if (p) p.n += n;
    else {
      for (const l of this.labelNames)
        if (typeof labels[l] !== 'string') throw new Error(`${this.name}: label ${l} is required`);
      this.pending.set(key, { labels: { ...labels }, n });
    }
  }
}
