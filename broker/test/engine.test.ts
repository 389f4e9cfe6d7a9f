/** The room engine on its own, with no transport: what every door (HTTP, SSH, MCP…) relies on. */
import { afterEach, describe, expect, it } from 'vitest';
import { memoryBackend } from '../src/backend/memory/index.js';
import type { StateBackend } from '../src/backend/ports.js';
import { loadConfig } from '../src/config.js';
import { Engine } from '../src/engine/engine.js';
import { ParleyError } from '../src/engine/errors.js';
import { renderEvent } from '../src/framing.js';
import { createMetrics } from '../src/metrics.js';

const engines: Engine[] = [];
afterEach(() => engines.splice(0).forEach((e) => e.close()));

async function engine(env: Record<string, string> = {}, backend?: StateBackend) {
  const e = new Engine(backend ?? (await memoryBackend()), loadConfig(env), createMetrics(() => 0));
  engines.push(e);
  return e;
}

async function pair(e: Engine) {
  const s = await e.setup('standard');
  const j = await e.registerAndJoin(s.code);
  const joined = await e.next(s.token, { timeoutMs: 1000 });
  joined!.settle(true);
  return { host: s.token, joiner: j.token };
}

const next = async (e: Engine, token: string, ms = 50) => {
  const d = await e.next(token, { timeoutMs: ms });
  d?.settle(true);
  return d ? renderEvent(d.event) : 'TIMEOUT';
};

const settled = () => new Promise((r) => setImmediate(r));

describe('engine', () => {
  it('refusals are ParleyErrors with a catalogue code and no transport status', async () => {
    const e = await engine();
    const err = await e.send('tok_x', 'hi').catch((x) => x);
    expect(err).toBeInstanceOf(ParleyError);
    expect(err).toMatchObject({ code: 'unauthorized', message: 'Invalid or expired token' });
    expect(err).not.toHaveProperty('status');
  });

  it('emits structured events with ids: a message carries sender, signal and text', async () => {
    const e = await engine();
    const { host, joiner } = await pair(e);
    const { id } = await e.send(host, 'hello there [STANDBY]');
    const lease = await e.next(joiner, { timeoutMs: 50 });
    expect(lease!.event).toMatchObject({ id, kind: 'message', signal: 'STANDBY', text: 'hello there' });
    expect(lease!.event.id).toMatch(/^evt_[0-9a-f]{16}$/);
  });

  it('delivers in order, and an unsettled delivery returns to the head of the queue', async () => {
    const e = await engine();
    const { host, joiner } = await pair(e);
    await e.send(host, 'one [OVER]');
    await e.send(host, 'two [OVER]');
    const first = await e.next(joiner, { timeoutMs: 50 });
    expect(renderEvent(first!.event)).toContain('│ one');
    first!.settle(false); // the connection died mid-write
    await settled();
    expect(await next(e, joiner)).toContain('│ one');
    expect(await next(e, joiner)).toContain('│ two');
  });

  it('an unsettled delivery goes straight to a waiter that is already there', async () => {
    const e = await engine();
    const { host, joiner } = await pair(e);
    await e.send(host, 'only [OVER]');
    const d = await e.next(joiner, { timeoutMs: 50 });
    // A new poll may arrive before the old connection's close is noticed; it must not 409 forever or lose the message.
    const later = e.next(joiner, { timeoutMs: 1000 });
    d!.settle(false);
    expect(renderEvent((await later)!.event)).toContain('│ only');
  });

  it('an acknowledging client gets an event again until it acknowledges it', async () => {
    const e = await engine();
    const { host, joiner } = await pair(e);
    const { id } = await e.send(host, 'keep me [OVER]');
    const first = await e.next(joiner, { timeoutMs: 50, acking: true });
    first!.settle(true); // written, but not yet acknowledged
    await settled();
    expect(await e.fate(host, id)).toBe('delivered');
    const again = await e.next(joiner, { timeoutMs: 50, acking: true });
    expect(again!.event.id).toBe(id);
    expect(await e.next(joiner, { timeoutMs: 50, acking: true, ack: id })).toBeNull();
    expect(await e.fate(host, id)).toBe('acknowledged');
  });

  it('aborting a wait removes the waiter, so a new wait is allowed', async () => {
    const e = await engine();
    const { joiner } = await pair(e);
    const gone = new AbortController();
    const w = e.next(joiner, { timeoutMs: 10_000, signal: gone.signal });
    await settled();
    await expect(e.next(joiner, { timeoutMs: 10 })).rejects.toMatchObject({ code: 'wait_pending' });
    gone.abort();
    expect(await w).toBeNull();
    expect(await next(e, joiner, 10)).toBe('TIMEOUT');
  });

  it('STANDBY from both pauses, status reports it, and the next message lifts it', async () => {
    const e = await engine();
    const { host, joiner } = await pair(e);
    await e.send(host, 'done [STANDBY]');
    await e.send(joiner, 'wait, one more question [OVER]');
    await e.send(host, 'answered in the PR [STANDBY]');
    expect(await next(e, joiner)).toContain('done');
    expect(await next(e, joiner)).toContain('answered in the PR');
    expect(await next(e, joiner)).toBe('TIMEOUT'); // joiner's latest was [OVER]: no pause
    expect((await e.status(host)).paused).toBeNull();
    await e.send(joiner, 'thanks, closing [STANDBY]');
    await next(e, host);
    await next(e, host);
    expect(await next(e, host)).toContain('Both agents are on STANDBY');
    expect(await next(e, joiner)).toContain('Both agents are on STANDBY');
    expect((await e.status(host)).paused).toBe('standby');
    await e.send(joiner, 'actually, one more thing [OVER]');
    expect((await e.status(host)).paused).toBeNull();
  });

  it('an expired token is swept: its partner is told and the token is refused', async () => {
    const e = await engine({ TOKEN_TTL_S: '1' });
    const { host, joiner } = await pair(e);
    await e.sweep(Date.now() + 2000);
    await expect(e.status(joiner)).rejects.toMatchObject({ code: 'unauthorized' });
    await expect(e.status(host)).rejects.toMatchObject({ code: 'unauthorized' });
    // Both were expired by the same sweep; each still hears why, once.
    expect(await next(e, joiner)).toMatch(/expired/);
  });

  it('the joiner expiring leaves the host in the room, told', async () => {
    const backend = await memoryBackend();
    const e = await engine({}, backend);
    const { host, joiner } = await pair(e);
    await backend.tokens.touch(backend.hasher.hash(joiner), Date.now() - 1);
    await e.sweep();
    expect(await next(e, host)).toMatch(/Agent-[0-9a-f]{4}'s session expired\.$/);
    expect(await e.status(host)).toMatchObject({ inRoom: true, partner: null });
    await expect(e.status(joiner)).rejects.toMatchObject({ code: 'unauthorized' });
    expect(await next(e, joiner)).toMatch(/Your session expired/);
  });

  it('the host expiring closes the room for the joiner', async () => {
    const backend = await memoryBackend();
    const e = await engine({}, backend);
    const { host, joiner } = await pair(e);
    await backend.tokens.touch(backend.hasher.hash(host), Date.now() - 1);
    await e.sweep();
    expect(await next(e, joiner)).toMatch(/The host's session \(Agent-[0-9a-f]{4}\) expired/);
    expect((await e.status(joiner)).inRoom).toBe(false);
    expect(e.stats().rooms).toBe(0);
  });

  it('drain() answers held waits and then refuses new work as draining', async () => {
    const e = await engine();
    const { host, joiner } = await pair(e);
    const held = e.next(joiner, { timeoutMs: 10_000 });
    await settled();
    await e.drain();
    expect((await held)!.event.kind).toBe('broker_restarting');
    await expect(e.register()).rejects.toMatchObject({ code: 'draining', retryAfterS: 5 });
    await expect(e.send(host, 'x')).rejects.toMatchObject({ code: 'draining' });
  });
});
