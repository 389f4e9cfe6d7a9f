/**
 * The HTTP door's one map from refusal codes to statuses, and from anything thrown to the JSON
 * error a client gets: {error, code}, a clear message, never a stack trace. Client-caused errors
 * are logged below error level.
 */
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ParleyError, REFUSALS, type RefusalCode } from '../engine/errors.js';

export const HTTP_STATUS: Record<RefusalCode, number> = {
  unauthorized: 401,
  not_in_room: 400,
  invalid_code: 404,
  already_in_room: 409,
  room_limit: 403,
  not_creator: 403,
  loop_paused: 429,
  loop_severed: 429,
  partner_not_connected: 503,
  empty_message: 400,
  inbox_full: 429,
  broker_full: 503,
  too_many_rooms: 429,
  too_many_tokens: 429,
  not_paused: 409,
  watch_only: 403,
  watch_limit: 403,
  draining: 503,
  state_unavailable: 503,
  wait_pending: 409,
  rate_limited: 429,
  auth_failures: 429,
  bad_type: 400,
  bad_body: 400,
  bad_timeout: 400,
  bad_ack: 400,
  bad_idempotency_key: 400,
  unknown_message: 404,
  method_not_allowed: 405,
  not_found: 404,
  too_large: 413,
  bad_request: 400,
  unsupported_media_type: 415,
  headers_too_large: 431,
  not_implemented: 501,
  too_many_connections: 429,
  session_not_found: 404,
  too_many_sessions: 503,
  forbidden_origin: 403,
  internal: 500,
};

export interface ErrorReply {
  status: number;
  body: { error: string; code: RefusalCode };
  retryAfterS?: number;
}

const BY_STATUS: Record<number, RefusalCode> = { 400: 'bad_request', 404: 'not_found', 405: 'method_not_allowed', 413: 'too_large', 415: 'unsupported_media_type', 431: 'headers_too_large', 501: 'not_implemented' };

export function errorReply(e: unknown, log: Logger): ErrorReply {
  const err = e as Error & { status?: number; expose?: boolean; type?: string };
  if (err instanceof ParleyError) return { status: HTTP_STATUS[err.code], body: { error: err.message, code: err.code }, retryAfterS: err.retryAfterS };
  if (err.status && err.status >= 400 && err.status < 500) {
    // Library client errors (raw-body's 413, a client that aborted…): a clear message of our own.
    const code = BY_STATUS[err.status] ?? 'bad_request';
    log.debug({ err: { type: err.type ?? err.name, status: err.status } }, 'client error');
    return { status: HTTP_STATUS[code], body: { error: REFUSALS[code], code } };
  }
  log.error({ err: { type: err.name, message: err.message } }, 'internal error');
  return { status: 500, body: { error: REFUSALS.internal, code: 'internal' } };
}

/** A JSON body as every JSON answer is written: one line, ending in a newline. */
export function jsonText(body: unknown): string {
  return `${JSON.stringify(body)}\n`;
}

/** A whole response on plain node:http (the hot routes skip Koa). */
export function writeReply(res: ServerResponse, status: number, type: string, body: string, headers?: Record<string, string>): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(body);
}
