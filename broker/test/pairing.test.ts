/** Tokens, rooms and one-time codes over real HTTP. */
import { describe, expect, it } from 'vitest';
import { rulesText } from '../src/framing.js';
import { broker, client } from './helpers.js';

describe('registration and setup', () => {
  it('POST /register returns a tok_ token', async () => {
    const api = client((await broker()).url);
    const r = await api.register();
    expect(r.status).toBe(200);
    expect(r.text).toMatch(/^\{"token":"tok_[0-9a-f]{32}"\}\n$/); // JSON answers end with a newline
  });

  it('POST /setup standard makes the caller host of a room with an invite code', async () => {
    const api = client((await broker()).url);
    const r = await api.setup({ type: 'standard' });
    expect(r.status).toBe(200);
    expect(Object.keys(r.json)).toEqual(['token', 'code', 'role']);
    expect(r.json.token).toMatch(/^tok_[0-9a-f]{32}$/);
    expect(r.json.code).toMatch(/^invite_[0-9a-f]{32}$/);
    expect(r.json.role).toBe('host');
  });

  it('POST /setup listener makes the caller joiner with a listen_ code, headless by default', async () => {
    const api = client((await broker()).url);
    const r = await api.setup({ type: 'listener' });
    expect(r.json.code).toMatch(/^listen_[0-9a-f]{32}$/);
    expect(r.json.role).toBe('joiner');
    const j = await api.registerAndJoin(r.json.code);
    expect(j.json).toMatchObject({ role: 'host', headless: true, status: '(2/2 connected)' });
  });

  it('POST /setup reads JSON even when curl sends it form-encoded, and defaults to standard', async () => {
    const api = client((await broker()).url);
    const r = await api.call('POST', '/setup', { body: '{"type":"listener"}', type: 'application/x-www-form-urlencoded' });
    expect(r.json.role).toBe('joiner');
    const empty = await api.call('POST', '/setup');
    expect(empty.json.role).toBe('host');
  });

  it.each([
    ['{"type":"party"}', 'bad_type'],
    ['{"type":"standard","headless":"yes"}', 'bad_body'],
    ['[1,2]', 'bad_body'],
    ['{not json', 'bad_request'],
  ])('POST /setup with %s is a 400 and creates nothing', async (body, code) => {
    const b = await broker();
    const api = client(b.url);
    const r = await api.call('POST', '/setup', { body, type: 'application/json' });
    expect(r.status).toBe(400);
    expect(r.json.code).toBe(code);
    expect(typeof r.json.error).toBe('string');
    expect(b.engine.stats().rooms).toBe(0);
  });

  it('POST /create and /listen return an invite or listener code for an existing token', async () => {
    const api = client((await broker()).url);
    const a = (await api.register()).json.token;
    const c = await api.call('POST', '/create', { token: a });
    expect(c.text).toMatch(/^\{"inviteCode":"invite_[0-9a-f]{32}"\}\n$/);
    await api.leave(a);
    const l = await api.call('POST', '/listen', { token: a });
    expect(l.text).toMatch(/^\{"listenerCode":"listen_[0-9a-f]{32}"\}\n$/);
  });

  it('a token is in at most one room and creates at most 3 rooms', async () => {
    const api = client((await broker()).url);
    const a = (await api.register()).json.token;
    expect((await api.call('POST', '/create', { token: a })).status).toBe(200);
    const again = await api.call('POST', '/create', { token: a });
    expect(again.status).toBe(409);
    expect(again.json.code).toBe('already_in_room');
    await api.leave(a);
    expect((await api.call('POST', '/create', { token: a })).status).toBe(200);
    await api.leave(a);
    expect((await api.call('POST', '/listen', { token: a })).status).toBe(200);
    await api.leave(a);
    const fourth = await api.call('POST', '/create', { token: a });
    expect(fourth.status).toBe(403);
    expect(fourth.json.code).toBe('room_limit');
  });

  it('/create without a valid token is 401', async () => {
    const api = client((await broker()).url);
    for (const token of [undefined, 'tok_nothex', `tok_${'0'.repeat(32)}`]) {
      const r = await api.call('POST', '/create', { token });
      expect(r.status).toBe(401);
      expect(r.json).toEqual({ error: 'Invalid or expired token', code: 'unauthorized' });
    }
  });
});

describe('joining with a code', () => {
  it('an invite makes the redeemer joiner and tells the host the session is live', async () => {
    const api = client((await broker()).url);
    const host = (await api.setup()).json;
    const joiner = (await api.register()).json.token;
    const j = await api.join(joiner, host.code);
    expect(j.status).toBe(200);
    expect(j.json).toEqual({ role: 'joiner', headless: false, rules: rulesText(false), status: '(2/2 connected)' });
    const notice = await api.wait(host.token, 2);
    expect(notice.text).toMatch(/^MESSAGE_RECEIVED\n\[SYSTEM\]: Agent-[0-9a-f]{4} has joined\. Session is live!$/);
  });

  it('/register-and-join returns a token first, then the join fields', async () => {
    const api = client((await broker()).url);
    const host = (await api.setup()).json;
    const j = await api.registerAndJoin(host.code);
    expect(Object.keys(j.json)).toEqual(['token', 'role', 'headless', 'rules', 'status']);
    expect(j.json.rules).toContain('[OVER]');
  });

  it('a used code, an unknown code and a malformed code get the same 404', async () => {
    const api = client((await broker()).url);
    const host = (await api.setup()).json;
    expect((await api.registerAndJoin(host.code)).status).toBe(200);
    const used = await api.registerAndJoin(host.code);
    const unknown = await api.registerAndJoin(`invite_${'a'.repeat(32)}`);
    const malformed = await api.registerAndJoin('invite_zz');
    const other = (await api.register()).json.token;
    const usedWithToken = await api.join(other, host.code);
    for (const r of [used, unknown, malformed, usedWithToken]) {
      expect(r.status).toBe(404);
      expect(r.text).toBe(used.text);
    }
    expect(used.json).toEqual({ error: 'Invalid or expired code', code: 'invalid_code' });
  });

  it('an expired code gets the same 404 and its host is told the room closed', async () => {
    const b = await broker({ INVITE_TTL_S: '1' });
    const api = client(b.url);
    const host = (await api.setup()).json;
    await new Promise((r) => setTimeout(r, 1100));
    const r = await api.registerAndJoin(host.code);
    expect(r.status).toBe(404);
    expect(r.json.code).toBe('invalid_code');
    b.engine.sweep();
    expect((await api.wait(host.token, 1)).text).toContain('expired before anyone joined');
    expect((await api.wait(host.token, 1)).json.code).toBe('not_in_room');
  });

  it('a failed /register-and-join creates no token', async () => {
    const b = await broker();
    const api = client(b.url);
    await api.registerAndJoin(`invite_${'b'.repeat(32)}`);
    const count = b.store.db.exec('SELECT count(*) FROM tokens')[0].values[0][0];
    expect(count).toBe(0);
  });

  it('a token already in a room cannot join another (409) and the code stays usable', async () => {
    const api = client((await broker()).url);
    const a = (await api.setup()).json;
    const b = (await api.setup()).json;
    const r = await api.join(a.token, b.code);
    expect(r.status).toBe(409);
    expect((await api.registerAndJoin(b.code)).status).toBe(200);
  });
});

describe('room rules', () => {
  it('only the creator may set headless; the partner is told', async () => {
    const api = client((await broker()).url);
    const { host, joiner } = await api.pair();
    const denied = await api.call('POST', '/room-rule/headless', { token: joiner, body: '{"headless":true}', type: 'application/json' });
    expect(denied.status).toBe(403);
    expect(denied.json.code).toBe('not_creator');
    const ok = await api.call('POST', '/room-rule/headless', { token: host, body: '{"headless":true}', type: 'application/json' });
    expect(ok.json).toEqual({ ok: true, headless: true });
    expect((await api.wait(joiner, 1)).text).toContain('headless is now on');
  });

  it('a bad headless body is a 400', async () => {
    const api = client((await broker()).url);
    const { host } = await api.pair();
    for (const body of ['{}', '{"headless":1}', 'nope']) {
      const r = await api.call('POST', '/room-rule/headless', { token: host, body, type: 'application/json' });
      expect(r.status).toBe(400);
      expect(r.json.code).toMatch(/bad_/);
    }
  });
});

describe('leaving', () => {
  it('a joiner leaving leaves the host alone, told, with sends refused as 503', async () => {
    const api = client((await broker()).url);
    const { host, joiner } = await api.pair();
    expect((await api.leave(joiner)).json).toEqual({ ok: true });
    expect((await api.wait(host, 1)).text).toMatch(/\[SYSTEM\]: Agent-[0-9a-f]{4} has left the room\.$/);
    const s = await api.send(host, 'anyone? [OVER]');
    expect(s.status).toBe(503);
    expect(s.json.code).toBe('partner_not_connected');
    expect(await (await api.ping(host)).json).toEqual({ room_alive: true, partner_connected: false, partner_last_seen_ms: null, partner_presence: 'gone', paused: null });
  });

  it('the host leaving closes the room for both', async () => {
    const api = client((await broker()).url);
    const { host, joiner } = await api.pair();
    await api.leave(host);
    expect((await api.wait(joiner, 1)).text).toContain('closed the room');
    expect((await api.wait(joiner, 1)).json).toEqual({ error: 'Not in a room', code: 'not_in_room' });
    expect((await api.ping(joiner)).json.room_alive).toBe(false);
    expect((await api.leave(joiner)).json).toEqual({ ok: true });
  });
});

describe('leaving while a wait is held', () => {
  it('answers the held wait, and a later wait is simply "Not in a room"', async () => {
    const api = client((await broker()).url);
    const { host, joiner } = await api.pair();
    const held = api.wait(joiner, 10);
    while ((await api.ping(host)).json.partner_last_seen_ms !== 0) await new Promise((r) => setTimeout(r, 20));
    await api.leave(joiner);
    expect((await held).text).toBe('MESSAGE_RECEIVED\n[SYSTEM]: You left the room.');
    expect((await api.wait(joiner, 1)).json.code).toBe('not_in_room');
    expect((await api.wait(host, 1)).text).toContain('has left the room');
  });
});
