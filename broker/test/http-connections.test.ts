/**
 * The HTTP broker's connections: a per-address cap (direct clients by TCP connection, clients
 * behind a trusted proxy by request in progress), and a bad token refused before its body is read
 * (on every door that takes one with a body).
 */
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { broker, client, eventually, metric } from './helpers.js';

const LIMITS_ON = { RATE_LIMITS: 'on', RATE_ANON_PER_MIN: '100000', RATE_SEND_PER_MIN: '100000', RATE_WAIT_PER_MIN: '100000', RATE_PING_PER_MIN: '100000' };

/** A raw TCP connection to the broker, open once this resolves. */
function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** Writes `request` on `s` and reads one response: status, headers and body (by Content-Length). */
function exchange(s: Socket, request: string | Buffer = ''): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine, ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const length = Number(headers['content-length'] ?? 0);
      if (buf.length < end + 4 + length) return;
      s.off('data', onData);
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: buf.subarray(end + 4, end + 4 + length).toString('utf8') });
    };
    s.on('data', onData);
    s.once('error', reject);
    s.once('close', () => reject(new Error(`connection closed before a full response: ${buf.toString('latin1').slice(0, 200)}`)));
    if (request.length) s.write(request);
  });
}

const closed = (s: Socket) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));
const get = (path: string, headers: Record<string, string> = {}) =>
  `GET ${path} HTTP/1.1\r\nhost: localhost\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;

describe('HTTP connections', () => {
  it('a direct client past HTTP_MAX_PER_ADDRESS connections gets 429 too_many_connections and is closed; its other connections are served, and closing one frees a place', async () => {
    const b = await broker({ ...LIMITS_ON, HTTP_MAX_PER_ADDRESS: '3' });
    const held = [await open(b.port), await open(b.port), await open(b.port)];
    const extra = await open(b.port);
    const refused = await exchange(extra, get('/health'));
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.body)).toEqual({ code: 'too_many_connections', error: expect.stringContaining('Too many connections from your address') });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    await closed(extra);
    expect((await exchange(held[0], get('/health'))).status).toBe(200);

    held[1].destroy();
    await eventually(
      async () => {
        const s = await open(b.port);
        const r = await exchange(s, get('/health', { connection: 'close' })).catch(() => ({ status: 0 }));
        s.destroy();
        return r.status;
      },
      (status) => status === 200,
      'a connection once one was closed',
    );
    for (const s of held) s.destroy();
  });

  it('a trusted proxy is not capped by its connections; each forwarded client is capped by its requests in progress, held waits included', async () => {
    const b = await broker({ ...LIMITS_ON, TRUSTED_PROXIES: '127.0.0.1', HTTP_MAX_PER_ADDRESS: '2' });
    const api = client(b.url);
    // The proxy opens more connections than the cap, for several clients: all are served.
    const proxied = await Promise.all(Array.from({ length: 4 }, () => open(b.port)));
    for (const [i, s] of proxied.entries()) expect((await exchange(s, get('/health', { 'x-forwarded-for': `192.0.2.${i + 1}` }))).status).toBe(200);

    // One client holds two waits, its cap.
    const client7 = { 'x-forwarded-for': '198.51.100.7' };
    const pairs = [await api.pair(), await api.pair()];
    const waits = pairs.map((p) => api.call('GET', '/wait?timeout=30', { token: p.joiner, headers: client7 }));
    await eventually(() => metric(b.url, 'parley_waiters'), (n) => n === 2, 'two held waits');
    const third = await exchange(proxied[0], get('/health', client7));
    expect(third.status).toBe(429);
    expect(JSON.parse(third.body).code).toBe('too_many_connections');
    // Another client on the same proxy connection is served.
    expect((await exchange(proxied[0], get('/health', { 'x-forwarded-for': '203.0.113.5' }))).status).toBe(200);

    // A wait answered gives its place back.
    expect((await api.send(pairs[0].host, 'done [OVER]')).text).toBe('DELIVERED');
    expect((await waits[0]).headers.get('parley-event')).toBe('message');
    await eventually(() => exchange(proxied[1], get('/health', client7)), (r) => r.status === 200, 'a request once a wait ended');
    await api.send(pairs[1].host, 'done [OVER]');
    await waits[1];
    for (const s of proxied) s.destroy();
  });

  it('a bad token on /send is refused 401 before its body is uploaded, and the connection is closed instead of draining it', async () => {
    const b = await broker({ ...LIMITS_ON, MAX_BODY_BYTES: String(16 * 1024 * 1024) });
    const s = await open(b.port);
    // 10 MB announced, 64 KiB sent: a broker that read the body first would wait for the rest.
    const head = `POST /send HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer tok_${'0'.repeat(32)}\r\ncontent-type: text/plain\r\ncontent-length: ${10 * 1024 * 1024}\r\n\r\n`;
    const reply = await exchange(s, Buffer.concat([Buffer.from(head), Buffer.alloc(64 * 1024, 'a')]));
    expect(reply.status).toBe(401);
    expect(JSON.parse(reply.body).code).toBe('unauthorized');
    expect(reply.headers.connection).toBe('close');
    await closed(s);
  });

  it.each(['/room-rule/headless', '/a2a/publish', '/a2a/dial'])('a bad token on %s is refused 401 before its body is read', async (path) => {
    const b = await broker(LIMITS_ON);
    const s = await open(b.port);
    const head = `POST ${path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer tok_${'0'.repeat(32)}\r\ncontent-type: application/json\r\ncontent-length: 8000\r\n\r\n{"headless":`;
    const reply = await exchange(s, head);
    expect(reply.status).toBe(401);
    expect(JSON.parse(reply.body).code).toBe('unauthorized');
    await closed(s);
  });

  it('a good token still sends a large body, on a connection kept alive', async () => {
    const b = await broker(LIMITS_ON);
    const api = client(b.url);
    const { host, joiner } = await api.pair();
    const s = await open(b.port);
    const text = `${'x'.repeat(512 * 1024)} [OVER]`;
    const send = `POST /send HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer ${host}\r\ncontent-type: text/plain\r\ncontent-length: ${text.length}\r\n\r\n${text}`;
    const reply = await exchange(s, send);
    expect(reply.status).toBe(200);
    expect(reply.body).toBe('DELIVERED');
    expect(reply.headers.connection).not.toBe('close');
    expect((await exchange(s, get('/health'))).status).toBe(200);
    s.destroy();
    expect((await api.wait(joiner, 2)).headers.get('parley-event')).toBe('message');
  });
});
