import { type ChainedRecord, canonicalJson, csvRows, fromCsvLine } from '../../src/audit';

/**
 * CSV cells a spreadsheet would take for a formula are written as text (a leading "'"), and the
 * verifier reads the content that was hashed back from them exactly.
 */

function record(accountId: string | null, data: Record<string, string>): ChainedRecord {
  const recordedAt = new Date('2026-12-02T12:00:00.000Z');
  const content = canonicalJson({
    accountId,
    data,
    outcome: null,
    recordedAt: recordedAt.toISOString(),
    seq: 7,
    type: 'staff_action',
  });
  return { seq: 7, recordedAt, type: 'staff_action', accountId, outcome: null, content, prevHash: 'a', hash: 'b' };
}

const risky = ['=1+1', '+1', '-cmd.exe', '-A1', '@SUM(A1)', '\tx', '\rx', "'-A1", "'", "''=x"];

it.each(risky)('an account id %j: written as text, read back as it was', (accountId) => {
  const r = record(accountId, { action: 'x' });
  const line = csvRows([r]);
  const cells = line.split(',');
  expect(cells[3]!.replace(/^"|"$/g, '').startsWith("'")).toBe(true);
  expect(fromCsvLine(line).content).toBe(r.content);
});

it('ordinary cells are written as they are', () => {
  const r = record('A1', { action: 'x', note: '=HYPERLINK("x")' });
  const line = csvRows([r]);
  expect(line.split(',')[3]).toBe('A1');
  expect(fromCsvLine(line).content).toBe(r.content);
  expect(fromCsvLine(csvRows([record(null, { action: 'x' })])).content).toBe(record(null, { action: 'x' }).content);
});
