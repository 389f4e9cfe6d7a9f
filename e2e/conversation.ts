/**
 * Room rules as agents see them on the wire, written once for every stack: the appliance runs them
 * through Caddy to one broker, the scale suite with agents pinned to different brokers sharing
 * Redis, and both must see the same answers.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { THANKS } from '../broker/test/polite.js';
import type { Agent } from './stack.js';

const FRAME = /^MESSAGE_RECEIVED\n┌─ Agent-[0-9a-f]{4} \[(OVER|STANDBY)\]\n│\n([^]*)└────$/;
export const JOINED = /^MESSAGE_RECEIVED\n\[SYSTEM\]: Agent-[0-9a-f]{4} has joined\. Session is live!$/;

/** The text lines of a framed partner message. */
export function lines(body: string): string[] {
  const m = FRAME.exec(body);
  if (!m) throw new Error(`not a framed message: ${JSON.stringify(body)}`);
  return m[2].split('\n').slice(0, -1).map((l) => l.replace(/^│ ?/, ''));
}

/** Host `h` opens a standard room, joiner `j` redeems it; the host has read the join notice. */
export async function pair(h: Agent, j: Agent) {
  const setup = await h.setup();
  expect(setup.status).toBe(200);
  const joined = await j.registerAndJoin(setup.json.code);
  expect(joined.status).toBe(200);
  expect((await h.wait(setup.json.token)).body).toMatch(JOINED);
  return { host: setup.json.token as string, joiner: joined.json.token as string };
}

/** Short waits until one answer matches (or the waits end, e.g. 401); returns the last answer. */
async function waitUntil(agent: Agent, token: string, matches: (body: string) => boolean) {
  let got = await agent.wait(token, 2);
  while (got.status === 200 && !got.body.startsWith('TIMEOUT') && !matches(got.body)) got = await agent.wait(token, 2);
  return got;
}

/**
 * Codes burn: `creator` opens a standard room and `redeemer` joins; every retrier then gets the
 * same 404 as for an unknown code. A listener code works once too and makes its redeemer host.
 */
export async function expectCodesBurn(creator: Agent, redeemer: Agent, retriers: Agent[]) {
  const setup = await creator.setup();
  expect((await redeemer.registerAndJoin(setup.json.code)).status).toBe(200);
  for (const r of retriers) {
    const again = await r.registerAndJoin(setup.json.code);
    const unknown = await r.registerAndJoin(`invite_${randomBytes(16).toString('hex')}`);
    expect(again.status).toBe(404);
    expect([again.status, again.body]).toEqual([unknown.status, unknown.body]);
    expect(again.json).toEqual({ error: expect.any(String), code: expect.any(String) });
  }

  const listener = await creator.setup('listener');
  expect(listener.json).toMatchObject({ code: expect.stringMatching(/^listen_[0-9a-f]{32}$/), role: 'joiner' });
  const redeemed = await redeemer.registerAndJoin(listener.json.code);
  expect(redeemed.json).toMatchObject({ role: 'host', headless: true, status: '(2/2 connected)' });
  for (const r of retriers) {
    const twice = await r.registerAndJoin(listener.json.code);
    const unknown = await r.registerAndJoin(`listen_${randomBytes(16).toString('hex')}`);
    expect([twice.status, twice.body]).toEqual([unknown.status, unknown.body]);
  }
}

/** Both sides on STANDBY pause the room (both are told); the next [OVER] resumes it. */
export async function expectStandbyPause(a: Agent, host: string, b: Agent, joiner: string) {
  expect((await a.send(host, 'My part is done [STANDBY]')).body).toBe('DELIVERED');
  expect(lines((await b.wait(joiner)).body)).toEqual(['My part is done']);
  expect((await b.send(joiner, 'Mine too [STANDBY]')).body).toBe('DELIVERED');
  expect(lines((await a.wait(host)).body)).toEqual(['Mine too']);
  const paused = /^MESSAGE_RECEIVED\n\[SYSTEM\]: Both agents are on STANDBY/;
  expect((await a.wait(host)).body).toMatch(paused);
  expect((await b.wait(joiner)).body).toMatch(paused);

  expect((await a.send(host, 'One more thing: the cron job runs at 02:00 UTC [OVER]')).body).toBe('DELIVERED');
  expect(lines((await b.wait(joiner)).body)).toEqual(['One more thing: the cron job runs at 02:00 UTC']);
  expect((await b.send(joiner, 'Noted, moving it to 03:00 [OVER]')).body).toBe('DELIVERED');
}

/**
 * A polite loop is paused with an alarm to both; once resumed, the loop goes on and is severed:
 * both are told, and both tokens die (401) for `ping` and `send`.
 */
export async function expectLoopSevered(a: Agent, host: string, b: Agent, joiner: string) {
  const sides = [[a, host], [b, joiner]] as const;
  /** Trade thanks, alternating, until a send is refused; returns the refusal. */
  const loop = async () => {
    for (let turn = 0; turn < 30; turn++) {
      const [[from, fromToken], [to, toToken]] = turn % 2 === 0 ? sides : [sides[1], sides[0]];
      const r = await from.send(fromToken, `${THANKS[turn % THANKS.length]} [OVER]`);
      if (r.status !== 200) return r;
      await to.wait(toToken);
    }
    throw new Error('the loop was never detected');
  };
  const first = await loop();
  expect(first.status).toBe(429);
  expect(first.json).toMatchObject({ code: 'loop_paused', error: expect.stringMatching(/^Loop detected/) });
  for (const [agent, token] of sides) {
    expect((await waitUntil(agent, token, (body) => body.startsWith('MESSAGE_RECEIVED\n[SYSTEM ALERT]'))).body).toMatch(/^MESSAGE_RECEIVED\n\[SYSTEM ALERT\]: Loop detected/);
  }
  expect((await a.resume(host)).json).toEqual({ ok: true });
  for (const [agent, token] of sides) expect((await agent.wait(token, 2)).body).toContain('resumed the session');

  const second = await loop();
  expect(second.status).toBe(429);
  expect(second.json.code).toBe('loop_severed');
  for (const [agent, token] of sides) {
    expect((await waitUntil(agent, token, (body) => body.includes('severed'))).body).toMatch(/^MESSAGE_RECEIVED\n\[SYSTEM ALERT\]: .*severed/s);
    expect((await agent.ping(token)).status).toBe(401);
    expect((await agent.send(token, 'anyone there? [OVER]')).status).toBe(401);
  }
}
