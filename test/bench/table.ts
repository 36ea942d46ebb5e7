/** Tables for the report: aligned plain text for the terminal, and GitHub markdown for pasting. */

export interface Column<R> {
  readonly header: string;
  readonly align?: 'left' | 'right';
  readonly value: (row: R) => string;
}

export function renderText<R>(columns: readonly Column<R>[], rows: readonly R[]): string {
  const cells = rows.map((r) => columns.map((c) => c.value(r)));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: readonly string[]) =>
    values
      .map((v, i) => (columns[i]!.align === 'left' ? v.padEnd(widths[i]!) : v.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join(
    '\n',
  );
}

export function renderMarkdown<R>(columns: readonly Column<R>[], rows: readonly R[]): string {
  const escapeCell = (v: string) => v.replace(/\|/g, '\\|');
  const line = (values: readonly string[]) => `| ${values.map(escapeCell).join(' | ')} |`;
  return [
    line(columns.map((c) => c.header)),
    `|${columns.map((c) => (c.align === 'left' ? ' --- ' : ' ---: ')).join('|')}|`,
    ...rows.map((r) => line(columns.map((c) => c.value(r)))),
  ].join('\n');
}

/** 12,345 */
export const int = (n: number | undefined) =>
  n === undefined || !Number.isFinite(n) ? '–' : Math.round(n).toLocaleString('en-US');

/** Three significant digits, at least one decimal below 100: 0.912, 12.3, 145. */
export function num(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '–';
  if (n === 0) return '0';
  if (Math.abs(n) >= 100) return int(n);
  return n
    .toPrecision(3)
    .replace(/(\.\d*?)0+$/, '$1')
    .replace(/\.$/, '');
}

export const percent = (n: number | undefined, digits = 1) =>
  n === undefined || !Number.isFinite(n) ? '–' : `${n.toFixed(digits)}%`;
