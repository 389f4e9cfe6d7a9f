/**
 * One mapping from anything thrown to the JSON error a client gets: {error, code}, a clear
 * message for every refusal, and never a stack trace. Used by the Koa routes and by /wait.
 */
import type { Logger } from 'pino';
import { ParleyError } from '../engine.js';

export interface ErrorReply {
  status: number;
  body: { error: string; code: string };
  retryAfterS?: number;
}

export function errorReply(e: unknown, log: Logger): ErrorReply {
  const err = e as Error & { status?: number; expose?: boolean };
  if (err instanceof ParleyError) return { status: err.status, body: { error: err.message, code: err.code }, retryAfterS: err.retryAfterS };
  if (err.status && err.status >= 400 && err.status < 500) {
    // Koa/koa-body client errors (bad JSON, 413…): a clear message of our own.
    return { status: err.status, body: { error: clientErrorText(err), code: clientErrorCode(err.status) } };
  }
  log.error({ err: { type: err.name, message: err.message } }, 'internal error');
  return { status: 500, body: { error: 'Internal error', code: 'internal' } };
}

function clientErrorText(err: Error & { status?: number; expose?: boolean }): string {
  if (err.status === 413) return 'Request body too large';
  if (err.status === 400 && /json/i.test(err.message)) return 'Body must be valid JSON';
  return err.expose ? err.message : 'Bad request';
}

function clientErrorCode(status: number): string {
  return ({ 400: 'bad_request', 404: 'not_found', 405: 'method_not_allowed', 413: 'too_large', 415: 'unsupported_media_type' } as Record<number, string>)[status] ?? 'bad_request';
}
