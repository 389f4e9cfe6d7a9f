/**
 * Acknowledged delivery as deployed: two agents in their own containers talk with the skill's
 * scripts through Caddy while Caddy is restarted (`docker restart`) and their curl is killed in
 * flight. Each agent follows SKILL.md: BROKER_UNREACHABLE (or a retry answer) means run the same
 * command again. Every message must be shown exactly once, in order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Agent, type Stack, stack as buildStack } from './stack.js';

let stack: Stack;
let a: Agent;
let b: Agent;

beforeAll(async () => {
  stack = await buildStack().start();
  [a, b] = await stack.agents(2);
});

afterAll(async () => {
  await stack?.stop();
});

const EX_UNREACHABLE = 2;
const EX_RETRY = 8;
const EX_QUIET = 9;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const first = (out: string) => out.split('\n')[0];

/** The partner's text from a MESSAGE event: the frame's "│ "-prefixed lines. */
function messageText(out: string): string {
  const lines = out.split('\n');
  return lines
    .slice(4, lines.lastIndexOf('└────'))
    .map((l) => l.replace(/^│ ?/, ''))
    .join('\n');
}

/** send.sh until DELIVERED; after BROKER_UNREACHABLE or a retry answer the same text again (it reuses its key). */
async function send(agent: Agent, text: string): Promise<number> {
  for (let tries = 1; tries <= 60; tries++) {
    const r = await agent.say('send.sh', text);
    if (first(r.stdout) === 'DELIVERED') return tries;
    if (r.code !== EX_UNREACHABLE && r.code !== EX_RETRY) throw new Error(`send.sh exit ${r.code}: ${r.stdout}${r.stderr}`);
    await pause(500);
  }
  throw new Error(`send.sh never delivered: ${text}`);
}

/** The outcome of one wait.sh run: the message shown, or null when it has to be run again. */
function shown(r: { code: number; stdout: string; stderr: string }): string | null {
  if (first(r.stdout).startsWith('MESSAGE ')) return messageText(r.stdout);
  if ([EX_UNREACHABLE, EX_RETRY, EX_QUIET].includes(r.code)) return null;
  throw new Error(`wait.sh exit ${r.code}: ${r.stdout}${r.stderr}`);
}

/** wait.sh until a message is shown. */
async function next(agent: Agent): Promise<string> {
  for (let tries = 0; tries < 120; tries++) {
    const text = shown(await agent.skill('wait.sh', '--slice', '5'));
    if (text !== null) return text;
    await pause(250);
  }
  throw new Error(`no message for ${agent.name}`);
}

/** Resolves once a curl runs in the agent's container (a wait or a send on its way). */
async function curlRunning(agent: Agent): Promise<void> {
  const r = await agent.sh('for i in $(seq 400); do pidof curl >/dev/null && exit 0; sleep 0.05; done; exit 1');
  if (r.code !== 0) throw new Error(`no curl ever ran in ${agent.name}`);
}

/** SIGKILL to every curl in the agent's container (the connection dies mid-request); whether one ran. */
const killCurl = async (agent: Agent) => (await agent.sh('pids=$(pidof curl) && kill -9 $pids && echo killed; true')).stdout.includes('killed');

describe('delivery through Caddy', () => {
  it('two agents on the skill lose nothing and see nothing twice while Caddy restarts and their curl is killed in flight', async () => {
    const opened = await a.skill('host.sh');
    const code = /^INVITE_CODE: (invite_[0-9a-f]{32})$/m.exec(opened.stdout)?.[1];
    expect(code).toBeDefined();
    expect((await b.skill('join.sh', code!)).code).toBe(0);
    expect(first((await a.skill('wait.sh', '--slice', '5')).stdout)).toBe('PARTNER_JOINED');

    const sentByA: string[] = [];
    const sentByB: string[] = [];
    const shownToA: string[] = [];
    const shownToB: string[] = [];
    const cut = { heldWaits: 0, racingWaits: 0, sendsKilled: 0, caddyRestarts: 0 };
    const EXCHANGES = 24;
    for (let i = 0; i < EXCHANGES; i++) {
      const request = `request ${i}: checksum ${(i * 2654435761) % 4294967296}`;
      const reply = `reply ${i}: verified block ${(i * 40503) % 65536}`;
      const fault = i % 6;
      if (fault === 1) {
        // b's held wait is killed before anything is sent, then a sends.
        const held = b.skill('wait.sh', '--slice', '20');
        await curlRunning(b);
        await pause(300);
        await killCurl(b);
        if (shown(await held) === null) cut.heldWaits++;
        await send(a, `${request} [OVER]`);
        shownToB.push(await next(b));
      } else if (fault === 2) {
        // a sends while b holds a wait, and b's curl is killed as the message is on its way.
        const held = b.skill('wait.sh', '--slice', '20');
        await curlRunning(b);
        await pause(300);
        await Promise.all([send(a, `${request} [OVER]`), killCurl(b)]);
        const text = shown(await held);
        if (text === null) cut.racingWaits++;
        shownToB.push(text ?? (await next(b)));
      } else if (fault === 3) {
        // a's send is killed in flight: send.sh tries again with the same key. The broker is paused
        // so the send is surely on its way (it reached the broker, which answers once resumed).
        await stack.pauseBroker(0);
        const sending = send(a, `${request} [OVER]`);
        try {
          await curlRunning(a);
          if (await killCurl(a)) cut.sendsKilled++;
        } finally {
          await stack.unpauseBroker(0);
        }
        await sending;
        shownToB.push(await next(b));
      } else if (fault === 4) {
        // Caddy restarts while b holds a wait; a sends as soon as it can.
        const held = b.skill('wait.sh', '--slice', '20');
        await curlRunning(b);
        const restart = stack.restartCaddy();
        await send(a, `${request} [OVER]`);
        const text = shown(await held);
        shownToB.push(text ?? (await next(b)));
        await restart;
        cut.caddyRestarts++;
      } else {
        await send(a, `${request} [OVER]`);
        shownToB.push(await next(b));
      }
      sentByA.push(request);
      await send(b, `${reply} [OVER]`);
      sentByB.push(reply);
      shownToA.push(await next(a));
    }
    expect(shownToB).toEqual(sentByA); // 0 lost, 0 shown twice, in order
    expect(shownToA).toEqual(sentByB);
    // The faults really hit: waits cut while held, sends killed on their way, and Caddy restarted.
    expect(cut.heldWaits).toBeGreaterThan(0);
    expect(cut.sendsKilled).toBe(EXCHANGES / 6);
    expect(cut.caddyRestarts).toBe(EXCHANGES / 6);
    console.log(`e2e delivery through Caddy: ${sentByA.length + sentByB.length} messages, 0 lost, 0 shown twice; faults ${JSON.stringify(cut)}`);
  }, 1_800_000); // a bound for a busy machine, not a timed assertion
});
