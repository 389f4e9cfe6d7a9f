/**
 * The A2A door, under /a2a/. Inbound: a listener publishes itself (POST /a2a/publish) and the
 * broker serves it as an A2A agent: its card at /a2a/<id>/.well-known/agent-card.json (and the
 * v0.3 agent.json), JSON-RPC at /a2a/<id>, HTTP+JSON under /a2a/<id>/. Plain node:http, like the
 * /wait door: streams and blocking sends hold their response for minutes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import getRawBody from 'raw-body';
import type { Door, DoorContext } from '../doors.js';
import { refuse } from '../engine/errors.js';
import { bearer } from '../http/api.js';
import { errorReply, jsonText } from '../http/status.js';
import { Dialer } from './dial.js';
import { Operations } from './operations.js';
import { Publications, type Publication } from './publications.js';
import { handleRest, restUnauthorized } from './rest.js';
import { handleRpc, rpcUnauthorized } from './rpc.js';
import { cardV03, cardV1, type CardInfo } from './wire.js';

const JSON_LIMIT = 16 * 1024;
const CARD = /^\/a2a\/([0-9a-f]{24})\/\.well-known\/(agent-card|agent)\.json$/;
const AGENT = /^\/a2a\/([0-9a-f]{24})(\/.*)?$/;
const MANAGE = /^\/a2a\/publish\/([0-9a-f]{24})(\/key)?$/;

/**
 * The broker's external base URL for card links. PUBLIC_URL when set; else the address this
 * request reached (a broker on a laptop). One place, so the switch to config.publicUrl is one line.
 */
export function publicBase(ctx: DoorContext, req: IncomingMessage): string {
  if (ctx.config.publicUrl) return ctx.config.publicUrl.replace(/\/+$/, '');
  const host = req.socket.localAddress ?? '127.0.0.1';
  return `http://${host.includes(':') ? `[${host}]` : host}:${req.socket.localPort}`;
}

export function a2aDoor(ctx: DoorContext): Door & { publications: Publications } {
  const { rooms, limits, log, metrics, config } = ctx;
  const pubs = new Publications(rooms, log, config.messageTtlS * 1000, config.sweepIntervalS * 1000);
  // A blocking send holds like a /wait, and never near Node fetch's 300 s response-header limit.
  const ops = new Operations(pubs, Math.min(config.waitTimeoutS, 280) * 1000);
  const dialer = new Dialer(rooms, log, config.a2aDialAllow);

  const reply = (res: ServerResponse, route: string, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = jsonText(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), 'cache-control': 'no-store', ...headers });
    res.end(text);
    metrics.response(route, status);
  };

  const body = async (req: IncomingMessage, limit: number): Promise<string> => {
    const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    if (encoding !== 'identity') throw refuse('unsupported_media_type');
    return getRawBody(req, { limit, encoding: 'utf8', length: req.headers['content-length'] });
  };

  const jsonBody = async (req: IncomingMessage): Promise<Record<string, unknown>> => {
    const text = await body(req, JSON_LIMIT);
    let parsed: unknown;
    try {
      parsed = text.trim() === '' ? {} : JSON.parse(text);
    } catch {
      throw refuse('bad_request', 'Body must be valid JSON');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw refuse('bad_body', 'Body must be a JSON object');
    return parsed as Record<string, unknown>;
  };

  const publish = async (req: IncomingMessage, res: ServerResponse, base: string) => {
    const token = bearer(req.headers.authorization);
    await limits.check('control', () => (token ? rooms.rateKey(token) : ctx.bucket(req)));
    await rooms.status(token); // a bad token is refused before its body is read
    const b = await jsonBody(req);
    const info = cardInfo(b);
    if (typeof b.listenerCode !== 'string') throw refuse('bad_body', 'listenerCode must be the listener code of your room');
    const { id, accessKey } = await pubs.publish(token, b.listenerCode, info);
    const url = `${base}/a2a/${id}`;
    reply(res, '/a2a/publish', 200, { id, url, agentCardUrl: `${url}/.well-known/agent-card.json`, accessKey, open: accessKey === null });
  };

  const agent = async (req: IncomingMessage, res: ServerResponse, p: Publication, rest: string | undefined) => {
    if (!pubs.authorized(p, req.headers.authorization)) {
      await limits.authFailed(ctx.bucket(req));
      metrics.response('/a2a/:id', 401);
      return rest ? restUnauthorized(res) : rpcUnauthorized(res);
    }
    await limits.check('ping', () => `a2a:${p.info.id}:${ctx.bucket(req)}`);
    pubs.touch(p);
    const text = req.method === 'POST' ? await body(req, config.maxBodyBytes + JSON_LIMIT) : '';
    const route = rest ? '/a2a/:id/rest' : '/a2a/:id';
    if (!rest) {
      if (req.method !== 'POST') throw refuse('method_not_allowed');
      await handleRpc(ops, p, text, req.headers['a2a-version'], res);
    } else {
      await handleRest(ops, p, req.method ?? 'GET', rest, new URLSearchParams((req.url ?? '').split('?')[1] ?? ''), text, req.headers['a2a-version'], res);
    }
    metrics.response(route, res.statusCode);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    let route = '/a2a';
    try {
      if (req.headers.authorization) await limits.checkAuth(ctx.bucket(req));
      const base = publicBase(ctx, req);
      if (path === '/a2a/publish') {
        route = '/a2a/publish';
        if (req.method !== 'POST') throw refuse('method_not_allowed');
        return await publish(req, res, base);
      }
      if (path === '/a2a/dial') {
        route = '/a2a/dial';
        if (req.method !== 'POST') throw refuse('method_not_allowed');
        const token = bearer(req.headers.authorization);
        await limits.check('control', () => (token ? rooms.rateKey(token) : ctx.bucket(req)));
        await rooms.status(token); // a bad token is refused before its body is read
        return reply(res, route, 200, { ok: true, ...(await dialer.dial(token, await jsonBody(req), ctx.bucket(req))) });
      }
      const manage = MANAGE.exec(path);
      if (manage) {
        route = '/a2a/publish/:id';
        const token = bearer(req.headers.authorization);
        await limits.check('control', () => (token ? rooms.rateKey(token) : ctx.bucket(req)));
        if (!manage[2] && req.method === 'DELETE') {
          await pubs.unpublish(token, manage[1]);
          return reply(res, route, 200, { ok: true });
        }
        if (manage[2] && req.method === 'POST') return reply(res, route, 200, { accessKey: await pubs.rotateKey(token, manage[1]) });
        if (!manage[2] && req.method === 'POST') {
          const b = await jsonBody(req);
          if (typeof b.listenerCode !== 'string') throw refuse('bad_body', 'listenerCode must be the listener code of your room');
          const p = await pubs.rearm(token, manage[1], b.listenerCode);
          const url = `${base}/a2a/${p.info.id}`;
          return reply(res, route, 200, { id: p.info.id, url, agentCardUrl: `${url}/.well-known/agent-card.json`, open: p.keyHash === null });
        }
        throw refuse('method_not_allowed');
      }
      const card = CARD.exec(path);
      if (card) {
        route = '/a2a/:id/card';
        if (req.method !== 'GET' && req.method !== 'HEAD') throw refuse('method_not_allowed');
        await limits.check('anon', () => ctx.bucket(req));
        const p = pubs.get(card[1]);
        if (!p || p.endedMs !== null) throw refuse('not_found', 'No such published agent');
        const url = `${base}/a2a/${p.info.id}`;
        return reply(res, route, 200, card[2] === 'agent' ? cardV03(p.info, url) : cardV1(p.info, url), { 'access-control-allow-origin': '*' });
      }
      const m = AGENT.exec(path);
      const p = m && pubs.get(m[1]);
      if (!m || !p) throw refuse('not_found', 'No such published agent');
      route = '/a2a/:id';
      return await agent(req, res, p, m[2] && m[2] !== '/' ? m[2] : undefined);
    } catch (e) {
      if (res.headersSent) return void res.end();
      const r = errorReply(e, log);
      if (r.body.code === 'unauthorized') await limits.authFailed(ctx.bucket(req)).catch(() => undefined);
      reply(res, route, r.status, r.body, r.retryAfterS ? { 'retry-after': String(r.retryAfterS) } : {});
    }
  };

  return {
    name: 'a2a',
    claims: (path) => path === '/a2a' || path.startsWith('/a2a/'),
    handle,
    publications: pubs,
    close: () => {
      pubs.close();
      dialer.close();
    },
  };
}

const NAME = /^[^\x00-\x1f\x7f]{1,100}$/;

/** Name, description and skills of the card, validated: short, printable, at most 20 skills. */
function cardInfo(b: Record<string, unknown>): Omit<CardInfo, 'id'> {
  const text = (v: unknown, what: string, max: number, fallback?: string): string => {
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'string' || v.length > max || !/^[^\x00-\x08\x0b-\x1f\x7f]*$/.test(v)) throw refuse('bad_body', `${what} must be text of at most ${max} characters`);
    return v;
  };
  if (typeof b.name !== 'string' || !NAME.test(b.name)) throw refuse('bad_body', 'name must be 1 to 100 printable characters');
  if (b.open !== undefined && typeof b.open !== 'boolean') throw refuse('bad_body', 'open must be true or false');
  if (b.skills !== undefined && (!Array.isArray(b.skills) || b.skills.length > 20)) throw refuse('bad_body', 'skills must be a list of at most 20 skills');
  const skills = ((b.skills as unknown[] | undefined) ?? []).map((s, i) => {
    if (typeof s !== 'object' || s === null) throw refuse('bad_body', 'each skill must be an object {id?, name, description, tags?, examples?}');
    const o = s as Record<string, unknown>;
    const list = (v: unknown, what: string) => {
      if (v === undefined) return [];
      if (!Array.isArray(v) || v.length > 20) throw refuse('bad_body', `${what} must be a list of at most 20 strings`);
      return v.map((x) => text(x, what, 200));
    };
    return {
      id: text(o.id, 'skill id', 100, `skill-${i + 1}`),
      name: text(o.name, 'skill name', 100),
      description: text(o.description, 'skill description', 2000, ''),
      tags: list(o.tags, 'skill tags'),
      ...(o.examples !== undefined ? { examples: list(o.examples, 'skill examples') } : {}),
    };
  });
  const name = b.name;
  const fallbackSkill = { id: 'conversation', name: 'Conversation', description: 'Talk with this participant, walkie-talkie style: each reply ends its turn.', tags: ['parley'] };
  return { name, description: text(b.description, 'description', 2000, `${name}, a participant in a Parley room`), skills: skills.length ? skills : [fallbackSkill], open: b.open === true };
}
