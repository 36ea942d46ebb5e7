import { Redis } from 'ioredis';
import type { Logger } from './logger';

/**
 * One connection for commands (bounded retries, so a request fails fast rather than hang) and
 * one for BullMQ (which wants maxRetriesPerRequest: null and reconnects forever).
 * BullMQ does not close connections it is given: shutdown closes these.
 */
export function createRedis(url: string, logger: Logger, purpose: 'commands' | 'queues'): Redis {
  const redis = new Redis(url, {
    lazyConnect: false,
    connectTimeout: 2000,
    maxRetriesPerRequest: purpose === 'queues' ? null : 1,
    enableOfflineQueue: purpose === 'queues',
    connectionName: `optgate-${purpose}`,
  });
  let reported = false;
  redis.on('error', (err) => {
    if (!reported) logger.warn({ err: { message: err.message }, purpose }, 'redis connection error');
    reported = true;
  });
  redis.on('ready', () => {
    if (reported) logger.info({ purpose }, 'redis connection restored');
    reported = false;
  });
  return redis;
}
