/**
 * Structured logs (pino). Callers log counts, routes and codes of errors only: never a
 * message's text, a token or an invite code. The redact list is a second line of defence.
 */
import pino, { type DestinationStream, type Logger } from 'pino';

export function createLogger(level: string, stream?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'parley-broker' },
      redact: { paths: ['token', 'code', 'text', 'body', '*.authorization', 'headers'], censor: '[redacted]' },
    },
    stream ?? pino.destination(1),
  );
}
