import type { Problem } from './verify';

/** What a verification found, as lines a compliance officer can read; `problem` names the first bad sequence. */
export class VerifyReport {
  readonly lines: string[] = [];
  problem: Problem | undefined;
  /** Problems that are not about one record (a bad signature, a file hash). */
  readonly failures: string[] = [];

  note(label: string, text: string): void {
    this.lines.push(`  ${label.padEnd(12)} ${text}`);
  }

  fail(label: string, text: string): void {
    this.note(label, `FAILED: ${text}`);
    this.failures.push(`${label}: ${text}`);
  }

  /** Problems are found in different passes (the chain, the checkpoints): the report names the earliest sequence. */
  badRecord(p: Problem): void {
    if (!this.problem || p.seq < this.problem.seq) this.problem = p;
  }

  get ok(): boolean {
    return !this.problem && this.failures.length === 0;
  }

  render(title: string): string {
    const verdict = this.ok
      ? 'RESULT: INTACT'
      : this.problem
        ? `RESULT: TAMPERED: first bad sequence ${this.problem.seq}: ${this.problem.problem}`
        : `RESULT: TAMPERED: ${this.failures[0]}`;
    return [title, ...this.lines, verdict, ''].join('\n');
  }
}
