import { Readable } from 'node:stream';
import { loadConfig } from '../../src/platform/config';
import type { CategoryResult } from '../../src/platform/vocabulary';
import type { Verdict } from '../../src/policy';
import { type FilterJudge, type FilterMode, type FilterPlan, filterRecords } from '../../src/policy/filter';

/**
 * The streaming filter's own logic, without HTTP or a database: how the byte stream is cut into records, and what a
 * record schema keeps of each. The judge is a stand-in that allows, per account, the categories a test says.
 */

const { catalog } = loadConfig({});
const clickstream = catalog.schemas.get('clickstream')!;

function judgeAllowing(allowed: Record<string, readonly string[]>) {
  const audited: { accountId: string; passed?: readonly string[] }[] = [];
  const judge: FilterJudge = async (accountIds, passedOf) =>
    accountIds.map((accountId, i) => {
      const categories = passedOf ? clickstream.categories : ['billing_info'];
      const results: CategoryResult[] = categories.map((category) =>
        (allowed[accountId] ?? []).includes(category)
          ? { category, allow: true, reason: 'not_opted_out' }
          : { category, allow: false, reason: 'no_consent' },
      );
      const verdict: Verdict = results.every((r) => r.allow)
        ? { allow: true, validUntil: new Date(), results }
        : { allow: false, results };
      audited.push({ accountId, ...(passedOf ? { passed: passedOf(verdict, i) } : {}) });
      return verdict;
    });
  return { judge, audited };
}

async function run(chunks: readonly (Buffer | string)[], plan: FilterPlan, judge: FilterJudge) {
  const out: string[] = [];
  const counts = await filterRecords(Readable.from(chunks.map((c) => Buffer.from(c))), plan, judge, async (text) => {
    out.push(text);
  });
  return { out: Buffer.from(out.join('')), counts };
}

const whole: FilterPlan = { accountField: 'accountId', mode: 'redact' };
const bySchema = (mode: FilterMode = 'redact'): FilterPlan => ({
  accountField: 'accountId',
  schema: clickstream,
  mode,
});

describe('UTF-8 split between reads', () => {
  const text = 'é€😀';
  const body = Buffer.from(
    `${JSON.stringify({ accountId: 'A-1', note: text })}\n${JSON.stringify({ accountId: 'A-1', url: text, n: 1 })}\n`,
  );
  const emoji = body.indexOf(Buffer.from('😀'));

  it('passes records on byte for byte, cut at every byte boundary inside a 4-byte character', async () => {
    for (const cut of [emoji + 1, emoji + 2, emoji + 3]) {
      const { judge } = judgeAllowing({ 'A-1': ['billing_info'] });
      const r = await run([body.subarray(0, cut), body.subarray(cut)], whole, judge);
      expect(r.out.equals(body)).toBe(true);
      expect(r.counts).toMatchObject({ received: 2, allowed: 2, invalid: 0 });
    }
  });

  it('whatever the cut, and one byte at a time', async () => {
    for (let cut = 1; cut < body.length; cut++) {
      const r = await run(
        [body.subarray(0, cut), body.subarray(cut)],
        whole,
        judgeAllowing({ 'A-1': ['billing_info'] }).judge,
      );
      expect(r.out.toString('hex')).toBe(body.toString('hex'));
    }
    const bytes = [...body].map((b) => Buffer.from([b]));
    expect((await run(bytes, whole, judgeAllowing({ 'A-1': ['billing_info'] }).judge)).out.equals(body)).toBe(true);
  });

  it('keeps the characters whole in a record it re-serialises', async () => {
    const line = `{"url":"${text}","lat":1.5,"accountId":"A-1"}\n`;
    for (let cut = 1; cut < Buffer.byteLength(line); cut++) {
      const bytes = Buffer.from(line);
      const { judge } = judgeAllowing({ 'A-1': ['web_browsing_history'] });
      const r = await run([bytes.subarray(0, cut), bytes.subarray(cut)], bySchema(), judge);
      expect(r.out.toString('utf8')).toBe(`{"accountId":"A-1","url":"${text}"}\n`);
    }
  });

  it('counts a line that is not UTF-8 as invalid, and only that one', async () => {
    const bad = Buffer.concat([
      Buffer.from('{"accountId":"A-1","note":"'),
      Buffer.from([0xf0, 0x9f]),
      Buffer.from('"}'),
    ]);
    const good = Buffer.from('{"accountId":"A-1","note":"é€😀"}');
    const body = Buffer.concat([good, Buffer.from('\r\n'), bad, Buffer.from('\n'), good, Buffer.from('\n\n'), bad]);
    const r = await run([body], whole, judgeAllowing({ 'A-1': ['billing_info'] }).judge);
    expect(r.out.equals(Buffer.concat([good, Buffer.from('\n'), good, Buffer.from('\n')]))).toBe(true);
    expect(r.counts).toMatchObject({ received: 4, allowed: 2, invalid: 2 });
  });

  it('drops a trailing carriage return, and judges a last line without a newline', async () => {
    const r = await run(
      ['{"accountId":"A-1","n":1}\r\n{"accountId":"A-1"', ',"n":2}'],
      whole,
      judgeAllowing({ 'A-1': ['billing_info'] }).judge,
    );
    expect(r.out.toString()).toBe('{"accountId":"A-1","n":1}\n{"accountId":"A-1","n":2}\n');
  });

  it('refuses a record over 1 MiB, even one that arrives in small pieces', async () => {
    const long = Array.from({ length: 1100 }, () => Buffer.alloc(1000, 0x61));
    await expect(run(long, whole, judgeAllowing({}).judge)).rejects.toMatchObject({ type: 'payload-too-large' });
  });
});

describe('judged by a record schema', () => {
  const everything = ['web_browsing_history', 'app_usage_history', 'ip_addresses', 'precise_geolocation'];
  const record = {
    ts: 1767225600123,
    accountId: 'A-1',
    url: 'https://example.org/',
    lat: 43.6591,
    lon: -70.2568,
  };
  const line = JSON.stringify(record);

  it('passes a record whose every field may be used byte for byte, and audits the categories it holds', async () => {
    const { judge, audited } = judgeAllowing({ 'A-1': everything });
    const r = await run([`${line}\n`], bySchema(), judge);
    expect(r.out.toString()).toBe(`${line}\n`);
    expect(r.counts).toMatchObject({ received: 1, allowed: 1, redacted: 0 });
    expect(audited).toEqual([{ accountId: 'A-1', passed: ['web_browsing_history', 'precise_geolocation'] }]);
  });

  it('redact: removes exactly the fields that may not be used, the rest canonical, numbers as written', async () => {
    const { judge, audited } = judgeAllowing({ 'A-1': ['web_browsing_history'] });
    const input =
      '{"url":"https://example.org/","lat":43.6590, "lon":-70.25680,"ts":12345678901234567890,"accountId":"A-1"}';
    const r = await run([`${input}\n`], bySchema(), judge);
    expect(r.out.toString()).toBe('{"accountId":"A-1","ts":12345678901234567890,"url":"https://example.org/"}\n');
    expect(r.counts).toMatchObject({ received: 1, allowed: 1, redacted: 1 });
    expect(audited).toEqual([{ accountId: 'A-1', passed: ['web_browsing_history'] }]);
  });

  it('sorts nested keys and keeps nested numbers as written', async () => {
    const { judge } = judgeAllowing({ 'A-1': ['app_usage_history'] });
    const r = await run(
      ['{"app":{"z":1.0,"a":[2e3,{"y":0.10,"b":null}]},"ip":"192.0.2.1","accountId":"A-1"}\n'],
      bySchema(),
      judge,
    );
    expect(r.out.toString()).toBe('{"accountId":"A-1","app":{"a":[2e3,{"b":null,"y":0.10}],"z":1.0}}\n');
  });

  it('drop: drops a record that holds any field that may not be used, passes the others whole', async () => {
    const { judge, audited } = judgeAllowing({ 'A-1': ['web_browsing_history'], 'A-2': everything });
    const other = JSON.stringify({ ...record, accountId: 'A-2' });
    const r = await run([`${line}\n${other}\n`], bySchema('drop'), judge);
    expect(r.out.toString()).toBe(`${other}\n`);
    expect(r.counts).toMatchObject({ received: 2, allowed: 1, redacted: 0 });
    expect(audited).toEqual([
      { accountId: 'A-1', passed: [] },
      { accountId: 'A-2', passed: ['web_browsing_history', 'precise_geolocation'] },
    ]);
  });

  it('removes unclassified fields (the SSN and the health URL of the issue); passes ts through', async () => {
    const { judge } = judgeAllowing({ 'A-1': ['other_customer_info'] });
    const input = JSON.stringify({
      accountId: 'A-1',
      plan: 'gold',
      ssn: '078-05-1120',
      healthUrl: 'https://clinic/x',
      ts: 1,
    });
    const r = await run([`${input}\n`], bySchema(), judge);
    expect(r.out.toString()).toBe('{"accountId":"A-1","plan":"gold","ts":1}\n');
    expect((await run([`${input}\n`], bySchema('drop'), judge)).out.length).toBe(0);
  });

  it('drops a record left with nothing of any category (an unknown account; only an id and a time)', async () => {
    const { judge, audited } = judgeAllowing({ 'A-1': everything });
    const r = await run(
      [`${JSON.stringify({ ...record, accountId: 'A-9' })}\n{"accountId":"A-1","ts":1}\n`],
      bySchema(),
      judge,
    );
    expect(r.out.length).toBe(0);
    expect(r.counts).toMatchObject({ received: 2, allowed: 0, invalid: 0 });
    expect(audited.map((a) => a.passed)).toEqual([[], []]);
  });

  it('counts a record without a valid account id in the schema account field as invalid', async () => {
    const { judge, audited } = judgeAllowing({});
    const r = await run(['{"subscriber":"A-1","url":"x"}\n[1]\n{"accountId":7}\n'], bySchema(), judge);
    expect(r.counts).toMatchObject({ received: 3, allowed: 0, invalid: 3 });
    expect(audited).toEqual([]);
  });
});
