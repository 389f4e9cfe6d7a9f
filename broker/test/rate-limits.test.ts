/** Rate limits: per address bucket on the open endpoints, per token on send/wait/ping, X-Forwarded-For only from trusted proxies. */
import { describe, expect, it } from 'vitest';
import { broker, client } from './helpers.js';

const fromAddr = (xff: string) => ({ headers: { 'x-forwarded-for': xff } });

describe('rate limits', () => {
  it('limits /register per address with 429 and Retry-After', async () => {
    const api = client((await broker({ RATE_LIMITS: 'on', RATE_ANON_PER_MIN: '3' })).url);
    for (let i = 0; i < 3; i++) expect((await api.register()).status).toBe(200);
    const r = await api.register();
    expect(r.status).toBe(429);
    expect(r.json.code).toBe('rate_limited');
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('buckets IPv4 by /24 from a trusted proxy; other /24s are unaffected', async () => {
    const api = client((await broker({ RATE_LIMITS: 'on', RATE_ANON_PER_MIN: '2', TRUSTED_PROXIES: '127.0.0.1/32' })).url);
    const reg = (xff: string) => api.call('POST', '/register', fromAddr(xff));
    expect((await reg('203.0.113.5')).status).toBe(200);
    expect((await reg('203.0.113.77')).status).toBe(200);
    expect((await reg('203.0.113.200')).status).toBe(429); // same /24
    expect((await reg('198.51.100.5')).status).toBe(200); // another /24
    expect((await reg('2001:db8:1:2::1')).status).toBe(200);
    expect((await reg('2001:db8:1:2:ffff::9')).status).toBe(200);
    expect((await reg('2001:db8:1:2::abcd')).status).toBe(429); // same /64
  });

  it('ignores X-Forwarded-For from an untrusted peer: forging it does not change the bucket', async () => {
    const api = client((await broker({ RATE_LIMITS: 'on', RATE_ANON_PER_MIN: '2' })).url);
    expect((await api.call('POST', '/register', fromAddr('10.9.9.1'))).status).toBe(200);
    expect((await api.call('POST', '/register', fromAddr('10.9.8.1'))).status).toBe(200);
    expect((await api.call('POST', '/register', fromAddr('192.0.2.1'))).status).toBe(429);
  });

  it('limits /send per token, not per address', async () => {
    const api = client((await broker({ RATE_LIMITS: 'on', RATE_SEND_PER_MIN: '2', RATE_ANON_PER_MIN: '100' })).url);
    const one = await api.pair();
    const two = await api.pair();
    expect((await api.send(one.host, 'step 1: created bucket logs-eu [OVER]')).status).toBe(200);
    expect((await api.send(one.host, 'step 2: set lifecycle to 30 days [OVER]')).status).toBe(200);
    const third = await api.send(one.host, 'step 3: enabled versioning [OVER]');
    expect(third.status).toBe(429);
    expect(third.json.code).toBe('rate_limited');
    expect(third.headers.get('retry-after')).toMatch(/^\d+$/);
    expect((await api.send(one.joiner, 'ack, checking 1 and 2 [OVER]')).status).toBe(200);
    expect((await api.send(two.host, 'another room entirely [OVER]')).status).toBe(200);
  });

  it('limits /wait and /ping per token', async () => {
    const api = client((await broker({ RATE_LIMITS: 'on', RATE_WAIT_PER_MIN: '1', RATE_PING_PER_MIN: '1' })).url);
    const { host } = await api.pair(); // pair() used one wait of the host's
    expect((await api.wait(host, 1)).status).toBe(429);
    expect((await api.ping(host)).status).toBe(200);
    expect((await api.ping(host)).status).toBe(429);
  });

  it('RATE_LIMITS=off disables every limit: anonymous, send, wait, ping, room controls and failed authentications', async () => {
    const one = { RATE_ANON_PER_MIN: '1', RATE_SEND_PER_MIN: '1', RATE_WAIT_PER_MIN: '1', RATE_PING_PER_MIN: '1' };
    const api = client((await broker({ RATE_LIMITS: 'off', ...one })).url);
    for (let i = 0; i < 5; i++) expect((await api.register()).status).toBe(200);
    const { host, joiner } = await api.pair();
    for (let i = 0; i < 5; i++) {
      expect((await api.send(host, `step ${i}: rotated key ${i * 7919} [OVER]`)).status).toBe(200);
      expect((await api.wait(joiner, 1)).status).toBe(200);
      expect((await api.ping(host)).status).toBe(200);
      expect((await api.resume(host)).json.code).toBe('not_paused'); // refused by the room, not by a limit
    }
    for (let i = 0; i < 40; i++) expect((await api.ping(`tok_${'0'.repeat(31)}${i % 10}`)).status).toBe(401);
    expect((await api.leave(joiner)).status).toBe(200);
  });

  it('counts failed authentications per address: a fresh random token per request is refused after a few', async () => {
    const api = client((await broker({ RATE_LIMITS: 'on', RATE_PING_PER_MIN: '1000', RATE_SEND_PER_MIN: '1000' })).url);
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) statuses.push((await api.send(`tok_${i.toString(16).padStart(32, 'a')}`, 'x [OVER]')).status);
    expect(statuses.slice(0, 30).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(30).every((s) => s === 429)).toBe(true);
    const refused = await api.ping(`tok_${'b'.repeat(32)}`);
    expect(refused.json.code).toBe('auth_failures');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    const w = await api.wait(`tok_${'c'.repeat(32)}`, 1);
    expect(w.json.code).toBe('auth_failures');
  });

  it('/leave and /resume are limited per token, not in the anonymous per-address bucket', async () => {
    const api = client((await broker({ RATE_LIMITS: 'on', RATE_ANON_PER_MIN: '4' })).url);
    const { host, joiner } = await api.pair(); // /setup and /register-and-join spend 2 of 4
    await api.register();
    await api.register();
    expect((await api.register()).status).toBe(429); // the address bucket is spent
    expect((await api.resume(host)).json.code).toBe('not_paused');
    expect((await api.leave(joiner)).status).toBe(200);
  });
});
