/**
 * POST /send on plain node:http: the one request every message makes, so it skips Koa's context,
 * router and middleware chain (a third of the broker's CPU per message in `npm run bench`). Same
 * contract as every other route of the HTTP door: `DELIVERED` with `Parley-Message-Id`, or a
 * JSON `{error, code}`; other methods on /send still go to the Koa door (405 with Allow).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import getRawBody from 'raw-body';
import type { DoorContext } from '../doors.js';
import { Engine } from '../engine/engine.js';
import { refuse } from '../engine/errors.js';
import { bearer } from './api.js';
import { errorReply, jsonText, writeReply } from './status.js';

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;
const TEXT_TYPE = 'text/plain; charset=utf-8';
const JSON_TYPE = 'application/json; charset=utf-8';

export function sendHandler(ctx: DoorContext): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const { rooms, limits, config, metrics, log } = ctx;
  const reply = (res: ServerResponse, status: number, type: string, body: string, headers?: Record<string, string>) => {
    writeReply(res, status, type, body, headers);
    metrics.response('/send', status);
  };

  return async (req, res) => {
    const started = performance.now();
    const token = bearer(req.headers.authorization);
    try {
      // An address that keeps failing authentication is refused before anything else.
      if (req.headers.authorization) await limits.checkAuth(() => ctx.bucket(req));
      await limits.check('send', () => (token ? rooms.rateKey(token) : ctx.bucket(req)));
      // A malformed token is refused before its body is read; a well-formed one is checked by the engine.
      if (Engine.isWatchToken(token)) throw refuse('watch_only');
      if (!Engine.wellFormed(token)) throw refuse('unauthorized');
      const key = header(req, 'idempotency-key') || undefined;
      if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) throw refuse('bad_idempotency_key');
      // The body is read only once the token checked out: a bad token is refused without uploading it.
      const { id } = await rooms.send(token, () => bodyText(req, config.maxBodyBytes), { idempotencyKey: key });
      reply(res, 200, TEXT_TYPE, 'DELIVERED', { 'parley-message-id': id });
    } catch (e) {
      const r = errorReply(e, log);
      if (r.body.code === 'unauthorized') await limits.authFailed(() => ctx.bucket(req)).catch(() => undefined);
      const headers: Record<string, string> = r.retryAfterS ? { 'retry-after': String(r.retryAfterS) } : {};
      if (!res.headersSent && !res.destroyed) reply(res, r.status, JSON_TYPE, jsonText(r.body), headers);
    }
    log.debug({ method: 'POST', route: '/send', status: res.statusCode, ms: Math.round(performance.now() - started) }, 'request');
  };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The request body as text, whatever its content type (old scripts post with plain `curl -d`).
 * Compressed bodies are refused rather than inflated: no agent needs them, and a malformed one
 * must not reach a decompressor.
 */
export async function bodyText(req: IncomingMessage, limit: number): Promise<string> {
  const encoding = (header(req, 'content-encoding') || 'identity').trim().toLowerCase();
  if (encoding !== 'identity') throw refuse('unsupported_media_type', `Content-Encoding "${encoding.slice(0, 20)}" is not accepted: send the body uncompressed`);
  return getRawBody(req, { limit, encoding: 'utf8', length: header(req, 'content-length') || undefined });
}
