/** The room engine on its own, with no transport: what every adapter (HTTP, SSH, MCP) relies on. */
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { Engine, ParleyError } from '../src/engine.js';
import { createMetrics } from '../src/metrics.js';
import { Store } from '../src/store.js';

const engines: Engine[] = [];
afterEach(() => engines.splice(0).forEach((e) => e.close()));

async function engine(env: Record<string, string> = {}, store?: Store) {
  const e = new Engine(store ?? (await Store.open()), loadConfig(env), createMetrics(() => 0));
  engines.push(e);
  return e;
}

async function pair(e: Engine) {
  const s = e.setup('standard');
  const j = e.registerAndJoin(s.code);
  const joined = await e.wait(s.token, 1000).result;
  joined!.settle(true);
  return { host: s.token, joiner: j.token };
}

const next = async (e: Engine, token: string, ms = 50) => {
  const d = await e.wait(token, ms).result;
  d?.settle(true);
  return d?.body ?? 'TIMEOUT';
};

describe('engine', () => {
  it('refusals are ParleyErrors with a status and a code', async () => {
    const e = await engine();
    const err = (() => {
      try {
        e.send('tok_x', 'hi');
      } catch (x) {
        return x;
      }
    })();
    expect(err).toBeInstanceOf(ParleyError);
    expect(err).toMatchObject({ status: 401, code: 'unauthorized' });
  });

  it('delivers in order, and an unsettled delivery returns to the head of the queue', async () => {
    const e = await engine();
    const { host, joiner } = await pair(e);
    e.send(host, 'one [OVER]');
    e.send(host, 'two [OVER]');
    const first = await e.wait(joiner, 50).result;
    expect(first!.body).toContain('│ one');
    first!.settle(false); // the connection died mid-write
    expect(await next(e, joiner)).toContain('│ one');
    expect(await next(e, joiner)).toContain('│ two');
  });

  it('an unsettled delivery goes straight to a waiter that is already there', async () => {
    const e = await engine();
    const { host, joiner } = await pair(e);
    e.send(host, 'only [OVER]');
    const d = await e.wait(joiner, 50).result;
    // A new poll may arrive before the old connection's close is noticed; it must not 409 forever or lose the message.
    const later = e.wait(joiner, 1000).result;
    d!.settle(false);
    expect((await later)!.body).toContain('│ only');
  });

  it('cancel() removes the waiter, so a new wait is allowed', async () => {
    const e = await engine();
    const { joiner } = await pair(e);
    const w = e.wait(joiner, 10_000);
    expect(() => e.wait(joiner, 10)).toThrow(expect.objectContaining({ code: 'wait_pending' }));
    w.cancel();
    expect(await w.result).toBeNull();
    expect(await next(e, joiner, 10)).toBe('TIMEOUT');
  });

  it('STANDBY from both pauses; the latest message per side is what counts', async () => {
    const e = await engine();
    const { host, joiner } = await pair(e);
    e.send(host, 'done [STANDBY]');
    e.send(joiner, 'wait, one more question [OVER]');
    e.send(host, 'answered in the PR [STANDBY]');
    expect(await next(e, joiner)).toContain('done');
    expect(await next(e, joiner)).toContain('answered in the PR');
    expect(await next(e, joiner)).toBe('TIMEOUT'); // joiner's latest was [OVER]: no pause
    e.send(joiner, 'thanks, closing [STANDBY]');
    await next(e, host);
    await next(e, host);
    expect(await next(e, host)).toContain('Both agents are on STANDBY');
    expect(await next(e, joiner)).toContain('Both agents are on STANDBY');
  });

  it('an expired token is swept: its partner is told and the token is refused', async () => {
    const e = await engine({ TOKEN_TTL_S: '1' });
    const { host, joiner } = await pair(e);
    e.sweep(Date.now() + 2000);
    expect(() => e.ping(joiner)).toThrow(expect.objectContaining({ status: 401 }));
    expect(() => e.ping(host)).toThrow(expect.objectContaining({ status: 401 }));
    // Both were expired by the same sweep; each still hears why, once.
    expect(await next(e, joiner)).toMatch(/expired/);
  });

  it('the joiner expiring leaves the host in the room, told', async () => {
    const store = await Store.open();
    const e = await engine({}, store);
    const { host, joiner } = await pair(e);
    store.touchToken(store.hash(joiner), Date.now() - 1);
    e.sweep();
    expect(await next(e, host)).toMatch(/Agent-[0-9a-f]{4}'s session expired\.$/);
    expect(e.ping(host)).toEqual({ room_alive: true, partner_connected: false, partner_last_seen_ms: null });
    expect(() => e.ping(joiner)).toThrow(expect.objectContaining({ status: 401 }));
    expect(await next(e, joiner)).toMatch(/Your session expired/);
  });

  it('the host expiring closes the room for the joiner', async () => {
    const store = await Store.open();
    const e = await engine({}, store);
    const { host, joiner } = await pair(e);
    store.touchToken(store.hash(host), Date.now() - 1);
    e.sweep();
    expect(await next(e, joiner)).toMatch(/The host's session \(Agent-[0-9a-f]{4}\) expired/);
    expect(e.ping(joiner).room_alive).toBe(false);
    expect(e.stats().rooms).toBe(0);
  });

  it('drain() answers held waits and then refuses new work with 503', async () => {
    const e = await engine();
    const { host, joiner } = await pair(e);
    const held = e.wait(joiner, 10_000).result;
    e.drain();
    expect((await held)!.body).toMatch(/restarting/);
    expect(() => e.register()).toThrow(expect.objectContaining({ status: 503, code: 'draining' }));
    expect(() => e.send(host, 'x')).toThrow(expect.objectContaining({ status: 503 }));
  });
});
