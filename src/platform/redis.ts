import { Redis } from 'ioredis';
import type { AppConfig } from './config';
import type { Logger } from './logger';

/**
 * One connection for commands, one for BullMQ and one for the cache's invalidation subscription.
 * Commands (sessions, rate limits, sign-in links, the cache lease) fail fast: no offline queue,
 * one retry, and a bounded time per command, so that a hung Redis (SIGSTOP, a dead network path)
 * turns into a prompt 503 instead of a request that waits as long as Redis does. BullMQ wants the
 * opposite (maxRetriesPerRequest: null, reconnecting forever); every wait on it is bounded where it
 * is made. The subscriber reconnects and resubscribes by itself; the cache stops using its entries
 * for as long as it is away. BullMQ does not close connections it is given: shutdown closes these.
 */
export function createRedis(
  settings: AppConfig['redis'],
  logger: Logger,
  purpose: 'commands' | 'queues' | 'subscriber',
): Redis {
  const commands = purpose === 'commands';
  const redis = new Redis(settings.url, {
    lazyConnect: false,
    connectTimeout: 2000,
    maxRetriesPerRequest: commands ? 1 : null,
    enableOfflineQueue: !commands,
    ...(commands ? { commandTimeout: settings.commandTimeoutMs } : {}),
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
