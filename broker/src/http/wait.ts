/**
 * GET /wait, the long-poll, on plain node:http rather than Koa. Thousands of idle rooms each
 * hold two of these for up to WAIT_TIMEOUT_S; Koa keeps a context, its request/response
 * wrappers and a finish listener alive per request, which doubled the memory of an idle room.
 * Same contract as every other route: JSON {error, code} refusals, rate limits, metrics.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { type Delivery, type Engine, ParleyError } from '../engine.js';
import { timeoutText } from '../framing.js';
import type { Metrics } from '../metrics.js';
import { errorReply } from './errors.js';
import type { RateLimits } from './rate-limit.js';

export function waitHandler(deps: { engine: Engine; config: Config; metrics: Metrics; log: Logger; limits: RateLimits; tokenKey: (req: IncomingMessage, token: string | undefined) => string }) {
  const { engine, config, metrics, log, limits, tokenKey } = deps;

  const reply = (res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, {
      'content-type': type,
      'content-length': String(Buffer.byteLength(body)),
      'cache-control': 'no-store',
      ...(engine.isDraining ? { connection: 'close' } : {}),
      ...headers,
    });
    res.end(body);
    metrics.responses.inc({ route: '/wait', status: String(status) });
    log.debug({ method: 'GET', route: '/wait', status }, 'request');
  };

  const refuse = (res: ServerResponse, e: unknown, headers: Record<string, string> = {}) => {
    const r = errorReply(e, log);
    if (r.retryAfterS) headers['retry-after'] = String(r.retryAfterS);
    reply(res, r.status, 'application/json; charset=utf-8', JSON.stringify(r.body), headers);
  };

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return refuse(res, new ParleyError(405, 'Method not allowed', 'method_not_allowed'), { allow: 'GET, HEAD' });
      const token = bearer(req.headers.authorization);
      await limits.check('wait', () => tokenKey(req, token));
      const seconds = waitSeconds(req.url ?? '', config.waitTimeoutS);
      const { result, cancel } = engine.wait(token, seconds * 1000);
      // A client that goes away while waiting leaves no waiter behind.
      res.once('close', cancel);
      const delivery = await result;
      res.off('close', cancel);
      if (res.destroyed) return delivery?.settle(false);
      if (delivery) settleOnFlush(res, delivery);
      reply(res, 200, 'text/plain; charset=utf-8', delivery ? delivery.body : timeoutText(seconds));
    } catch (e) {
      if (!res.headersSent && !res.destroyed) refuse(res, e);
    }
  };
}

/**
 * An event counts as delivered once 'finish' comes on a live socket; otherwise it goes back to
 * the head of the queue. (Node also emits 'finish' while tearing down a socket that died
 * mid-write, and res.writableFinished reads true once the socket is detached.)
 */
function settleOnFlush(res: ServerResponse, delivery: Delivery): void {
  const socket = res.socket;
  let flushed = false;
  res.once('finish', () => (flushed = socket !== null && !socket.destroyed));
  res.once('close', () => delivery.settle(flushed));
}

export function bearer(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}

function waitSeconds(url: string, max: number): number {
  const q = url.indexOf('?');
  const raw = q < 0 ? null : new URLSearchParams(url.slice(q + 1)).get('timeout');
  if (raw === null || raw === '') return max;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new ParleyError(400, `timeout must be a whole number of seconds from 1 to ${max}`, 'bad_timeout');
  return Math.min(Number(raw), max);
}
