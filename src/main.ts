import os from 'node:os';
import { type AppConfig, ConfigError, loadConfig } from './platform/config';
import { createLogger } from './platform/logger';
import { startService } from './server';

/** The niceness of a worker-only process (0 is normal, 19 the lowest priority). */
const WORKER_NICE = 10;

async function main() {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`optgate: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  if (!config.workers.serveApi) {
    // A worker-only process (exports, tree heads, sweeps) yields the CPU to the instances that answer decisions on
    // the same host: lowering one's own priority needs no privilege.
    try {
      os.setPriority(WORKER_NICE);
    } catch (err) {
      logger.warn({ err: { message: (err as Error).message } }, 'could not lower the worker process priority');
    }
  }
  const service = await startService(config, { logger });
  let signalled = false;
  const stop = (signal: string) => {
    if (signalled) return;
    signalled = true;
    logger.info({ signal }, 'shutting down');
    service.close().then(
      () => process.exit(0),
      (err: Error) => {
        logger.error({ err: { message: err.message } }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: Error) => {
  process.stderr.write(`optgate: failed to start: ${err.message}\n`);
  process.exit(1);
});
