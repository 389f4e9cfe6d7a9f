/** GET /wait: timeouts, slices, one waiter per participant, disconnects, redelivery and expiry. */
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { broker, client, eventually, messageLines, metric as gauge } from './helpers.js';

describe('/wait', () => {
  it('times out with the TIMEOUT line after ?timeout seconds', async () => {
    const api = client((await broker()).url);
    const { joiner } = await api.pair();
    const r = await api.wait(joiner, 1);
    expect(r.status).toBe(200);
    expect(r.text).toBe('TIMEOUT: No event received within 1s');
  });

  it('caps ?timeout at WAIT_TIMEOUT_S and rejects a malformed one', async () => {
    const api = client((await broker({ WAIT_TIMEOUT_S: '1' })).url);
    const { joiner } = await api.pair();
    expect((await api.wait(joiner, 30)).text).toBe('TIMEOUT: No event received within 1s');
    expect((await api.call('GET', '/wait', { token: joiner })).text).toBe('TIMEOUT: No event received within 1s');
    for (const q of ['0', '-3', 'abc', '1.5']) {
      const r = await api.call('GET', `/wait?timeout=${q}`, { token: joiner });
      expect(r.status).toBe(400);
      expect(r.json.code).toBe('bad_timeout');
    }
  });

  it('answers a held wait as soon as the partner sends', async () => {
    const b = await broker();
    const api = client(b.url);
    const { host, joiner } = await api.pair();
    const pending = api.wait(joiner, 30);
    await eventually(() => gauge(b.url, 'parley_waiters'), (n) => n === 1, 'the wait to be held');
    expect((await api.ping(host)).json).toMatchObject({ partner_last_seen_ms: 0, partner_presence: 'waiting' });
    await api.send(host, 'ping from host [OVER]');
    expect(messageLines((await pending).text)).toEqual(['ping from host']);
  });

  it('allows one pending wait per participant: a second is 409', async () => {
    const b = await broker();
    const api = client(b.url);
    const { host, joiner } = await api.pair();
    const first = api.wait(joiner, 5);
    await eventually(() => gauge(b.url, 'parley_waiters'), (n) => n === 1);
    const second = await api.wait(joiner, 1);
    expect(second.status).toBe(409);
    expect(second.json).toEqual({ error: 'Wait already pending', code: 'wait_pending' });
    await api.send(host, 'done [OVER]');
    expect((await first).text).toContain('done');
  });

  it('401 for a bad token, 400 when not in a room', async () => {
    const api = client((await broker()).url);
    expect((await api.wait('tok_00', 1)).status).toBe(401);
    const loner = (await api.register()).json.token;
    expect((await api.wait(loner, 1)).json).toEqual({ error: 'Not in a room', code: 'not_in_room' });
  });

  it('503 while draining, and a held wait gets the draining notice', async () => {
    const b = await broker();
    const api = client(b.url);
    const { host, joiner } = await api.pair();
    const held = api.wait(joiner, 30);
    await eventually(() => gauge(b.url, 'parley_waiters'), (n) => n === 1);
    b.engine.drain();
    expect((await held).text).toMatch(/^MESSAGE_RECEIVED\n\[SYSTEM\]: The broker is restarting/);
    const late = await api.wait(host, 1);
    expect(late.status).toBe(503);
    expect(late.json.code).toBe('draining');
    expect(late.json.error).toMatch(/^Broker is draining/);
    expect((await api.send(host, 'x [OVER]')).status).toBe(503);
    expect((await api.call('GET', '/ready')).status).toBe(503);
  });

  it('a client that disconnects leaves no waiter behind, and the next message waits for the next poll', async () => {
    const b = await broker();
    const api = client(b.url);
    const { host, joiner } = await api.pair();
    const abort = new AbortController();
    const gone = fetch(`${b.url}/wait?timeout=30`, { headers: { authorization: `Bearer ${joiner}` }, signal: abort.signal }).catch(() => 'aborted');
    await eventually(() => gauge(b.url, 'parley_waiters'), (n) => n === 1);
    abort.abort();
    expect(await gone).toBe('aborted');
    expect(await eventually(() => gauge(b.url, 'parley_waiters'), (n) => n === 0)).toBe(0);
    await api.send(host, 'are you there? [OVER]');
    const next = await api.wait(joiner, 1);
    expect(messageLines(next.text)).toEqual(['are you there?']);
  });

  it('a message whose response could not be written completely goes back to the head of the queue', async () => {
    const big = 24 * 1024 * 1024; // more than loopback socket buffers hold, so the write cannot finish
    const b = await broker({ MAX_BODY_BYTES: String(big + 1024), QUEUE_MAX_BYTES: String(4 * big) });
    const api = client(b.url);
    const { host, joiner } = await api.pair();
    await api.send(host, `${'y'.repeat(big)} [OVER]`);
    await api.send(host, 'second [OVER]');
    // A reader that never reads, then hangs up: its receive window stays small, so the write cannot finish.
    await new Promise<void>((resolve, reject) => {
      const { port } = new URL(b.url);
      const sock = connect(Number(port), '127.0.0.1', () => {
        sock.pause();
        sock.write(`GET /wait?timeout=5 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${joiner}\r\n\r\n`);
        setTimeout(() => {
          sock.destroy();
          resolve();
        }, 500);
      });
      sock.on('error', reject);
    });
    expect(await eventually(() => gauge(b.url, 'parley_messages_requeued_total'), (n) => n === 1)).toBe(1);
    const again = await api.wait(joiner, 5);
    expect(again.text.length).toBeGreaterThan(big);
    expect(messageLines((await api.wait(joiner, 5)).text)).toEqual(['second']);
  });

  it('a queued message expires after MESSAGE_TTL_S and its sender is told, without the text', async () => {
    const api = client((await broker({ MESSAGE_TTL_S: '1' })).url);
    const { host, joiner } = await api.pair();
    await api.send(host, 'secret-canary-7731 [OVER]');
    await new Promise((r) => setTimeout(r, 1300));
    const notice = await api.wait(host, 1);
    expect(notice.text).toMatch(/^MESSAGE_RECEIVED\n\[SYSTEM\]: A message you sent to Agent-[0-9a-f]{4} was not collected within 1s/);
    expect(notice.text).not.toContain('secret-canary-7731');
    expect((await api.wait(joiner, 1)).text).toMatch(/^TIMEOUT/);
  });

  it('a partner already waiting gets the message at once, whatever the TTL', async () => {
    const b = await broker({ MESSAGE_TTL_S: '1' });
    const api = client(b.url);
    const { host, joiner } = await api.pair();
    const held = api.wait(joiner, 10);
    await eventually(() => gauge(b.url, 'parley_waiters'), (n) => n === 1);
    await api.send(host, 'quick [OVER]');
    await new Promise((r) => setTimeout(r, 1300));
    expect(messageLines((await held).text)).toEqual(['quick']);
    expect((await api.wait(host, 1)).text).toMatch(/^TIMEOUT/);
  });
});

describe('/ping', () => {
  it('reports the partner and how long ago it was seen (0 while it holds a wait)', async () => {
    const b = await broker();
    const api = client(b.url);
    const s = (await api.setup()).json;
    expect((await api.ping(s.token)).json).toEqual({ room_alive: true, partner_connected: false, partner_last_seen_ms: null, partner_presence: 'gone', paused: null });
    const j = (await api.registerAndJoin(s.code)).json;
    const p = (await api.ping(s.token)).json;
    expect(p.room_alive).toBe(true);
    expect(p.partner_connected).toBe(true);
    expect(p.partner_last_seen_ms).toBeGreaterThanOrEqual(0);
    const held = api.wait(j.token, 2);
    expect((await eventually(() => api.ping(s.token), (r) => r.json.partner_last_seen_ms === 0)).json.partner_last_seen_ms).toBe(0);
    await held;
    expect((await api.ping('tok_nope')).status).toBe(401);
  });
});
