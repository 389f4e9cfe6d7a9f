/**
 * Several brokers on one Redis: privacy of what Redis holds, sessions that survive the loss of a
 * broker, and a Redis restart that brokers report and recover from on their own.
 */
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import type { StateBackend } from '../src/backend/ports.js';
import { broker, client, eventually, messageLines } from './helpers.js';
import { redisText, SECRET, testRedis } from './redis-server.js';

const redis = await testRedis();
const env = { STATE_URL: redis.url, PARLEY_SECRET: SECRET };

const dump = () => redisText(redis.url);

/** Two brokers' backends on the test's Redis, closed when `fn` is done. */
async function withTwoBackends(fn: (a: StateBackend, b: StateBackend) => Promise<void>): Promise<void> {
  const { redisBackend } = await import('../src/backend/redis/index.js');
  const [a, b] = [await redisBackend({ url: redis.url, secret: SECRET }), await redisBackend({ url: redis.url, secret: SECRET })];
  try {
    await fn(a, b);
  } finally {
    await a.close();
    await b.close();
  }
}

describe('Redis backend', () => {
  it('holds no token or code in clear, and no message text once it is acknowledged or the session ends', async () => {
    const api = client((await broker(env)).url);
    const s = (await api.setup()).json;
    const j = (await api.registerAndJoin(s.code)).json;
    await api.wait(s.token, 1);
    const canary = 'CANARY-redis-7f3e-never-kept';
    await api.send(s.token, `${canary} first [OVER]`);
    const during = await dump();
    expect(during).toContain(canary); // queued for its reader: the one place it may be, with a TTL
    for (const secret of [s.token, s.code, j.token]) expect(during).not.toContain(secret);
    const w = await api.call('GET', '/wait?timeout=1&ack=', { token: j.token });
    await api.call('GET', `/wait?timeout=1&ack=${w.headers.get('parley-event-id')}`, { token: j.token });
    expect(await dump()).not.toContain(canary);
    await api.send(j.token, `${canary} second [OVER]`);
    await api.leave(s.token);
    await api.leave(j.token);
    const after = await dump();
    for (const secret of [canary, s.token, s.code, j.token]) expect(after).not.toContain(secret);
  });

  it('a waiting client whose broker goes away re-polls another broker and loses nothing', async () => {
    const a = await broker(env);
    const b = await broker(env);
    const viaA = client(a.url);
    const viaB = client(b.url);
    const { host, joiner } = await viaA.pair();
    const held = viaA.call('GET', '/wait?timeout=30&ack=', { token: joiner }).catch(() => undefined);
    await eventually(() => viaB.ping(host), (r) => r.json.partner_presence === 'waiting', 'the joiner to hold its wait on broker A');
    await a.close(); // broker A is lost with the wait it held
    await held;
    await viaB.send(host, 'sent while A was down: shard 7 rebuilt [OVER]');
    const r = await viaB.call('GET', '/wait?timeout=5&ack=', { token: joiner });
    expect(r.headers.get('parley-event')).toBe('message');
    expect(r.text).toContain('shard 7 rebuilt');
    // Not acknowledged yet: a re-poll after a cut gets the same event again, never a loss.
    const again = await viaB.call('GET', '/wait?timeout=5&ack=', { token: joiner });
    expect(again.headers.get('parley-event-id')).toBe(r.headers.get('parley-event-id'));
  });

  it('a message that arrives while a wait is being set up on another broker is handed to that wait at once', async () => {
    const a = await broker(env);
    const b = await broker(env);
    const { host, joiner } = await client(a.url).pair();
    // Stop the joiner's wait on broker A between its look at the (empty) inbox and its registration.
    const tokens = a.engine.backend.tokens;
    const leaseOrRoom = tokens.leaseOrRoom.bind(tokens);
    let reached!: () => void;
    let resume!: () => void;
    const atGate = new Promise<void>((r) => (reached = r));
    const gate = new Promise<void>((r) => (resume = r));
    tokens.leaseOrRoom = async (h) => {
      const read = await leaseOrRoom(h);
      reached();
      await gate;
      return read;
    };
    const held = client(a.url).call('GET', '/wait?timeout=20', { token: joiner });
    await atGate;
    const engine = a.engine as unknown as { wakeSeq: number }; // private: the wakes A saw with no wait held
    const seen = engine.wakeSeq;
    await client(b.url).send(host, 'sent while the wait was being set up [OVER]');
    await eventually(async () => engine.wakeSeq, (n) => n > seen, "B's wake to reach A before A's wait is registered");
    resume();
    const r = await held;
    tokens.leaseOrRoom = leaseOrRoom;
    // Had A not looked again, the wait would have slept to its timeout with the message queued.
    expect(r.headers.get('parley-event')).toBe('message');
    expect(r.text).toContain('being set up');
  });

  it('when Redis restarts, brokers report not ready and refuse with a clear 503, then recover by themselves', async () => {
    const b = await broker(env);
    const api = client(b.url);
    expect((await api.call('GET', '/ready')).status).toBe(200);
    await redis.stop();
    const ready = await eventually(() => api.call('GET', '/ready'), (r) => r.status === 503, 'not ready');
    expect(ready.json).toEqual({ ready: false });
    const refused = await api.register();
    expect(refused.status).toBe(503);
    expect(refused.json.code).toBe('state_unavailable');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    await redis.restart();
    await eventually(() => api.call('GET', '/ready'), (r) => r.status === 200, 'ready again', 200);
    const { host, joiner } = await api.pair();
    await api.send(host, 'back after the restart [OVER]');
    expect((await api.wait(joiner, 2)).text).toContain('back after the restart');
  });

  it("a broker that answers a send from its copy of the token and room still holds the inbox cap, and refuses the send once another broker took the token out of the room", async () => {
    const viaA = client((await broker({ ...env, QUEUE_MAX_MESSAGES: '2' })).url);
    const viaB = client((await broker(env)).url);
    const { host, joiner } = await viaA.pair();
    // The first send reads the token and room from Redis; the next ones go from A's copy.
    for (const n of [1, 2]) expect((await viaA.send(host, `report ${n}: step ${n * 17} done [OVER]`)).status).toBe(200);
    const full = await viaA.send(host, 'report 3: step 51 done [OVER]');
    expect([full.status, full.json.code]).toEqual([429, 'inbox_full']);
    for (const n of [1, 2]) expect(messageLines((await viaB.wait(joiner, 1)).text)).toEqual([`report ${n}: step ${n * 17} done`]);
    // The host leaves through B; A's copy still says it is in the room.
    expect((await viaB.leave(host)).status).toBe(200);
    const late = await viaA.send(host, 'report 4: step 68 done [OVER]');
    expect([late.status, late.json.code]).toEqual([400, 'not_in_room']);
    // The joiner hears of the host's leaving, and of no other message.
    const events: string[] = [];
    for (;;) {
      const w = await viaB.wait(joiner, 1);
      const kind = w.headers.get('parley-event');
      if (kind === 'timeout' || w.status !== 200) break;
      events.push(kind === 'message' ? messageLines(w.text).join(' ') : kind!);
    }
    expect(events.length).toBeGreaterThan(0);
    expect(events.join('\n')).not.toContain('report');
  });

  it('a send answered from a copy is refused when the token was ended elsewhere with its room unchanged (the send\'s script checks the token)', async () => {
    const [{ Engine }, { loadConfig }, { createMetrics }] = await Promise.all([import('../src/engine/engine.js'), import('../src/config.js'), import('../src/metrics.js')]);
    await withTwoBackends(async (a, b) => {
      const e = new Engine(a, loadConfig(env), createMetrics(() => 0));
      try {
        const s = await e.setup('standard');
        await e.registerAndJoin(s.code);
        for (const n of [1, 2]) await e.send(s.token, `report ${n}: step ${n * 17} done [OVER]`);
        await b.tokens.delete(b.hasher.hash(s.token)); // as an expiry sweep on another broker would
        await expect(e.send(s.token, 'report 3: step 51 done [OVER]')).rejects.toMatchObject({ code: 'unauthorized' });
      } finally {
        e.close();
      }
    });
  });
});

describe('loop detectors in Redis', () => {
  it('two brokers feeding one room judge exactly as one detector in memory (alarms included), across generations of its memory', async () => {
    const { createLoopDetector } = await import('../src/loop-detector.js');
    await withTwoBackends(async (a, b) => {
      const roomId = 900_000 + Math.floor(Math.random() * 1e5);
      const local = createLoopDetector();
      const verdicts: [unknown, unknown][] = [];
      // Enough fresh words to turn the young generation into the old one more than once (8,192 keys).
      for (let i = 0; i < 500; i++) {
        const words = Array.from({ length: 20 }, (_, w) => `w${i}x${w}`).join(' ');
        const text = i % 50 < 44 ? `Checked ${words} and ${i * 7} files.` : 'Thanks, great work!';
        const side = (i % 2) as 0 | 1;
        // Alternate brokers, with a second send on the same broker now and then (its copy is current).
        const via = i % 3 === 0 ? a : b;
        verdicts.push([await via.detectors.observe(roomId, side, text, 'OVER'), local.observe(side, text, 'OVER')]);
      }
      for (const [shared, mine] of verdicts) expect(shared).toEqual(mine);
      expect(verdicts.some(([, mine]) => mine !== null)).toBe(true); // the thanks runs raise alarms, on both alike
      // Redis's copy is the very memory of the local detector, generation by generation.
      const r = new Redis(redis.url);
      const sorted = (xs: (string | number)[]) => xs.map(Number).sort((x, y) => x - y);
      const mine = local.snapshot();
      expect(mine.old.length).toBeGreaterThan(0);
      expect(sorted(await r.smembers(`parley:det:{${roomId}}:y`))).toEqual(sorted(mine.young));
      expect(sorted(await r.smembers(`parley:det:{${roomId}}:o`))).toEqual(sorted(mine.old));
      await a.detectors.delete(roomId);
      expect(await r.keys(`*det:{${roomId}}*`)).toEqual([]);
      r.disconnect();
    });
  });

  it("a send's detector change and its turn land together or not at all, whichever broker changed either first", async () => {
    const { createLoopDetector } = await import('../src/loop-detector.js');
    await withTwoBackends(async (a, b) => {
      const room = (await a.rooms.create({ kind: 'standard', headless: false, creator: 'c'.repeat(64), members: [], paused: null, alarms: 0 }, Date.now()))!;
      const local = createLoopDetector();
      let turns = 0;
      for (let i = 0; i < 120; i++) {
        const text = i % 30 < 24 ? `Checked shard ${i} of ${i * 13}: ${i * 7} files, ${i % 5} retries.` : 'Thanks, great work!';
        const side = (i % 2) as 0 | 1;
        const [via, other] = i % 3 === 0 ? [a, b] : [b, a];
        // Now and then the other broker changes the room, so `via`'s copy of it is stale.
        if (i % 4 === 0) await other.rooms.update(room.id, (r) => void (r.paused = r.paused ? null : 'standby'));
        const shared = await via.detectors.observeTurn(room.id, side, text, 'OVER', (r) => (r.alarms += 1));
        const mine = local.observe(side, text, 'OVER');
        expect(shared.alarm).toEqual(mine);
        // The turn ran on the current room exactly when there was no alarm, and was stored.
        if (mine) expect(shared.turn).toBeUndefined();
        else expect(shared.turn).toBe(++turns);
      }
      expect(turns).toBeGreaterThan(0);
      expect(turns).toBeLessThan(120); // the thanks runs raised alarms
      expect((await b.rooms.get(room.id))?.alarms).toBe(turns);
      // The detector in Redis was fed each message once, retries included.
      const r = new Redis(redis.url);
      const sorted = (xs: (string | number)[]) => xs.map(Number).sort((x, y) => x - y);
      expect(sorted(await r.smembers(`parley:det:{${room.id}}:y`))).toEqual(sorted(local.snapshot().young));
      r.disconnect();
      // A room that is gone (with its detector, as the engine closes one) takes no turn, though a
      // still holds a copy of the old detector in its thanks run.
      await b.rooms.delete(room.id);
      await b.detectors.delete(room.id);
      expect(await a.detectors.observeTurn(room.id, 0, 'Rebuilt shard 9 of 12.', 'OVER', () => 'changed')).toEqual({ alarm: null });
    });
  });

  it('a send whose copy of the room is stale takes its turn on the room read again, and keeps its judged detector (no reload)', async () => {
    await withTwoBackends(async (a, b) => {
      const room = (await a.rooms.create({ kind: 'standard', headless: false, creator: 'c'.repeat(64), members: [], paused: null, alarms: 0 }, Date.now()))!;
      await a.detectors.observeTurn(room.id, 0, 'Checked shard 1 of 13: 7 files.', 'OVER', () => undefined); // a holds copies of both now
      const r = new Redis(redis.url);
      const reloads = async () => Number(/cmdstat_smembers:calls=(\d+)/.exec(await r.info('commandstats'))?.[1] ?? 0);
      const before = await reloads();
      await b.rooms.update(room.id, (x) => void (x.alarms = 10)); // a presence write, say
      const out = await a.detectors.observeTurn(room.id, 1, 'Checked shard 2 of 26: 9 files.', 'OVER', (x) => (x.alarms += 1));
      expect(out).toEqual({ alarm: null, turn: 11 }); // the turn ran on b's room
      expect((await b.rooms.get(room.id))?.alarms).toBe(11);
      expect(await reloads()).toBe(before);
      expect(await r.get(`parley:det:{${room.id}}:v`)).toBe('2'); // two messages, each stored once
      r.disconnect();
    });
  });

  it('a room update on one broker sees what another broker changed since the first one last read the room', async () => {
    await withTwoBackends(async (a, b) => {
      const room = (await a.rooms.create({ kind: 'standard', headless: false, creator: 'c'.repeat(64), members: [], paused: null, alarms: 0 }, Date.now()))!;
      expect((await a.rooms.get(room.id))?.paused).toBeNull(); // a now holds the room as it was
      await b.rooms.update(room.id, (r) => void (r.paused = 'loop'));
      // What a's update sees, and what it writes, include b's change.
      expect(await a.rooms.update(room.id, (r) => ((r.alarms += 1), r.paused))).toBe('loop');
      expect(await b.rooms.get(room.id)).toMatchObject({ paused: 'loop', alarms: 1 });
      await b.rooms.delete(room.id);
      expect(await a.rooms.update(room.id, () => 'changed')).toBeUndefined();
    });
  });
});

describe('MCP sessions on several brokers', () => {
  it('each request of one MCP session may reach another broker: identity, room and waits carry over, and its end is everywhere', async () => {
    const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
    const { mcpAgent, nextEvent } = await import('./mcp-helpers.js');
    const brokers = [await broker(env), await broker(env)];
    const served = [0, 0];
    // Round robin, as Caddy balances the scaled profile: every request goes to the other broker.
    let turn = 0;
    const roundRobin = (input: string | URL | Request, init?: RequestInit) => {
      const i = turn++ % 2;
      served[i]++;
      const url = new URL(input instanceof Request ? input.url : String(input));
      url.host = new URL(brokers[i].url).host;
      return fetch(url, init);
    };
    const transport = new StreamableHTTPClientTransport(new URL('/mcp', brokers[0].url), { fetch: roundRobin });
    const agent = await mcpAgent(brokers[0].url, transport);
    const api = client(brokers[1].url);
    const { code } = (await agent.call('parley_start', {})).structuredContent;
    const joiner: string = (await api.registerAndJoin(code)).json.token;
    expect((await nextEvent(agent)).kind).toBe('partner_joined');
    for (let i = 0; i < 3; i++) {
      const sent = await agent.call('parley_send', { text: `Step ${i} done on shard ${i * 11}`, signal: 'OVER', wait_s: 0 });
      expect(sent.isError).toBeFalsy();
      expect(messageLines((await api.wait(joiner, 5)).text)).toEqual([`Step ${i} done on shard ${i * 11}`]);
      await api.send(joiner, `Reply ${i}: next shard is ${i * 11 + 1} [OVER]`);
      const got = await nextEvent(agent);
      expect(got.untrusted_text).toBe(`Reply ${i}: next shard is ${i * 11 + 1}`);
    }
    expect(served[0]).toBeGreaterThan(3);
    expect(served[1]).toBeGreaterThan(3);
    // Ending the session on one broker ends it on the other: its identity left the room.
    const sessionId = transport.sessionId!;
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
    await transport.terminateSession();
    expect((await api.wait(joiner, 5)).text).toMatch(/closed|left/);
    for (const b of brokers) {
      const r = await fetch(`${b.url}/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' }),
      });
      expect(r.status, await r.text()).toBe(404);
    }
    // Redis holds the session only sealed: neither the session id nor the token in clear.
    const all = await dump();
    expect(all).not.toContain(sessionId);
    expect(all).not.toMatch(/tok_[0-9a-f]{32}/);
  });
});
