import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/platform/config';
import { type ConsentSnapshot, evaluate, type Subject } from '../../src/policy/engine';

/**
 * SPEC's decision table, kept as data: test/policy/cases/<reason>.json. Each case gives the
 * request, what the store holds, the time, and the decision wanted, against the shipped catalog.
 */

interface Case {
  name: string;
  now: string;
  request: { purpose: string; categories: string[]; recipient?: string; reference?: string };
  account: { status: 'active' | 'closed' } | null;
  consents: Record<
    string,
    {
      state: ConsentSnapshot['state'];
      consentId: string;
      noticeVersion: string;
      expiresAt: string | null;
      recipients?: string[];
    }
  >;
  want: unknown;
}

const catalog = loadConfig({ NODE_ENV: 'test', KEYS_DIR: '/nonexistent' }).catalog;
const dir = path.join(__dirname, 'cases');
const cases = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .flatMap((file) =>
    (JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as Case[]).map(
      (c) => [file.replace('.json', ''), c.name, c] as const,
    ),
  );

function subjectOf(c: Case): Subject {
  return {
    account: c.account,
    consents: new Map(
      Object.entries(c.consents).map(([category, s]) => [
        category,
        { ...s, expiresAt: s.expiresAt === null ? null : new Date(s.expiresAt) },
      ]),
    ),
  };
}

describe('decision table', () => {
  it('has a case for every row of SPEC', () => {
    const files = new Set(cases.map(([file]) => file));
    for (const row of [
      'exception',
      'exception_not_applicable',
      'consent_granted',
      'no_consent',
      'consent_revoked',
      'consent_expired',
      'notice_superseded',
      'not_opted_out',
      'opted_out',
      'unknown_account',
      'account_closed',
      'consent_lapsed',
      'recipient_required',
      'unknown_recipient',
      'recipient_kind_not_allowed',
      'recipient_not_covered',
      'fail_closed',
    ]) {
      expect(files).toContain(row);
    }
  });

  it.each(cases)('%s: %s', (_file, _name, c) => {
    const verdict = evaluate(c.request, subjectOf(c), catalog, new Date(c.now));
    expect(JSON.parse(JSON.stringify(verdict))).toEqual(c.want);
  });
});
