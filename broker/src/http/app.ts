/**
 * The HTTP adapter: A2A Linker's wire contract over Koa, mapped onto the room engine.
 * Each route parses its input, calls one engine method and writes the exact response shape
 * that existing agent scripts grep for. GET /wait, the long-poll, lives in wait.ts.
 */
import Router from '@koa/router';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Koa, { type Context, type Next } from 'koa';
import { koaBody } from 'koa-body';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { Engine, ParleyError, unauthorized } from '../engine.js';
import type { Metrics } from '../metrics.js';
import type { Store } from '../store.js';
import { addressBucket, clientAddressResolver } from './client-address.js';
import { errorReply } from './errors.js';
import { rateLimits } from './rate-limit.js';
import { bearer as bearerOf, waitHandler } from './wait.js';

type Deps = { engine: Engine; store: Store; config: Config; metrics: Metrics; log: Logger };

/** The request handler for node:http: /wait on its own, everything else through Koa. */
export function httpHandler(deps: Deps): (req: IncomingMessage, res: ServerResponse) => void {
  const clientAddress = clientAddressResolver(deps.config.trustedProxies);
  const limits = rateLimits(deps.config, deps.metrics);
  // Per-token limits are keyed by the token's hash (never the token); no token means the address bucket.
  const tokenKey = (req: IncomingMessage, token: string | undefined) => (token ? deps.store.hash(token).toString('hex') : addressBucket(clientAddress(req)));
  const koa = createApp(deps, { clientAddress, limits, tokenKey }).callback();
  const wait = waitHandler({ ...deps, limits, tokenKey });
  return (req, res) => {
    const url = req.url ?? '';
    if (url === '/wait' || url.startsWith('/wait?')) void wait(req, res);
    else void koa(req, res);
  };
}

function createApp(
  deps: Deps,
  http: { clientAddress: (req: IncomingMessage) => string; limits: ReturnType<typeof rateLimits>; tokenKey: (req: IncomingMessage, token: string | undefined) => string },
): Koa {
  const { engine, config, metrics, log } = deps;
  const app = new Koa();
  app.silent = true; // errors are logged by our own middleware, without their context
  const limit = http.limits.middleware;
  const byAddress = (ctx: Context) => addressBucket(http.clientAddress(ctx.req));
  const byToken = (ctx: Context) => http.tokenKey(ctx.req, bearer(ctx));
  const anon = limit('anon', byAddress);
  // Bodies are parsed whatever their content type: old scripts post with plain `curl -d` (form-encoded) as often as with the right header.
  const json = koaBody({ json: true, jsonLimit: '16kb', jsonStrict: true, jsonTypes: ['*/*'], text: false, urlencoded: false, multipart: false });
  const text = koaBody({ text: true, textLimit: config.maxBodyBytes, textTypes: ['*/*'], json: false, urlencoded: false, multipart: false });
  // A malformed token is refused before its body is read; a well-formed one is checked by the engine.
  const authenticated = (ctx: Context, next: Next) => {
    if (!Engine.wellFormed(bearer(ctx))) throw unauthorized();
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

  r.get('/ping', limit('ping', byToken), (ctx) => {
    ctx.body = engine.ping(bearer(ctx));
  });

  app.use(r.routes());
  app.use(r.allowedMethods()); // 405 with Allow for a known path and a wrong method
  return app;
}

function bearer(ctx: Context): string | undefined {
  return bearerOf(ctx.get('authorization'));
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
      const r = errorReply(e, log);
      ctx.status = r.status;
      ctx.body = r.body;
      if (r.retryAfterS) ctx.set('Retry-After', String(r.retryAfterS));
    } finally {
      // Route patterns only: paths can hold codes, and tokens live in headers we never log.
      const route = (ctx as Context & { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
      metrics.responses.inc({ route, status: String(ctx.status) });
      log.debug({ method: ctx.method, route, status: ctx.status, ms: Math.round(performance.now() - started) }, 'request');
    }
  };
}
