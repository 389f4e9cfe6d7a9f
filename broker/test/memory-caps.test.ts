/**
 * Unread queues cannot fill memory: a global cap on queued bytes (counted as V8 stores the text),
 * and per-address caps on open rooms and live tokens, on the memory backend and on Redis (where
 * the counts are shared by every broker).
 */
import { Redis } from 'ioredis';
import { beforeEach, describe, expect, it } from 'vitest';
import { broker, client, eventually } from './helpers.js';
import { SECRET, testRedis } from './redis-server.js';

const redis = await testRedis();
const backends: [string, Record<string, string>][] = [
  ['memory', {}],
  ['Redis', { STATE_URL: redis.url, PARLEY_SECRET: SECRET }],
];

const MiB = 1024 * 1024;
/** What the broker counts per queued message besides its text (engine.ts storedBytes). */
const ITEM_OVERHEAD = 64;
/** Per-address caps apply with rate limits on; these rates stay out of the way. */
const LIMITS_ON = { RATE_LIMITS: 'on', RATE_ANON_PER_MIN: '100000', RATE_SEND_PER_MIN: '100000', RATE_WAIT_PER_MIN: '100000', RATE_PING_PER_MIN: '100000' };
const from = (address: string) => ({ headers: { 'x-forwarded-for': address } });

describe.each(backends)('memory caps (%s backend)', (_name, backend) => {
  beforeEach(async () => {
    if (!backend.STATE_URL) return;
    const r = new Redis(redis.url);
    await r.flushall();
    r.disconnect();
  });

  it('refuses a send that would take queued bytes past QUEUE_MAX_TOTAL_BYTES with 503 broker_full and Retry-After, queues nothing, and accepts again once read', async () => {
    const b = await broker({ ...backend, QUEUE_MAX_TOTAL_BYTES: String(MiB), MAX_BODY_BYTES: String(2 * MiB) });
    const api = client(b.url);
    const one = await api.pair();
    const two = await api.pair();
    // '│' (U+2502) is beyond Latin-1: V8 keeps such a string at 2 bytes a character. Each
    // message carries facts of its own, so the loop detector sees news every time.
    let n = 0;
    const wide = (chars: number) => `note ${++n}: build-${n}7 took ${n * 13 + 5}ms on host-${n}x.example.com ${'│'.repeat(chars)}`;
    const stored = (text: string) => 2 * text.length + ITEM_OVERHEAD;
    const send = (token: string, text: string) => api.send(token, `${text} [OVER]`);
    let total = 0;
    // Five fit in 1 MiB across two rooms, each inbox far below its own cap.
    for (const [host, count] of [[one.host, 3], [two.host, 2]] as const) {
      for (let i = 0; i < count; i++) {
        const text = wide(100_000);
        expect((await send(host, text)).text).toBe('DELIVERED');
        total += stored(text);
      }
    }
    const refused = await send(one.host, wide(100_000));
    expect(refused.status).toBe(503);
    expect(refused.json).toEqual({ code: 'broker_full', error: expect.stringMatching(/too many unread messages.*try again/) });
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    // Counted as stored: as many characters as fit in what is left do not fit as wide text.
    const chars = Math.floor((MiB - total - ITEM_OVERHEAD) / 1.5);
    expect((await send(two.joiner, '│'.repeat(chars))).json?.code).toBe('broker_full');
    expect((await send(two.joiner, 'a'.repeat(chars))).text).toBe('DELIVERED');

    // Nothing of the refused sends was queued: the joiner of room one reads exactly three messages.
    for (let i = 0; i < 3; i++) expect((await api.wait(one.joiner, 1)).headers.get('parley-event')).toBe('message');
    expect((await api.wait(one.joiner, 1)).headers.get('parley-event')).toBe('timeout');
    // Read messages free their bytes: the same send is accepted now.
    expect((await send(one.host, wide(100_000))).text).toBe('DELIVERED');
  });

  it('refuses a fourth room from one address with 429 too_many_rooms (MAX_ROOMS_PER_ADDRESS=3), leaving no token behind; another address is not affected; a closed room frees its place', async () => {
    const b = await broker({ ...backend, ...LIMITS_ON, TRUSTED_PROXIES: '127.0.0.1', MAX_ROOMS_PER_ADDRESS: '3', MAX_TOKENS_PER_ADDRESS: '4' });
    const api = client(b.url);
    const setup = (address: string) => api.call('POST', '/setup', { body: '{"type":"standard"}', type: 'application/json', ...from(address) });
    const rooms = [];
    for (let i = 0; i < 3; i++) rooms.push((await setup('198.51.100.7')).json);
    const refused = await setup('198.51.100.8'); // same /24
    expect(refused.status).toBe(429);
    expect(refused.json).toEqual({ code: 'too_many_rooms', error: expect.stringContaining('leave one first') });
    // An existing token cannot open a fourth either.
    const spare = (await api.call('POST', '/register', from('198.51.100.7'))).json.token;
    expect((await api.call('POST', '/create', { token: spare, ...from('198.51.100.7') })).json.code).toBe('too_many_rooms');
    // The refused setup gave its token back: 3 tokens of rooms + the spare = 4, the cap; a fifth is refused.
    expect((await api.call('POST', '/register', from('198.51.100.7'))).json.code).toBe('too_many_tokens');

    expect((await setup('203.0.113.5')).status).toBe(200);
    expect((await api.leave(rooms[0].token)).status).toBe(200);
    expect((await api.call('POST', '/create', { token: spare, ...from('198.51.100.7') })).status).toBe(200);
  });

  it('refuses a token past MAX_TOKENS_PER_ADDRESS with 429 too_many_tokens without burning the code it was given; an expired token frees its place', async () => {
    const b = await broker({ ...backend, ...LIMITS_ON, TRUSTED_PROXIES: '127.0.0.1', MAX_TOKENS_PER_ADDRESS: '2', TOKEN_TTL_S: '3', SWEEP_INTERVAL_S: '1' });
    const api = client(b.url);
    const inviter = (await api.call('POST', '/setup', { body: '{}', type: 'application/json', ...from('203.0.113.5') })).json;
    expect((await api.call('POST', '/register', from('198.51.100.7'))).status).toBe(200);
    expect((await api.call('POST', '/register', from('198.51.100.7'))).status).toBe(200);
    const refused = await api.call('POST', `/register-and-join/${inviter.code}`, from('198.51.100.7'));
    expect(refused.status).toBe(429);
    expect(refused.json).toEqual({ code: 'too_many_tokens', error: expect.stringContaining('Too many live tokens') });
    // The invite still works from elsewhere: the refusal came before the code was taken.
    const joined = await api.call('POST', `/register-and-join/${inviter.code}`, from('192.0.2.1'));
    expect(joined.json.role).toBe('joiner');
    // Unused tokens expire and are swept, and their places come back.
    await eventually(() => api.call('POST', '/register', from('198.51.100.7')), (r) => r.status === 200, 'a token after the old ones expired', 300);
  });

  it('without RATE_LIMITS the per-address caps are off, as every limit', async () => {
    const b = await broker({ ...backend, MAX_ROOMS_PER_ADDRESS: '1', MAX_TOKENS_PER_ADDRESS: '1' });
    const api = client(b.url);
    for (let i = 0; i < 3; i++) expect((await api.setup()).status).toBe(200);
  });
});
