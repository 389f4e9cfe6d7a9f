/**
 * The HTTP adapter: A2A Linker's wire contract over Koa, mapped onto the room engine.
 * Each route parses its input, calls one engine method and writes the exact response shape
 * that existing agent scripts grep for.
 */
import Router from '@koa/router';
import type { ServerResponse } from 'node:http';
import Koa, { type Context, type Next } from 'koa';
import { koaBody } from 'koa-body';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { type Delivery, type Engine, ParleyError } from '../engine.js';
import { timeoutText } from '../framing.js';
import type { Metrics } from '../metrics.js';
import type { Store } from '../store.js';
import { addressBucket, clientAddressResolver } from './client-address.js';
import { rateLimits } from './rate-limit.js';

export function createApp(deps: { engine: Engine; store: Store; config: Config; metrics: Metrics; log: Logger }): Koa {
  const { engine, store, config, metrics, log } = deps;
  const app = new Koa();
  const clientAddress = clientAddressResolver(config.trustedProxies);
  const limit = rateLimits(config, metrics);
  const byAddress = (ctx: Context) => addressBucket(clientAddress(ctx.req));
  const byToken = (ctx: Context) => {
    const t = bearer(ctx);
    return t ? store.hash(t).toString('hex') : byAddress(ctx);
  };
  const anon = limit('anon', byAddress);
  // Bodies are parsed whatever their content type: old scripts post with plain `curl -d` (form-encoded) as often as with the right header.
  const json = koaBody({ json: true, jsonLimit: '16kb', jsonStrict: true, jsonTypes: ['*/*'], text: false, urlencoded: false, multipart: false });
  const text = koaBody({ text: true, textLimit: config.maxBodyBytes, textTypes: ['*/*'], json: false, urlencoded: false, multipart: false });
  const authenticated = (ctx: Context, next: Next) => {
    engine.ping(bearer(ctx)); // 401 before reading a body we would throw away
    return next();
  };

  app.use(errorsAsJson(log, metrics));
  // While draining, every response closes its connection so the process can exit promptly.
  app.use(async (ctx, next) => {
    try {
      await next();
    } finally {
      if (engine.isDraining) ctx.set('Connection', 'close');
    }
  });

  const r = new Router();
  r.get('/health', (ctx) => {
    ctx.body = { ok: true };
  });
  r.get('/ready', (ctx) => {
    ctx.status = engine.isDraining ? 503 : 200;
    ctx.body = { ready: !engine.isDraining };
  });
  r.get('/metrics', async (ctx) => {
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });

  r.post('/register', anon, (ctx) => {
    ctx.body = engine.register();
  });
  r.post('/setup', anon, json, (ctx) => {
    const body = jsonObject(ctx);
    const type = body.type ?? 'standard';
    if (type !== 'standard' && type !== 'listener') throw new ParleyError(400, 'type must be "standard" or "listener"', 'bad_type');
    ctx.body = engine.setup(type, optionalBool(body, 'headless'));
  });
  r.post('/create', anon, (ctx) => {
    ctx.body = { inviteCode: engine.openRoom(bearer(ctx), 'standard').code };
  });
  r.post('/listen', anon, (ctx) => {
    ctx.body = { listenerCode: engine.openRoom(bearer(ctx), 'listener').code };
  });
  r.post('/join/:code', anon, (ctx) => {
    ctx.body = engine.join(bearer(ctx), ctx.params.code);
  });
  r.post('/register-and-join/:code', anon, (ctx) => {
    ctx.body = engine.registerAndJoin(ctx.params.code);
  });
  r.post('/room-rule/headless', anon, json, (ctx) => {
    const headless = optionalBool(jsonObject(ctx), 'headless');
    if (headless === undefined) throw new ParleyError(400, 'Body must be JSON {"headless": true|false}', 'bad_body');
    ctx.body = engine.setHeadless(bearer(ctx), headless);
  });
  r.post('/resume', anon, (ctx) => {
    ctx.body = engine.resume(bearer(ctx));
  });
  r.post('/leave', anon, (ctx) => {
    ctx.body = engine.leave(bearer(ctx));
  });

  r.post('/send', limit('send', byToken), authenticated, text, (ctx) => {
    const body = ctx.request.body;
    ctx.type = 'text/plain';
    ctx.body = engine.send(bearer(ctx), typeof body === 'string' ? body : '');
  });

  r.get('/wait', limit('wait', byToken), (ctx) => {
    const seconds = waitSeconds(ctx.query.timeout, config.waitTimeoutS);
    const { result, cancel } = engine.wait(bearer(ctx), seconds * 1000); // refusals throw here, as JSON errors
    // Answered by hand when the event comes: a held poll then keeps only its socket and a
    // waiter, not Koa's whole middleware chain (thousands of idle rooms hold two each).
    ctx.respond = false;
    answerWait(ctx.res, result, cancel, seconds, engine, metrics);
  });

  r.get('/ping', limit('ping', byToken), (ctx) => {
    ctx.body = engine.ping(bearer(ctx));
  });

  app.use(r.routes());
  app.use(r.allowedMethods()); // 405 with Allow for a known path and a wrong method
  return app;
}

function bearer(ctx: Context): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(ctx.get('authorization'));
  return m?.[1];
}

function jsonObject(ctx: Context): Record<string, unknown> {
  const body = ctx.request.body;
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw new ParleyError(400, 'Body must be a JSON object', 'bad_body');
  return body as Record<string, unknown>;
}

function optionalBool(body: Record<string, unknown>, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new ParleyError(400, `${key} must be true or false`, 'bad_body');
  return v;
}

function waitSeconds(raw: unknown, max: number): number {
  if (raw === undefined || raw === '') return max;
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || Number(raw) < 1)
    throw new ParleyError(400, `timeout must be a whole number of seconds from 1 to ${max}`, 'bad_timeout');
  return Math.min(Number(raw), max);
}

/**
 * Writes a /wait answer once the engine has one. A client that hangs up first leaves no waiter
 * behind; an event counts as delivered only once its whole response left, otherwise it goes
 * back to the head of the queue.
 */
function answerWait(res: ServerResponse, result: Promise<Delivery | null>, cancel: () => void, seconds: number, engine: Engine, metrics: Metrics): void {
  res.once('close', cancel);
  result.then((delivery) => {
    res.off('close', cancel);
    if (res.destroyed) return delivery?.settle(false);
    const body = delivery ? delivery.body : timeoutText(seconds);
    res.writeHead(200, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      ...(engine.isDraining ? { connection: 'close' } : {}),
    });
    // Delivered once 'finish' comes on a live socket: Node also emits 'finish' while tearing down a
    // socket that died mid-write (and res.writableFinished reads true once the socket is detached).
    if (delivery) {
      const socket = res.socket;
      let flushed = false;
      res.once('finish', () => (flushed = socket !== null && !socket.destroyed));
      res.once('close', () => delivery.settle(flushed));
    }
    res.end(body);
    metrics.responses.inc({ route: '/wait', status: '200' });
  });
}

function errorsAsJson(log: Logger, metrics: Metrics) {
  return async (ctx: Context, next: Next) => {
    const started = performance.now();
    try {
      await next();
      if (ctx.status === 405) ctx.body = { error: 'Method not allowed', code: 'method_not_allowed' };
      else if (ctx.status === 404 && ctx.body === undefined) {
        ctx.status = 404; // explicit, or Koa turns it into a 200 once a body is set
        ctx.body = { error: 'Not found', code: 'not_found' };
      }
    } catch (e) {
      const err = e as Error & { status?: number; expose?: boolean };
      if (err instanceof ParleyError) {
        ctx.status = err.status;
        ctx.body = { error: err.message, code: err.code };
        if (err.retryAfterS) ctx.set('Retry-After', String(err.retryAfterS));
      } else if (err.status && err.status >= 400 && err.status < 500) {
        // Koa/koa-body client errors (bad JSON, 405, 413…): a clear message, never a stack.
        ctx.status = err.status;
        ctx.body = { error: clientErrorText(err), code: clientErrorCode(err.status) };
      } else {
        log.error({ err: { type: err.name, message: err.message } }, 'internal error');
        ctx.status = 500;
        ctx.body = { error: 'Internal error', code: 'internal' };
      }
    } finally {
      // Route patterns only: paths can hold codes, and tokens live in headers we never log.
      const route = (ctx as Context & { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
      if (ctx.respond !== false) metrics.responses.inc({ route, status: String(ctx.status) }); // hand-answered ones count themselves
      log.debug({ method: ctx.method, route, status: ctx.status, ms: Math.round(performance.now() - started) }, 'request');
    }
  };
}

function clientErrorText(err: Error & { status?: number; expose?: boolean }): string {
  if (err.status === 413) return 'Request body too large';
  if (err.status === 400 && /json/i.test(err.message)) return 'Body must be valid JSON';
  return err.expose ? err.message : 'Bad request';
}

function clientErrorCode(status: number): string {
  return ({ 400: 'bad_request', 404: 'not_found', 405: 'method_not_allowed', 413: 'too_large', 415: 'unsupported_media_type' } as Record<number, string>)[status] ?? 'bad_request';
}
