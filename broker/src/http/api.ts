/**
 * The HTTP door: A2A Linker's wire contract over Koa, mapped onto the RoomService. Each route
 * parses its input, calls one service method and writes the exact response shape that existing
 * agent scripts grep for. GET /wait (wait.ts) and the operations routes (ops.ts) are doors of
 * their own; this one is the fallback for every other path (404 in JSON).
 */
import Router from '@koa/router';
import Koa, { type Context, type Next } from 'koa';
import type { Door, DoorContext } from '../doors.js';
import { Engine } from '../engine/engine.js';
import { refuse } from '../engine/errors.js';
import { connectedText, rulesText } from '../framing.js';
import { publicBase } from '../a2a/door.js';
import type { Joined, Side } from '../engine/service.js';
import { bodyText, sendHandler } from './send.js';
import { errorReply, jsonText } from './status.js';

/** The token from `Authorization: Bearer …`. */
export function bearer(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}

const JSON_LIMIT = 16 * 1024;

export function apiDoor(ctx: DoorContext): Door {
  const { rooms, limits } = ctx;
  const app = new Koa();
  app.silent = true; // errors are logged by our own middleware, without their context
  const token = (c: Context) => bearer(c.get('authorization'));
  const limit = (name: Parameters<typeof limits.check>[0], keyOf: (c: Context) => string) => async (c: Context, next: Next) => {
    await limits.check(name, () => keyOf(c));
    return next();
  };
  const byAddress = (c: Context) => ctx.bucket(c.req);
  // Per-token limits are keyed by the token's keyed hash (never the token); no token means the address bucket.
  const byToken = (c: Context) => {
    const t = token(c);
    return t ? rooms.rateKey(t) : byAddress(c);
  };
  const anon = limit('anon', byAddress);
  const control = limit('control', byToken);
  // A malformed token is refused before its body is read; a well-formed one is checked by the engine.
  const authenticated = (c: Context, next: Next) => {
    if (!Engine.wellFormed(token(c))) throw refuse('unauthorized');
    return next();
  };

  app.use(errorsAsJson(ctx));

  const send = sendHandler(ctx);
  const r = new Router();
  r.post('/register', anon, async (c) => {
    c.body = await rooms.register(byAddress(c));
  });
  r.post('/setup', anon, async (c) => {
    const body = await jsonObject(c);
    const type = body.type ?? 'standard';
    if (type !== 'standard' && type !== 'listener') throw refuse('bad_type');
    const s = await rooms.setup(type, optionalBool(body, 'headless'), byAddress(c));
    c.body = { token: s.token, code: s.code, role: s.role };
  });
  r.post('/create', anon, async (c) => {
    c.body = { inviteCode: (await rooms.open(token(c), 'standard', undefined, byAddress(c))).code };
  });
  r.post('/listen', anon, async (c) => {
    c.body = { listenerCode: (await rooms.open(token(c), 'listener', undefined, byAddress(c))).code };
  });
  r.post('/join/:code', anon, async (c) => {
    c.body = joinAnswer(await rooms.join(token(c), c.params.code));
  });
  r.post('/register-and-join/:code', anon, async (c) => {
    const j = await rooms.registerAndJoin(c.params.code, byAddress(c));
    c.body = { token: j.token, ...joinAnswer(j) };
  });
  r.post('/room-rule/headless', anon, authenticated, async (c) => {
    // The body is read only once the token checked out.
    const headless = async () => {
      const v = optionalBool(await jsonObject(c), 'headless');
      if (v === undefined) throw refuse('bad_body', 'Body must be JSON {"headless": true|false}');
      return v;
    };
    c.body = { ok: true, ...(await rooms.setHeadless(token(c), headless)) };
  });
  r.post('/resume', control, async (c) => {
    await rooms.resume(token(c));
    c.body = { ok: true };
  });
  r.post('/leave', control, async (c) => {
    await rooms.leave(token(c));
    c.body = { ok: true };
  });

  // Watch links (README "Watch link"): an agent asks for one for its human; the console redeems
  // the code from the link's fragment, which never reaches a server, a log or a Referer.
  r.post('/watch', control, async (c) => {
    const { code, expiresInS } = await rooms.watchLink(token(c));
    c.body = { url: `${publicBase(ctx, c.req)}/console/#watch=${code}`, expires_in_s: expiresInS };
  });
  r.post('/watch/redeem', anon, async (c) => {
    const { code } = await jsonObject(c);
    if (typeof code !== 'string') throw refuse('bad_body', 'Body must be JSON {"code": "watch_…"}');
    const w = await rooms.redeemWatch(code);
    c.body = { token: w.token, agent: w.agentId };
  });
  r.get('/watch/status', limit('ping', byToken), async (c) => {
    const s = await rooms.watchStatus(token(c));
    const side = (x: Side | null) => x && { agent_id: x.agentId, role: x.role, presence: x.presence, last_seen_ms: x.lastSeenMs };
    c.body = { agent: side(s.agent), partner: side(s.partner), paused: s.paused, headless: s.headless };
  });
  r.post('/watch/resume', control, async (c) => {
    await rooms.watchResume(token(c));
    c.body = { ok: true };
  });
  r.post('/watch/end', control, async (c) => {
    await rooms.watchEnd(token(c));
    c.body = { ok: true };
  });

  // POST /send is served by send.ts on plain node:http before Koa sees it; this route catches the
  // spellings that skip it (`/send/`) and gives other methods on /send their 405.
  r.post('/send', async (c) => {
    c.respond = false;
    await send(c.req, c.res);
  });

  r.get('/messages/:id', limit('ping', byToken), async (c) => {
    c.body = { id: c.params.id, fate: await rooms.fate(token(c), c.params.id) };
  });

  r.get('/ping', limit('ping', byToken), async (c) => {
    const s = await rooms.status(token(c));
    c.body = {
      room_alive: s.inRoom,
      partner_connected: s.partner !== null,
      partner_last_seen_ms: s.partner?.lastSeenMs ?? null,
      partner_presence: s.inRoom ? (s.partner?.presence ?? 'gone') : null,
      paused: s.paused,
    };
  });

  app.use(r.routes());
  app.use(r.allowedMethods()); // 405 with Allow for a known path and a wrong method, 501 for an unknown method
  const koa = app.callback();
  return {
    name: 'http-api',
    claims: () => true,
    handle: (req, res) => (req.method === 'POST' && (req.url === '/send' || req.url?.startsWith('/send?')) ? send(req, res) : koa(req, res)),
  };
}

function joinAnswer(j: Joined) {
  return { role: j.role, headless: j.headless, rules: rulesText(j.headless), status: connectedText(j.connected) };
}

async function jsonObject(c: Context): Promise<Record<string, unknown>> {
  const text = await bodyText(c.req, JSON_LIMIT);
  if (text.trim() === '') return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw refuse('bad_request', 'Body must be valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw refuse('bad_body', 'Body must be a JSON object');
  return body as Record<string, unknown>;
}

function optionalBool(body: Record<string, unknown>, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw refuse('bad_body', `${key} must be true or false`);
  return v;
}

function errorsAsJson(ctx: DoorContext) {
  const { log, metrics, limits } = ctx;
  return async (c: Context, next: Next) => {
    const started = performance.now();
    try {
      // An address that keeps failing authentication is refused before anything else.
      if (c.get('authorization')) await limits.checkAuth(() => ctx.bucket(c.req));
      await next();
      if (c.status === 405) throw refuse('method_not_allowed');
      if (c.status === 501) throw refuse('not_implemented');
      if (c.status === 404 && c.body === undefined) throw refuse('not_found');
    } catch (e) {
      const r = errorReply(e, log);
      if (r.body.code === 'unauthorized') await limits.authFailed(() => ctx.bucket(c.req));
      c.status = r.status;
      c.body = r.body;
      if (r.retryAfterS) c.set('Retry-After', String(r.retryAfterS));
    } finally {
      if (c.body !== null && typeof c.body === 'object' && !Buffer.isBuffer(c.body)) {
        c.type = 'application/json';
        c.body = jsonText(c.body);
      }
      // Route patterns only: paths can hold codes, and tokens live in headers we never log.
      const route = (c as Context & { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
      metrics.response(route, c.status);
      log.debug({ method: c.method, route, status: c.status, ms: Math.round(performance.now() - started) }, 'request');
    }
  };
}
