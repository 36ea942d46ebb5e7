import type { AuditIntegrity, IntegrityState } from '../audit';
import type { Logger } from '../platform/logger';

/** A duration in words: "less than a minute", "1 minute", "5 hours", "3 days". */
export function durationInWords(ms: number): string {
  const minutes = Math.floor(Math.max(0, ms) / 60_000);
  if (minutes < 1) return 'less than a minute';
  if (minutes < 60) return plural(minutes, 'minute');
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return plural(hours, 'hour');
  return plural(Math.floor(hours / 24), 'day');
}

const plural = (n: number, unit: string) => `${n.toLocaleString('en')} ${unit}${n === 1 ? '' : 's'}`;
const ago = (s: IntegrityState, at: Date) => `${durationInWords(s.now.getTime() - at.getTime())} ago`;

/** What the banner on every console page says of the log's integrity: nothing while all is well. */
export function alertsOf(s: IntegrityState): string[] {
  const alerts: string[] = [];
  const failure = s.openFailure;
  if (failure) {
    const where = failure.problemSeq === null ? '' : ` at record ${failure.problemSeq.toLocaleString('en')}`;
    alerts.push(
      `Verification failed: the audit log has a problem${where}, found ${ago(s, failure.finishedAt)}. ` +
        'The log may have been altered: tell your security officer.',
    );
  } else if (s.latest?.result === 'error') {
    alerts.push(
      `The last verification of the audit log could not finish (${ago(s, s.latest.finishedAt)}). ` +
        `It is tried again every ${durationInWords(s.intervalMs)}; if this repeats, check the background workers.`,
    );
  }
  if (s.verificationLate) {
    alerts.push(
      s.lastIntact
        ? `Verification is late: the audit log was last verified ${ago(s, s.lastIntact.finishedAt)}, and should be ` +
            `every ${durationInWords(s.intervalMs)}. Check that the background workers run.`
        : `Verification is late: the audit log has never been verified, and its first record was written ` +
            `${ago(s, s.firstRecordAt!)}. Check that the background workers run.`,
    );
  }
  if (s.headLate && s.oldestUnsignedAt) {
    const n = s.unsignedRecords;
    alerts.push(
      `The signed head is late: ${n.toLocaleString('en')} ${n === 1 ? 'record' : 'records'} of the audit log, ` +
        `the oldest written ${ago(s, s.oldestUnsignedAt)}, ${n === 1 ? 'is' : 'are'} not yet covered by a signed ` +
        'head. Check that the background workers run and can reach the database.',
    );
  }
  return alerts;
}

/**
 * The console's `integrityAlerts`: read on every console page for signed-in staff (a few single-row index reads). When
 * the database does not answer, the banner says so rather than failing the page.
 */
export function integrityAlerts(integrity: AuditIntegrity, logger: Logger): () => Promise<readonly string[]> {
  return async () => {
    try {
      return alertsOf(await integrity.state());
    } catch (err) {
      logger.warn({ err: { message: (err as Error).message } }, 'integrity state unavailable');
      return ["The audit log's integrity cannot be read just now. Try again in a moment."];
    }
  };
}
