import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * What the formatter cannot enforce: it wraps code at 120 columns but leaves a long string or
 * comment alone. Landed migrations are frozen and exempt.
 */
const ROOT = path.join(__dirname, '..', '..');
const FROZEN = /^migrations\/000[123]_/;

it('no TypeScript line is longer than 120 characters', () => {
  const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '*.ts'], { cwd: ROOT })
    .toString()
    .split('\n')
    .filter((f) => f && !FROZEN.test(f));
  expect(files.length).toBeGreaterThan(50);
  const long = files.flatMap((f) =>
    readFileSync(path.join(ROOT, f), 'utf8')
      .split('\n')
      .flatMap((line, i) => (line.length > 120 ? [`${f}:${i + 1} (${line.length})`] : [])),
  );
  expect(long).toEqual([]);
});
