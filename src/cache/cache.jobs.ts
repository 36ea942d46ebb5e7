import type { Db } from '../platform/db/database';
import type { Logger } from '../platform/logger';
import { type JobDefinition, job } from '../platform/queues';
import { pruneChanges } from './changes.repository';
import { MAX_CATCH_UP_MS } from './coherence';

export interface CacheJobDeps {
  readonly db: Db;
  readonly logger: Logger;
  readonly clock: () => Date;
}

/** The change log only serves catch-ups, which never reach back further than MAX_CATCH_UP_MS: twice that is kept. */
export function cacheJobs(d: CacheJobDeps): JobDefinition[] {
  return [
    job({
      queue: 'cache-changes-prune',
      schedule: { id: 'cache-changes-prune', everyMs: 60_000, data: { scheduledBy: 'scheduler' } },
      handler: async () => {
        const pruned = await pruneChanges(d.db, new Date(d.clock().getTime() - 2 * MAX_CATCH_UP_MS));
        if (pruned) d.logger.debug({ pruned }, 'account change log pruned');
        return { pruned };
      },
    }),
  ];
}
