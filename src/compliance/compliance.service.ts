import type { AccountService } from '../accounts';
import type { ConsentService } from '../consent';
import { validationError } from '../platform/errors';
import { decodeCursor, encodeCursor, keysetPage } from '../platform/pagination';

const DAY_MS = 86_400_000;
/** A change of plan or price this soon after a consent choice is listed for review. */
export const WINDOW_DAYS = 30;

export interface ComplianceDeps {
  readonly accounts: Pick<AccountService, 'planChanges'>;
  readonly consents: Pick<ConsentService, 'choicesBetween'>;
}

/**
 * Evidence for the statute's non-discrimination rule: no refusal of service, penalty or discount based on the
 * subscriber's choice. Lists each change of plan or price that followed a consent choice of the same account within
 * WINDOW_DAYS, with both events, for staff to review and explain.
 */
export class ComplianceService {
  constructor(private readonly deps: ComplianceDeps) {}

  async nonDiscrimination(o: { from: Date; to: Date; cursor?: string; limit: number }) {
    if (o.to <= o.from) throw validationError([{ path: 'to', message: 'must be after from' }]);
    const after = o.cursor === undefined ? undefined : String(decodeCursor(o.cursor));
    const page = await keysetPage(o.limit, (limit) =>
      this.deps.accounts.planChanges({ from: o.from, to: o.to, after, limit }),
    );
    const changes = page.items;
    const earliest = new Date(Math.min(...changes.map((c) => c.changedAt.getTime())) - WINDOW_DAYS * DAY_MS);
    const latest = new Date(Math.max(...changes.map((c) => c.changedAt.getTime())));
    const choices = changes.length
      ? await this.deps.consents.choicesBetween([...new Set(changes.map((c) => c.accountId))], earliest, latest)
      : [];
    const items = changes.flatMap((change) => {
      const { accountId, changeId, ...planChange } = change;
      const before = choices.filter(
        (e) =>
          e.accountId === accountId &&
          e.occurredAt <= change.changedAt &&
          change.changedAt.getTime() - e.occurredAt.getTime() <= WINDOW_DAYS * DAY_MS,
      );
      if (!before.length) return [];
      return [
        {
          accountId,
          planChange: { changeId, ...planChange },
          consentChoices: before.map((e) => ({
            eventId: e.eventId,
            kind: e.kind,
            purpose: e.purpose,
            category: e.category,
            channel: e.channel,
            occurredAt: e.occurredAt,
            daysBefore: Math.round(((change.changedAt.getTime() - e.occurredAt.getTime()) / DAY_MS) * 100) / 100,
          })),
        },
      ];
    });
    return { windowDays: WINDOW_DAYS, items, nextCursor: page.next ? encodeCursor(page.next.changeId) : null };
  }
}
