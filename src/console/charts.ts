/**
 * Charts as server-rendered SVG (issue 13): no script, no style attribute (the console's CSP), only SVG
 * presentation attributes. Every chart is an image with a title and a description (role="img",
 * aria-labelledby), sized by its viewBox (the stylesheet makes it as wide as its column), and every text from data
 * is escaped. The numbers are given beside it in a table by the page; these builders are pure.
 */

/** Escapes text for SVG and HTML: element content and attribute values alike. */
export const esc = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

/** Width of every chart's viewBox: on a 390 px screen a 15-unit text is still about 13 px. */
export const WIDTH = 400;
const FONT = 15;
const INK = '#1b1f24';
const GRID = '#8a94a3';

/** Colours of at least 3:1 against white, told apart by a hatch as well (never by colour alone). */
export const COLOURS = { allow: '#0b57d0', deny: '#a4262c', grant: '#146c2e', revoke: '#a4262c', bar: '#0b57d0' };

export interface ChartText {
  /** Unique on the page: the prefix of the title's, description's and patterns' ids. */
  readonly id: string;
  readonly title: string;
  /** The main takeaway in words. */
  readonly desc: string;
}

export interface Series {
  readonly name: string;
  readonly values: readonly number[];
  readonly colour: string;
  /** Hatched bars (diagonal lines on white, outlined in the colour); solid otherwise. */
  readonly hatch?: boolean;
}

const num = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(2).replace(/\.?0+$/, ''));
const fmt = new Intl.NumberFormat('en-GB');
export const formatCount = (n: number) => fmt.format(n);
/** An axis' count, short: 1.5K, 2M. */
const compact = new Intl.NumberFormat('en', { notation: 'compact' });
export const formatTick = (n: number) => compact.format(n);

/** A round top for an axis and its step (1, 2 or 5 × 10^k), with `ticks` steps from 0 to at least `max`. */
export function niceScale(max: number, ticks = 4): { top: number; step: number } {
  if (!(max > 0)) return { top: ticks, step: 1 };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag);
  return { top: Math.ceil(max / step) * step, step };
}

/** Shortens a label for the picture (the table beside it has it whole). */
export const clip = (s: string, max = 44) => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

function open(c: ChartText, height: number, defs: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" viewBox="0 0 ${WIDTH} ${height}" role="img" ` +
    `aria-labelledby="${esc(c.id)}-title ${esc(c.id)}-desc" font-size="${FONT}" fill="${INK}">` +
    `<title id="${esc(c.id)}-title">${esc(c.title)}</title><desc id="${esc(c.id)}-desc">${esc(c.desc)}</desc>` +
    (defs ? `<defs>${defs}</defs>` : '')
  );
}

const patternId = (c: ChartText, i: number) => `${c.id}-hatch-${i}`;
function hatchPattern(c: ChartText, i: number, colour: string): string {
  return (
    `<pattern id="${esc(patternId(c, i))}" width="6" height="6" patternUnits="userSpaceOnUse" ` +
    `patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/>` +
    `<line x1="1.5" y1="0" x2="1.5" y2="6" stroke="${esc(colour)}" stroke-width="3"/></pattern>`
  );
}
const fillOf = (c: ChartText, s: Series, i: number) => (s.hatch ? `url(#${esc(patternId(c, i))})` : esc(s.colour));

function legend(c: ChartText, series: readonly Series[], y: number): string {
  let x = 0;
  let out = '';
  series.forEach((s, i) => {
    out +=
      `<rect x="${x + 0.75}" y="${y - 12.25}" width="13.5" height="13.5" fill="${fillOf(c, s, i)}" ` +
      `stroke="${esc(s.colour)}" stroke-width="1.5"/><text x="${x + 20}" y="${y}">${esc(s.name)}</text>`;
    x += 28 + s.name.length * 8.5;
  });
  return `<g class="legend">${out}</g>`;
}

/**
 * Columns per label: stacked (one column of every series per label) or grouped (side by side). Labels shown under
 * every `labelEvery`-th column; the y axis in counts.
 */
export function columnChart(
  c: ChartText & {
    readonly labels: readonly string[];
    readonly series: readonly Series[];
    readonly mode: 'stacked' | 'grouped';
    readonly xTitle: string;
    readonly yTitle: string;
    readonly labelEvery?: number;
  },
): string {
  const height = 290;
  const left = 52;
  const right = 8;
  const top = 52;
  const bottom = 60;
  const plotW = WIDTH - left - right;
  const plotH = height - top - bottom;
  const n = Math.max(1, c.labels.length);
  const totals = c.labels.map((_, i) =>
    c.mode === 'stacked'
      ? c.series.reduce((sum, s) => sum + (s.values[i] ?? 0), 0)
      : Math.max(0, ...c.series.map((s) => s.values[i] ?? 0)),
  );
  const { top: max, step } = niceScale(Math.max(0, ...totals));
  const y = (v: number) => top + plotH - (v / max) * plotH;
  const band = plotW / n;
  const every = c.labelEvery ?? 1;

  let out = open(c, height, c.series.map((s, i) => (s.hatch ? hatchPattern(c, i, s.colour) : '')).join(''));
  out += legend(c, c.series, 18);
  // The y axis: gridlines and counts.
  for (let v = 0; v <= max; v += step) {
    out += `<line x1="${left}" y1="${num(y(v))}" x2="${WIDTH - right}" y2="${num(y(v))}" stroke="${GRID}" `;
    out += `stroke-width="${v === 0 ? 1.5 : 0.5}"/>`;
    out += `<text x="${left - 6}" y="${num(y(v) + 5)}" text-anchor="end">${esc(formatTick(v))}</text>`;
  }
  out += `<text x="0" y="${top - 10}">${esc(c.yTitle)}</text>`;
  c.labels.forEach((label, i) => {
    const x0 = left + i * band;
    if (c.mode === 'stacked') {
      const w = Math.max(1, band * 0.78);
      let base = 0;
      c.series.forEach((s, k) => {
        const v = s.values[i] ?? 0;
        if (v <= 0) return;
        out += `<rect class="bar" x="${num(x0 + (band - w) / 2)}" y="${num(y(base + v))}" width="${num(w)}" `;
        out += `height="${num((v / max) * plotH)}" fill="${fillOf(c, s, k)}" stroke="${esc(s.colour)}" `;
        out += `stroke-width="1" data-value="${v}"/>`;
        base += v;
      });
    } else {
      const w = Math.max(1, (band * 0.8) / c.series.length);
      c.series.forEach((s, k) => {
        const v = s.values[i] ?? 0;
        if (v <= 0) return;
        out += `<rect class="bar" x="${num(x0 + band * 0.1 + k * w)}" y="${num(y(v))}" width="${num(w)}" `;
        out += `height="${num((v / max) * plotH)}" fill="${fillOf(c, s, k)}" stroke="${esc(s.colour)}" `;
        out += `stroke-width="1" data-value="${v}"/>`;
      });
    }
    if (i % every === 0) {
      out += `<line x1="${num(x0 + band / 2)}" y1="${top + plotH}" x2="${num(x0 + band / 2)}" `;
      out += `y2="${top + plotH + 5}" stroke="${INK}" stroke-width="1"/>`;
      out += `<text x="${num(x0 + band / 2)}" y="${top + plotH + 22}" text-anchor="middle">${esc(label)}</text>`;
    }
  });
  out += `<text x="${num(left + plotW / 2)}" y="${height - 8}" text-anchor="middle">${esc(c.xTitle)}</text>`;
  return `${out}</svg>`;
}

/** One horizontal bar per item, its label above it and its value (as text) after it. */
export function barChart(
  c: ChartText & {
    readonly items: readonly { readonly label: string; readonly value: number; readonly text: string }[];
    /** The axis' end (100 for a percentage); the largest value's nice round top when absent. */
    readonly max?: number;
    /** A tick's text (`50%`); counts when absent. */
    readonly tick?: (v: number) => string;
    readonly xTitle: string;
    readonly colour?: string;
  },
): string {
  const left = 4;
  const right = 76;
  const row = 44;
  const top = 8;
  const plotW = WIDTH - left - right;
  const bottom = 52;
  const height = top + Math.max(1, c.items.length) * row + bottom;
  const scale = c.max === undefined ? niceScale(Math.max(0, ...c.items.map((i) => i.value))) : undefined;
  const max = c.max ?? scale!.top;
  const step = scale?.step ?? max / 4;
  const colour = c.colour ?? COLOURS.bar;
  const x = (v: number) => left + (max > 0 ? (v / max) * plotW : 0);
  const axisY = top + c.items.length * row + 4;

  let out = open(c, height, '');
  for (let v = 0; v <= max + 1e-9; v += step) {
    out += `<line x1="${num(x(v))}" y1="${top}" x2="${num(x(v))}" y2="${axisY}" stroke="${GRID}" `;
    out += `stroke-width="${v === 0 ? 1.5 : 0.5}"/>`;
    const anchor = v === 0 ? 'start' : v >= max - 1e-9 ? 'end' : 'middle';
    out += `<text x="${num(x(v))}" y="${axisY + 18}" text-anchor="${anchor}">`;
    out += `${esc(c.tick ? c.tick(v) : formatTick(v))}</text>`;
  }
  c.items.forEach((item, i) => {
    const y0 = top + i * row;
    const w = x(item.value) - left;
    out += `<text x="${left}" y="${y0 + 15}">${esc(clip(item.label))}</text>`;
    out += `<rect class="bar" x="${left}" y="${y0 + 22}" width="${num(w)}" height="16" fill="${esc(colour)}" `;
    out += `data-value="${item.value}"/>`;
    out += `<text x="${num(left + w + 6)}" y="${y0 + 35}">${esc(item.text)}</text>`;
  });
  out += `<text x="${num(left + plotW / 2)}" y="${height - 8}" text-anchor="middle">${esc(c.xTitle)}</text>`;
  return `${out}</svg>`;
}

// The charts page's model: the four charts and their tables, from the hourly counts.

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAY = 86_400_000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
/** `3 Dec` (or `3 Dec 2026` with the year) from `2026-12-03`. */
export function dayLabel(day: string, withYear = false): string {
  const [y, m, d] = day.split('-').map(Number) as [number, number, number];
  return `${d} ${MONTHS[m - 1]}${withYear ? ` ${y}` : ''}`;
}
/** The ISO week of a Monday (`2026-11-30` → `2026-W49`). */
export function isoWeek(monday: string): string {
  const t = Date.parse(`${monday}T00:00:00Z`);
  const thursday = t + 3 * DAY;
  const year = new Date(thursday).getUTCFullYear();
  const week = Math.floor((thursday - Date.UTC(year, 0, 1)) / (7 * DAY)) + 1;
  return `${year}-W${String(week).padStart(2, '0')}`;
}
const percent = (part: number, whole: number) =>
  whole ? `${(Math.round((part / whole) * 1000) / 10).toFixed(1)}%` : '–';

/** What a deny reason is called on the page (the code as it stands in the log beside it, in the table). */
export const REASON_LABELS: Readonly<Record<string, string>> = {
  exception_not_applicable: 'Exception not applicable',
  no_consent: 'No consent',
  consent_revoked: 'Consent revoked',
  consent_expired: 'Consent expired',
  notice_superseded: 'Notice superseded',
  opted_out: 'Opted out',
  unknown_account: 'Unknown account',
  account_closed: 'Account closed',
  unknown_purpose: 'Unknown purpose',
  unknown_category: 'Unknown category',
  consent_lapsed: 'Consent lapsed',
  recipient_required: 'Recipient required',
  unknown_recipient: 'Unknown recipient',
  recipient_kind_not_allowed: 'Recipient kind not allowed',
  recipient_not_covered: 'Recipient not covered',
};

export interface CountsInput {
  readonly perDay: readonly { readonly day: string; readonly outcome: string; readonly count: number }[];
  readonly denials: readonly { readonly reason: string; readonly count: number }[];
  readonly perClient: readonly { readonly clientId: string; readonly outcome: string; readonly count: number }[];
  readonly perWeek: readonly { readonly week: string; readonly event: string; readonly count: number }[];
}

/** A table beside a chart: a caption, column heads, rows (the first cell of each is the row's head). */
export interface ChartTable {
  readonly caption: string;
  readonly head: readonly string[];
  /** Which columns hold numbers (aligned right). */
  readonly numeric: readonly boolean[];
  readonly rows: readonly (readonly string[])[];
}

export interface ChartView {
  readonly id: string;
  readonly heading: string;
  /** What is counted, in words. */
  readonly note: string;
  /** The SVG, or nothing when there is nothing to draw (`empty` says why). */
  readonly svg?: string;
  readonly empty?: string;
  readonly table?: ChartTable;
}

/**
 * The four charts of the last `days` days (UTC; today included): `firstDay` is the first day's date.
 */
export function chartViews(
  counts: CountsInput,
  o: { readonly firstDay: string; readonly days: number; readonly pipelines: ReadonlyMap<string, string> },
): ChartView[] {
  const start = Date.parse(`${o.firstDay}T00:00:00Z`);
  const days = Array.from({ length: o.days }, (_, i) => isoDay(start + i * DAY));
  const period = `${dayLabel(days[0]!, true)} to ${dayLabel(days.at(-1)!, true)}`;
  return [
    decisionsPerDay(counts, days, period),
    denialsByReason(counts, period),
    allowRatePerPipeline(counts, period, o.pipelines),
    consentsPerWeek(counts, days, period),
  ];
}

const NO_DECISIONS = 'No decisions in this period.';
/** A name and, when it differs, the code it stands for: `No consent (no_consent)`. */
const withCode = (name: string, code: string) => (name === code ? code : `${name} (${code})`);

function decisionsPerDay(counts: CountsInput, days: readonly string[], period: string): ChartView {
  const allow = new Map<string, number>();
  const deny = new Map<string, number>();
  for (const r of counts.perDay) (r.outcome === 'allow' ? allow : deny).set(r.day, r.count);
  const a = days.map((d) => allow.get(d) ?? 0);
  const n = days.map((d) => deny.get(d) ?? 0);
  const totalAllow = a.reduce((s, v) => s + v, 0);
  const totalDeny = n.reduce((s, v) => s + v, 0);
  const total = totalAllow + totalDeny;
  const base = {
    id: 'chart-decisions',
    heading: 'Decisions per day, by outcome',
    note: 'Each account judged is one decision: a batch call about 500 accounts counts 500. Days are UTC days.',
  };
  if (!total) return { ...base, empty: NO_DECISIONS };
  const busiest = days.reduce((best, _day, i) => (a[i]! + n[i]! > a[best]! + n[best]! ? i : best), 0);
  const desc =
    `${formatCount(total)} decisions, ${formatCount(totalAllow)} allowed (${percent(totalAllow, total)}) ` +
    `and ${formatCount(totalDeny)} denied (${percent(totalDeny, total)}). The busiest day was ` +
    `${dayLabel(days[busiest]!, true)}, with ${formatCount(a[busiest]! + n[busiest]!)} decisions.`;
  return {
    ...base,
    svg: columnChart({
      id: base.id,
      title: `Decisions per day by outcome, ${period}`,
      desc,
      labels: days.map((d) => dayLabel(d)),
      labelEvery: Math.ceil(days.length / 5),
      series: [
        { name: 'Allowed', values: a, colour: COLOURS.allow },
        { name: 'Denied (hatched)', values: n, colour: COLOURS.deny, hatch: true },
      ],
      mode: 'stacked',
      xTitle: 'Day (UTC)',
      yTitle: 'Decisions',
    }),
    table: {
      caption: `Decisions per day by outcome, ${period}. ${desc}`,
      head: ['Day', 'Allowed', 'Denied', 'Total'],
      numeric: [false, true, true, true],
      rows: [
        ...days.map((d, i) => [dayLabel(d, true), formatCount(a[i]!), formatCount(n[i]!), formatCount(a[i]! + n[i]!)]),
        ['All days', formatCount(totalAllow), formatCount(totalDeny), formatCount(total)],
      ],
    },
  };
}

function denialsByReason(counts: CountsInput, period: string): ChartView {
  const base = {
    id: 'chart-denials',
    heading: 'Denied categories by reason',
    note:
      'Each category a decision refused counts once, under its reason: a decision refused for two categories counts ' +
      'twice; a category allowed within a denied decision does not count.',
  };
  const decisions = counts.perDay.reduce((s, r) => s + r.count, 0);
  if (!decisions) return { ...base, empty: NO_DECISIONS };
  const rows = [...counts.denials].filter((r) => r.count > 0).sort((x, y) => y.count - x.count);
  const total = rows.reduce((s, r) => s + r.count, 0);
  if (!total) return { ...base, empty: 'No decision refused any category in this period.' };
  const label = (reason: string) => REASON_LABELS[reason] ?? reason;
  const top = rows[0]!;
  const desc =
    `${formatCount(total)} refused categories under ${rows.length} ` +
    `${rows.length === 1 ? 'reason' : 'reasons'}. The most common reason is ${label(top.reason)}, ` +
    `${formatCount(top.count)} (${percent(top.count, total)}).`;
  return {
    ...base,
    svg: barChart({
      id: base.id,
      title: `Denied categories by reason, ${period}`,
      desc,
      items: rows.map((r) => ({ label: label(r.reason), value: r.count, text: formatCount(r.count) })),
      xTitle: 'Refused categories',
      colour: COLOURS.deny,
    }),
    table: {
      caption: `Denied categories by reason, ${period}. ${desc}`,
      head: ['Reason (its code in the log)', 'Refused categories', 'Share'],
      numeric: [false, true, true],
      rows: [
        ...rows.map((r) => [withCode(label(r.reason), r.reason), formatCount(r.count), percent(r.count, total)]),
        ['All reasons', formatCount(total), '100.0%'],
      ],
    },
  };
}

function allowRatePerPipeline(counts: CountsInput, period: string, pipelines: ReadonlyMap<string, string>): ChartView {
  const base = {
    id: 'chart-pipelines',
    heading: 'Allow rate per pipeline',
    note: 'The share of its decisions (accounts judged) that were allowed, per calling client (the token’s subject).',
  };
  const per = new Map<string, { allow: number; total: number }>();
  for (const r of counts.perClient) {
    const p = per.get(r.clientId) ?? { allow: 0, total: 0 };
    p.total += r.count;
    if (r.outcome === 'allow') p.allow += r.count;
    per.set(r.clientId, p);
  }
  const rows = [...per]
    .filter(([, p]) => p.total > 0)
    .map(([clientId, p]) => ({ clientId, name: pipelines.get(clientId) ?? clientId, ...p, rate: p.allow / p.total }))
    .sort((x, y) => y.rate - x.rate || y.total - x.total || x.name.localeCompare(y.name));
  if (!rows.length) return { ...base, empty: NO_DECISIONS };
  const hi = rows[0]!;
  const lo = rows.at(-1)!;
  const desc =
    rows.length === 1
      ? `One pipeline, ${hi.name}, allowed ${percent(hi.allow, hi.total)} of ` + `${formatCount(hi.total)} decisions.`
      : `${rows.length} pipelines. The highest allow rate is ${hi.name}'s, ${percent(hi.allow, hi.total)} ` +
        `of ${formatCount(hi.total)} decisions; the lowest is ${lo.name}'s, ${percent(lo.allow, lo.total)} of ` +
        `${formatCount(lo.total)}.`;
  return {
    ...base,
    svg: barChart({
      id: base.id,
      title: `Allow rate per pipeline, ${period}`,
      desc,
      items: rows.map((r) => ({ label: r.name, value: r.rate * 100, text: percent(r.allow, r.total) })),
      max: 100,
      tick: (v) => `${v}%`,
      xTitle: 'Decisions allowed (%)',
    }),
    table: {
      caption: `Allow rate per pipeline, ${period}. ${desc}`,
      head: ['Pipeline (its client id)', 'Decisions', 'Allowed', 'Allow rate'],
      numeric: [false, true, true, true],
      rows: rows.map((r) => [
        withCode(r.name, r.clientId),
        formatCount(r.total),
        formatCount(r.allow),
        percent(r.allow, r.total),
      ]),
    },
  };
}

function consentsPerWeek(counts: CountsInput, days: readonly string[], period: string): ChartView {
  const base = {
    id: 'chart-consents',
    heading: 'Grants and revocations per week',
    note:
      'Consent events of kind granted and revoked, from every channel, per ISO week (Monday to Sunday, UTC); the ' +
      'first and last weeks count only their days inside the period. Renewals, expiries, lapses at closure, ' +
      'declines and opt-outs are not counted.',
  };
  const mondays: string[] = [];
  for (const d of days) {
    const t = Date.parse(`${d}T00:00:00Z`);
    const monday = isoDay(t - ((new Date(t).getUTCDay() + 6) % 7) * DAY);
    if (mondays.at(-1) !== monday) mondays.push(monday);
  }
  const grants = new Map<string, number>();
  const revokes = new Map<string, number>();
  for (const r of counts.perWeek) {
    if (r.event === 'granted') grants.set(r.week, r.count);
    else if (r.event === 'revoked') revokes.set(r.week, r.count);
  }
  const g = mondays.map((m) => grants.get(m) ?? 0);
  const v = mondays.map((m) => revokes.get(m) ?? 0);
  const totalG = g.reduce((s, x) => s + x, 0);
  const totalV = v.reduce((s, x) => s + x, 0);
  if (!totalG && !totalV) return { ...base, empty: 'No grants or revocations in this period.' };
  const most = mondays.reduce((best, _, i) => (g[i]! > g[best]! ? i : best), 0);
  const desc =
    `${formatCount(totalG)} ${totalG === 1 ? 'grant' : 'grants'} and ${formatCount(totalV)} ` +
    `${totalV === 1 ? 'revocation' : 'revocations'}` +
    (totalG
      ? `. The most grants were in week ${isoWeek(mondays[most]!)} (from ${dayLabel(mondays[most]!, true)}), ` +
        `${formatCount(g[most]!)}.`
      : '.');
  return {
    ...base,
    svg: columnChart({
      id: base.id,
      title: `Grants and revocations per week, ${period}`,
      desc,
      labels: mondays.map((m) => dayLabel(m)),
      labelEvery: Math.ceil(mondays.length / 5),
      series: [
        { name: 'Grants', values: g, colour: COLOURS.grant },
        { name: 'Revocations (hatched)', values: v, colour: COLOURS.revoke, hatch: true },
      ],
      mode: 'grouped',
      xTitle: 'Week starting (Monday)',
      yTitle: 'Events',
    }),
    table: {
      caption: `Grants and revocations per week, ${period}. ${desc}`,
      head: ['Week', 'Grants', 'Revocations'],
      numeric: [false, true, true],
      rows: [
        ...mondays.map((m, i) => [`${isoWeek(m)} (from ${dayLabel(m, true)})`, formatCount(g[i]!), formatCount(v[i]!)]),
        ['All weeks', formatCount(totalG), formatCount(totalV)],
      ],
    },
  };
}
