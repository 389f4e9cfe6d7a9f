/**
 * GET /wait, the long-poll (and GET /watch/wait, a watcher's), as a door of its own on plain node:http rather than Koa. Thousands of
 * idle rooms each hold two of these for up to WAIT_TIMEOUT_S; Koa keeps a context, its wrappers
 * and a finish listener alive per request, which doubled the memory of an idle room.
 *
 * The body is A2A Linker text, byte for byte; `Parley-Event` and `Parley-Event-Id` say what it is,
 * so clients switch on a header instead of matching sentences.
 *
 * A client that sends `Accept: application/json` gets the event itself as JSON instead (the SSH
 * broker does, and renders it in its own words).
 *
 * Delivery: a client that sends `?ack=` (or a `Parley-Ack` header), even empty, acknowledges:
 * each event stays leased until its next wait names it, so an answer lost on the way is handed
 * out again (same id). A client that never acknowledges gets today's rule: an event counts as
 * delivered once its response is fully written.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Door, DoorContext } from '../doors.js';
import { refuse } from '../engine/errors.js';
import type { Cancellation, Lease, NextOptions } from '../engine/service.js';
import { HTTP_WORDS, renderEvent, timeoutText } from '../framing.js';
import { bearer } from './api.js';
import { errorReply, jsonText, writeReply } from './status.js';

const EVENT_ID = /^evt_[0-9a-f]{16}$/;
const TEXT_TYPE = 'text/plain; charset=utf-8';
const JSON_TYPE = 'application/json; charset=utf-8';

export function waitDoor(ctx: DoorContext): Door {
  const participant = longPoll(ctx, '/wait', (token, opts) => ctx.rooms.next(token, opts));
  // A watcher's feed (watch links): the same long-poll over its own queue.
  const watcher = longPoll(ctx, '/watch/wait', (token, opts) => ctx.rooms.watchNext(token, opts));
  return {
    name: 'http-wait',
    claims: (path) => path === '/wait' || path === '/watch/wait',
    handle: (req, res) => ((req.url ?? '').startsWith('/watch/') ? watcher : participant)(req, res),
  };
}

/** One long-poll route over `next` (GET /wait for participants, GET /watch/wait for watchers). */
export function longPoll(ctx: DoorContext, route: string, next: (token: string | undefined, opts: NextOptions) => Promise<Lease | null>) {
  const { rooms, config, metrics, log, limits } = ctx;

  const reply = (res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}) => {
    writeReply(res, status, type, body, headers);
    metrics.response(route, status);
    log.debug({ method: 'GET', route, status }, 'request');
  };

  const refuseWith = async (req: IncomingMessage, res: ServerResponse, e: unknown, headers: Record<string, string> = {}) => {
    const r = errorReply(e, log);
    if (r.body.code === 'unauthorized') await limits.authFailed(() => ctx.bucket(req)).catch(() => undefined);
    if (r.retryAfterS) headers['retry-after'] = String(r.retryAfterS);
    reply(res, r.status, JSON_TYPE, jsonText(r.body), headers);
  };

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      // HEAD would take an event off the queue and never send it.
      if (req.method !== 'GET') return await refuseWith(req, res, refuse('method_not_allowed'), { allow: 'GET' });
      const token = bearer(req.headers.authorization);
      if (token) await limits.checkAuth(() => ctx.bucket(req));
      await limits.check('wait', () => (token ? rooms.rateKey(token) : ctx.bucket(req)));
      const query = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
      const seconds = waitSeconds(query.get('timeout'), config.waitTimeoutS);
      const ackParam = query.get('ack') ?? headerOf(req, 'parley-ack');
      const acking = ackParam !== undefined && ackParam !== null;
      if (acking && ackParam !== '' && !EVENT_ID.test(ackParam)) throw refuse('bad_ack', 'ack must be the Parley-Event-Id of an event you received (evt_ and 16 hex digits)');
      // A client that goes away while waiting leaves no waiter behind.
      const gone = new ClientGone();
      res.once('close', gone.abort);
      const lease = await next(token, { timeoutMs: seconds * 1000, signal: gone, ack: ackParam || undefined, acking });
      res.off('close', gone.abort);
      if (res.destroyed) return lease?.settle(false);
      const asJson = /\bapplication\/json\b/.test(req.headers.accept ?? '');
      if (!lease) {
        const body = asJson ? jsonText({ kind: 'timeout', seconds }) : timeoutText(seconds);
        return reply(res, 200, asJson ? JSON_TYPE : TEXT_TYPE, body, { 'parley-event': 'timeout' });
      }
      settleOnFlush(res, lease);
      const body = asJson ? jsonText(lease.event) : renderEvent(lease.event, HTTP_WORDS);
      reply(res, 200, asJson ? JSON_TYPE : TEXT_TYPE, body, { 'parley-event': lease.event.kind, 'parley-event-id': lease.event.id });
    } catch (e) {
      if (!res.headersSent && !res.destroyed) await refuseWith(req, res, e);
    }
  };
}

/** Cancels a held wait when its connection closes; an AbortController per wait costs an EventTarget. */
class ClientGone implements Cancellation {
  aborted = false;
  private listener?: () => void;
  addEventListener(_type: 'abort', listener: () => void): void {
    this.listener = listener;
  }
  readonly abort = (): void => {
    if (this.aborted) return;
    this.aborted = true;
    this.listener?.();
  };
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * An event counts as reaching the client once 'finish' comes on a live socket; otherwise it goes
 * back to the head of the queue. (Node also emits 'finish' while tearing down a socket that died
 * mid-write, and res.writableFinished reads true once the socket is detached.)
 */
export function settleOnFlush(res: ServerResponse, lease: Lease): void {
  const socket = res.socket;
  let flushed = false;
  res.once('finish', () => (flushed = socket !== null && !socket.destroyed));
  res.once('close', () => lease.settle(flushed));
}

function waitSeconds(raw: string | null, max: number): number {
  if (raw === null || raw === '') return max;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw refuse('bad_timeout', `timeout must be a whole number of seconds from 1 to ${max} (larger values are cut to ${max})`);
  return Math.min(Number(raw), max);
}
