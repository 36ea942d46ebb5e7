import { encodeVerdict } from '../../src/audit/decisions';
import { deniedReasons } from '../../src/audit/rollups';
import {
  barChart,
  type CountsInput,
  chartViews,
  columnChart,
  esc,
  isoWeek,
  niceScale,
  WIDTH,
} from '../../src/console/charts';

/** Checks that `xml` is well formed enough for a browser: tags balance, attributes quoted, every `&` an entity. */
function wellFormed(xml: string): void {
  const stack: string[] = [];
  const tag = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let at = 0;
  for (let m = tag.exec(xml); m; m = tag.exec(xml)) {
    const text = xml.slice(at, m.index);
    expect(text).not.toMatch(/[<>]/);
    at = m.index + m[0].length;
    const [, closing, name, , selfClosing] = m;
    if (closing) expect(stack.pop()).toBe(name);
    else if (!selfClosing) stack.push(name!);
  }
  expect(xml.slice(at)).toBe('');
  expect(stack).toEqual([]);
  expect(xml.replace(/&(amp|lt|gt|quot|#39);/g, '')).not.toContain('&');
}

const bars = (svg: string) =>
  [
    ...svg.matchAll(
      /<rect class="bar" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"[^>]*data-value="([\d.]+)"/g,
    ),
  ].map((m) => ({ width: Number(m[3]), height: Number(m[4]), value: Number(m[5]) }));

describe('SVG builders', () => {
  const nasty = 'client <b>&"x"\'';

  it('a bar chart is a titled, described image, its labels escaped, its bars proportional to the values', () => {
    const svg = barChart({
      id: 'c1',
      title: `Title ${nasty}`,
      desc: `Desc ${nasty}`,
      items: [
        { label: nasty, value: 40, text: '40' },
        { label: 'b', value: 10, text: '10' },
        { label: 'c', value: 0, text: '0' },
      ],
      xTitle: 'Count',
    });
    wellFormed(svg);
    expect(svg).toMatch(/^<svg [^>]*role="img" aria-labelledby="c1-title c1-desc"/);
    expect(svg).toContain(`viewBox="0 0 ${WIDTH} `);
    expect(svg).toContain('<title id="c1-title">Title client &lt;b&gt;&amp;&quot;x&quot;&#39;</title>');
    expect(svg).toContain('<desc id="c1-desc">Desc client &lt;b&gt;');
    expect(svg).not.toContain('<b>');
    expect(svg).not.toMatch(/style=/);
    const [a, b, c] = bars(svg);
    expect(a!.value).toBe(40);
    expect(a!.width / b!.width).toBeCloseTo(4, 5);
    expect(c!.width).toBe(0);
  });

  it('a percentage bar chart runs to 100', () => {
    const svg = barChart({
      id: 'p',
      title: 't',
      desc: 'd',
      items: [{ label: 'half', value: 50, text: '50%' }],
      max: 100,
      tick: (v) => `${v}%`,
      xTitle: '%',
    });
    wellFormed(svg);
    expect(svg).toContain('>100%</text>');
    const full = WIDTH - 4 - 76;
    expect(bars(svg)[0]!.width).toBeCloseTo(full / 2, 5);
  });

  it('stacked columns add up; grouped columns stand side by side; the hatch is defined once per series', () => {
    const series = [
      { name: 'Allowed', values: [3, 0, 6], colour: '#0b57d0' },
      { name: 'Denied <x>', values: [1, 2, 0], colour: '#a4262c', hatch: true },
    ];
    const stacked = columnChart({
      id: 's',
      title: 't',
      desc: 'd',
      labels: ['1 Dec', '2 Dec', '3 Dec'],
      series,
      mode: 'stacked',
      xTitle: 'Day',
      yTitle: 'Decisions',
    });
    wellFormed(stacked);
    expect(stacked).toContain('Denied &lt;x&gt;');
    expect(stacked.match(/<pattern /g)).toHaveLength(1);
    expect(stacked).toContain('fill="url(#s-hatch-1)"');
    const hs = bars(stacked);
    expect(hs.map((h) => h.value)).toEqual([3, 1, 2, 6]);
    for (const h of hs) expect(h.height / h.value).toBeCloseTo(hs[0]!.height / 3, 1);
    const grouped = columnChart({
      id: 'g',
      title: 't',
      desc: 'd',
      labels: ['a', 'b', 'c'],
      series,
      mode: 'grouped',
      xTitle: 'Week',
      yTitle: 'Events',
    });
    wellFormed(grouped);
    expect(bars(grouped)).toHaveLength(4);
  });

  it('all zeros draw an axis and no bar', () => {
    const svg = columnChart({
      id: 'z',
      title: 't',
      desc: 'd',
      labels: ['a'],
      series: [{ name: 'n', values: [0], colour: '#000' }],
      mode: 'stacked',
      xTitle: 'x',
      yTitle: 'y',
    });
    wellFormed(svg);
    expect(bars(svg)).toEqual([]);
  });

  it('axes have round tops', () => {
    expect(niceScale(0)).toEqual({ top: 4, step: 1 });
    expect(niceScale(7)).toEqual({ top: 8, step: 2 });
    expect(niceScale(1234)).toEqual({ top: 1500, step: 500 });
    expect(esc(`<&"'>`)).toBe('&lt;&amp;&quot;&#39;&gt;');
    expect(isoWeek('2026-11-30')).toBe('2026-W49');
    expect(isoWeek('2026-12-28')).toBe('2026-W53');
    expect(isoWeek('2027-01-04')).toBe('2027-W01');
  });
});

describe('the charts page model', () => {
  const empty: CountsInput = { perDay: [], denials: [], perClient: [], perWeek: [] };
  const o = { firstDay: '2026-11-27', days: 7, pipelines: new Map([['ads', 'Ads <platform>']]) };

  it('says there is nothing rather than drawing an empty chart', () => {
    const views = chartViews(empty, o);
    expect(views.map((v) => v.empty)).toEqual([
      'No decisions in this period.',
      'No decisions in this period.',
      'No decisions in this period.',
      'No grants or revocations in this period.',
    ]);
    expect(views.every((v) => v.svg === undefined)).toBe(true);
  });

  it('gives every chart a description with its takeaway and a table with the same numbers', () => {
    const counts: CountsInput = {
      perDay: [
        { day: '2026-11-28', outcome: 'allow', count: 5 },
        { day: '2026-11-28', outcome: 'deny', count: 2 },
        { day: '2026-12-03', outcome: 'deny', count: 1 },
      ],
      denials: [
        { reason: 'no_consent', count: 3 },
        { reason: 'odd<reason>', count: 1 },
      ],
      perClient: [
        { clientId: 'ads', outcome: 'allow', count: 1 },
        { clientId: 'ads', outcome: 'deny', count: 3 },
        { clientId: 'bill&co', outcome: 'allow', count: 4 },
      ],
      perWeek: [
        { week: '2026-11-23', event: 'granted', count: 2 },
        { week: '2026-11-30', event: 'granted', count: 3 },
        { week: '2026-11-30', event: 'revoked', count: 1 },
      ],
    };
    const [perDay, denials, pipelines, weeks] = chartViews(counts, o);
    for (const v of [perDay, denials, pipelines, weeks]) wellFormed(v!.svg!);
    expect(perDay!.svg).toContain('8 decisions, 5 allowed (62.5%) and 3 denied (37.5%)');
    expect(perDay!.svg).toContain('The busiest day was 28 Nov 2026, with 7 decisions.');
    expect(perDay!.table!.rows).toHaveLength(8);
    expect(perDay!.table!.rows[1]).toEqual(['28 Nov 2026', '5', '2', '7']);
    expect(perDay!.table!.rows.at(-1)).toEqual(['All days', '5', '3', '8']);
    expect(denials!.table!.rows[0]).toEqual(['No consent (no_consent)', '3', '75.0%']);
    expect(denials!.table!.rows[1]).toEqual(['odd<reason>', '1', '25.0%']);
    expect(denials!.svg).toContain('odd&lt;reason&gt;');
    expect(pipelines!.table!.rows).toEqual([
      ['bill&co', '4', '4', '100.0%'],
      ['Ads <platform> (ads)', '4', '1', '25.0%'],
    ]);
    expect(pipelines!.svg).toContain('Ads &lt;platform&gt;');
    expect(pipelines!.svg).toContain('bill&amp;co');
    expect(weeks!.table!.rows).toEqual([
      ['2026-W48 (from 23 Nov 2026)', '2', '0'],
      ['2026-W49 (from 30 Nov 2026)', '3', '1'],
      ['All weeks', '5', '1'],
    ]);
    expect(weeks!.svg).toContain('5 grants and 1 revocation. The most grants were in week 2026-W49');
  });
});

describe('denial reasons from verdict bytes', () => {
  it('lists the refused categories only, past a cited consent', () => {
    const categories = ['a', 'b', 'c'];
    const verdict = encodeVerdict(categories, {
      accountId: 'X',
      allow: false,
      results: [
        {
          category: 'a',
          allow: true,
          reason: 'consent_granted',
          consentId: '00000000-0000-4000-8000-000000000001',
          expiresAt: new Date('2027-01-01T00:00:00Z'),
        },
        { category: 'b', allow: false, reason: 'consent_revoked' },
        { category: 'c', allow: false, reason: 'no_consent' },
      ],
    } as never);
    expect(deniedReasons(3, verdict)).toEqual(['consent_revoked', 'no_consent']);
    expect(deniedReasons(4, verdict)).toBeUndefined();
    expect(deniedReasons(1, Uint8Array.from([1, 0]))).toEqual([]);
  });
});
