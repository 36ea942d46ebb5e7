import type { Problem } from './verify';

/** What a verification found, as lines a compliance officer can read; `problem` names the first bad sequence. */
export class VerifyReport {
  readonly lines: string[] = [];
  problem: Problem | undefined;
  /** Problems that are not about one record (a bad signature, a file hash). */
  readonly failures: string[] = [];
  /** What could not be checked with the files given (and what would check it). */
  readonly unchecked: string[] = [];

  note(label: string, text: string): void {
    this.lines.push(`  ${label.padEnd(12)} ${text}`);
  }

  fail(label: string, text: string): void {
    this.note(label, `FAILED: ${text}`);
    this.failures.push(`${label}: ${text}`);
  }

  /** A check that needs another file: the result is INCOMPLETE, not INTACT, when all else is. */
  notChecked(label: string, text: string): void {
    this.note(label, `NOT CHECKED: ${text}`);
    this.unchecked.push(`${label}: ${text}`);
  }

  /** Another report's lines and findings, as part of this one (each proof of a receipt). */
  include(other: VerifyReport): void {
    this.lines.push(...other.lines);
    this.failures.push(...other.failures);
    this.unchecked.push(...other.unchecked);
    if (other.problem) this.badRecord(other.problem);
  }

  /** Problems are found in different passes (the chain, the checkpoints): the report names the earliest sequence. */
  badRecord(p: Problem): void {
    if (!this.problem || p.seq < this.problem.seq) this.problem = p;
  }

  get ok(): boolean {
    return !this.problem && this.failures.length === 0;
  }

  /** Intact, and nothing left unchecked. */
  get complete(): boolean {
    return this.ok && this.unchecked.length === 0;
  }

  render(title: string): string {
    const verdict = this.ok
      ? this.unchecked.length
        ? `RESULT: INCOMPLETE: ${this.unchecked[0]}`
        : 'RESULT: INTACT'
      : this.problem
        ? `RESULT: TAMPERED: first bad sequence ${this.problem.seq}: ${this.problem.problem}`
        : `RESULT: TAMPERED: ${this.failures[0]}`;
    return [title, ...this.lines, verdict, ''].join('\n');
  }
}
