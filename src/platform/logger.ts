import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * Structured JSON logs. Subscriber data never goes in: no bodies, no query strings, no
 * account ids; routes are logged by their pattern. The redact list is a second line of defence.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'optgate' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          'authorization',
          '*.authorization',
          'accountId',
          '*.accountId',
          'token',
          '*.token',
          'cookie',
          '*.cookie',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
