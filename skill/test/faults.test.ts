/**
 * The skill's own scripts, and the supervisor, through a proxy that cuts responses at random
 * points (after the first byte, after the headers, mid-body, with RST): sends are retried with
 * one idempotency key, waits acknowledge what they showed, so nothing is lost and nothing is
 * shown twice. The messages are spread over ROOMS conversations at once (each message is two
 * script runs of bash, curl and sed; a 2-core machine runs two such chains side by side).
 *
 * PARLEY_FAULT_MESSAGES sets the size of each run: 500 by default, since CI's time is bounded
 * (on a shared 2-core machine under load, 2,000 messages took 50 minutes for the supervisor run
 * alone); `PARLEY_FAULT_MESSAGES=2000` is the run issue 10 asks for, and the README gives its figures.
 */
import { describe, expect, it } from 'vitest';
import { faultProxy, type FaultProxy } from '../../broker/test/fault-proxy.js';
import { agent, liveBroker, MANY_STEPS, messageText, onCleanup, type Agent } from './agents.js';

const MESSAGES = Number(process.env.PARLEY_FAULT_MESSAGES ?? 500);
const ROOMS = 4;
const PER_ROOM = Math.max(4, Math.ceil(MESSAGES / ROOMS / 2) * 2);
const EX_UNREACHABLE = 2;
const EX_RETRY = 8;
/** A bound for a whole run, not a timed assertion: generous for a busy machine. */
const RUN_BOUND = 3 * 3_600_000;
const SHARE_CUT = 0.2;

/**
 * wait.sh until a message comes, as an agent follows SKILL.md: after a cut (exit 2) run it again;
 * on exit 8 (here WAIT_PENDING: the broker has not yet noticed the cut wait's connection close)
 * wait a moment and run it again.
 */
async function nextMessage(a: Agent, url: string): Promise<string> {
  for (let tries = 0; tries < 50; tries++) {
    const r = await a.run('wait.sh', ['--slice', '5'], '', { PARLEY_URL: url });
    if (r.first.startsWith('MESSAGE ')) return messageText(r.out);
    if (r.code === EX_RETRY) await new Promise((done) => setTimeout(done, 200));
    else if (r.code !== EX_UNREACHABLE && !r.first.startsWith('TIMEOUT_ROOM_ALIVE')) throw new Error(`wait.sh: ${r.out}${r.err}`);
  }
  throw new Error('no message after 50 waits');
}

/** send.sh; run again with the same text after BROKER_UNREACHABLE (SKILL.md: it reuses its key). */
async function send(a: Agent, text: string, url: string): Promise<void> {
  for (let tries = 0; tries < 10; tries++) {
    const r = await a.run('send.sh', ['-'], text, { PARLEY_URL: url });
    if (r.first === 'DELIVERED') return;
    if (r.code !== EX_UNREACHABLE) throw new Error(`send.sh: ${r.out}${r.err}`);
  }
  throw new Error('send.sh unreachable 10 times in a row');
}

/** A room opened and joined straight at the broker, ready to talk through the proxy. */
async function room(brokerUrl: string, n: number, env: Record<string, string> = {}) {
  const host = agent(brokerUrl, `host${n}`, env);
  const joiner = agent(brokerUrl, `joiner${n}`, env);
  const code = /^INVITE_CODE: (invite_[0-9a-f]{32})$/m.exec((await host.run('host.sh')).out)![1];
  expect((await joiner.run('join.sh', [code])).code).toBe(0);
  expect((await host.run('wait.sh', ['--slice', '2'])).first).toBe('PARTNER_JOINED');
  return { host, joiner };
}

const cutSummary = (p: FaultProxy) => `${Object.values(p.cuts).reduce((x, y) => x + y, 0)} responses cut ${JSON.stringify(p.cuts)}`;

describe('skill through a faulty network', () => {
  it('a send.sh that ended BROKER_UNREACHABLE, run again with the same text, is delivered once', async () => {
    const b = await liveBroker();
    const everyAnswerCut = await faultProxy(b.url, 1);
    onCleanup(() => everyAnswerCut.close());
    const { host, joiner } = await room(b.url, 0);
    // Every try reaches the broker, every answer is lost: send.sh gives up unreachable.
    const lost = await host.run('send.sh', ['-'], 'deploy window is 14:00-14:30 UTC [OVER]', { PARLEY_URL: everyAnswerCut.url });
    expect([lost.code, lost.first]).toEqual([EX_UNREACHABLE, 'BROKER_UNREACHABLE']);
    // The agent runs it again (SKILL.md), now on a good network: the same key, so the broker's first answer.
    expect((await host.say('send.sh', 'deploy window is 14:00-14:30 UTC [OVER]')).first).toBe('DELIVERED');
    expect((await host.say('send.sh', 'deploy window moved to 15:00 UTC [OVER]')).first).toBe('DELIVERED');
    const got = [await nextMessage(joiner, b.url), await nextMessage(joiner, b.url)];
    expect(got).toEqual(['deploy window is 14:00-14:30 UTC', 'deploy window moved to 15:00 UTC']);
  }, MANY_STEPS);

  it(`the scripts lose nothing and show nothing twice over ${PER_ROOM * ROOMS} messages while responses are cut at random`, async () => {
    const b = await liveBroker({ MESSAGE_TTL_S: '3600' });
    const proxy = await faultProxy(b.url, SHARE_CUT);
    onCleanup(() => proxy.close());
    const talk = async (n: number) => {
      const { host, joiner } = await room(b.url, n);
      const shown: string[] = [];
      for (let i = 0; i < PER_ROOM / 2; i++) {
        await send(host, `room ${n} request ${i}: checksum ${(i * 2654435761 + n) % 4294967296} [OVER]`, proxy.url);
        shown.push(await nextMessage(joiner, proxy.url));
        await send(joiner, `room ${n} reply ${i}: verified block ${(i * 40503 + n) % 65536} [OVER]`, proxy.url);
        shown.push(await nextMessage(host, proxy.url));
      }
      const expected = Array.from({ length: PER_ROOM / 2 }, (_, i) => [`room ${n} request ${i}: checksum ${(i * 2654435761 + n) % 4294967296}`, `room ${n} reply ${i}: verified block ${(i * 40503 + n) % 65536}`]).flat();
      return { shown, expected };
    };
    const rooms = await Promise.all(Array.from({ length: ROOMS }, (_, n) => talk(n)));
    for (const r of rooms) expect(r.shown).toEqual(r.expected); // 0 lost, 0 shown twice, in order
    expect(Math.min(...Object.values(proxy.cuts))).toBeGreaterThan(0); // every kind of cut happened
    console.log(`fault run (skill scripts): ${PER_ROOM * ROOMS} messages in ${ROOMS} rooms, 0 lost, 0 shown twice; ${cutSummary(proxy)}`);
  }, RUN_BOUND);

  it(`two supervisors per room lose nothing and answer nothing twice over ${PER_ROOM * ROOMS} messages while responses are cut at random`, async () => {
    const b = await liveBroker({ MESSAGE_TTL_S: '3600' });
    const proxy = await faultProxy(b.url, SHARE_CUT);
    onCleanup(() => proxy.close());
    // Each side answers with a fact of its own until it has sent `turns` replies, then stands by.
    const turns = PER_ROOM / 2 - 1;
    const runner = `n=$(grep -c '^### You' "$PARLEY_CONTEXT"); if [ "$n" -ge ${turns} ]; then echo "$PARLEY_ROLE done after $n turns [STANDBY]"; else echo "$PARLEY_ROLE turn $n: block $(( (n * 2654435761 + \${#PARLEY_ROLE}) % 4294967296 )) [OVER]"; fi`;
    const talk = async (n: number) => {
      const { host, joiner } = await room(b.url, n);
      const through = ['--url', proxy.url, '--slice', '5', '--max-turns', String(turns + 10), '--runner', runner];
      const h = host.supervisor(['run', ...through, '--opening', `Room ${n}: let us trade build facts, one per turn`]);
      const j = joiner.supervisor(['run', ...through]);
      const [hr, jr] = await Promise.all([h.result, j.result]);
      for (const r of [hr, jr]) expect([r.code, r.out]).toEqual([0, expect.stringMatching(/^STOPPED reason=standby_pause /m)]);
      // What each side sent (→) and what the other side's runner was handed (←), from their logs.
      const said = (log: string, arrow: '→' | '←') =>
        log
          .split('\n')
          .map((l) => l.replace(/^\[[\d:]+\] /, ''))
          .filter((l) => l.startsWith(arrow))
          .map((l) => l.replace(/^→ /, '').replace(/^← Agent-[0-9a-f]{4} \[(OVER|STANDBY)\] /, '').replace(/ \[(OVER|STANDBY)\]$/, ''));
      return { hostSent: said(hr.err, '→'), joinerGot: said(jr.err, '←'), joinerSent: said(jr.err, '→'), hostGot: said(hr.err, '←') };
    };
    const rooms = await Promise.all(Array.from({ length: ROOMS }, (_, n) => talk(n)));
    let total = 0;
    for (const r of rooms) {
      expect(r.joinerGot).toEqual(r.hostSent); // 0 lost, 0 handed to the runner twice, in order
      expect(r.hostGot).toEqual(r.joinerSent);
      expect(new Set([...r.hostSent, ...r.joinerSent]).size).toBe(r.hostSent.length + r.joinerSent.length);
      total += r.hostSent.length + r.joinerSent.length;
    }
    expect(total).toBeGreaterThanOrEqual(PER_ROOM * ROOMS);
    expect(Math.min(...Object.values(proxy.cuts))).toBeGreaterThan(0);
    console.log(`fault run (supervisor): ${total} messages in ${ROOMS} rooms, 0 lost, 0 answered twice; ${cutSummary(proxy)}`);
  }, RUN_BOUND);
});
