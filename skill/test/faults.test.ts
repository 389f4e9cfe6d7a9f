/**
 * The skill's own scripts through a proxy that cuts responses at random points: sends are
 * retried with one idempotency key, waits acknowledge what they showed, so nothing is lost and
 * nothing is shown twice. PARLEY_FAULT_MESSAGES sets the size: 200 by default, since each message
 * is two script runs (bash, curl, sed) and CI's time is bounded; the 2,000-message run of the same
 * protocol is the broker's own delivery test, with an HTTP client.
 */
import { describe, expect, it } from 'vitest';
import { faultProxy } from '../../broker/test/fault-proxy.js';
import { agent, liveBroker, messageText, onCleanup, type Agent } from './agents.js';

const MESSAGES = Number(process.env.PARLEY_FAULT_MESSAGES ?? 200);
const EX_UNREACHABLE = 2;
const EX_RETRY = 8;

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

async function send(a: Agent, text: string, url: string): Promise<void> {
  const r = await a.run('send.sh', ['-'], text, { PARLEY_URL: url });
  if (r.first !== 'DELIVERED') throw new Error(`send.sh: ${r.out}${r.err}`);
}

describe('skill scripts through a faulty network', () => {
  it(`lose nothing and show nothing twice over ${MESSAGES} messages while responses are cut at random`, async () => {
    const b = await liveBroker({ MESSAGE_TTL_S: '600' });
    const proxy = await faultProxy(b.url, 0.2);
    onCleanup(() => proxy.close());
    const host = agent(b.url, 'host');
    const joiner = agent(b.url, 'joiner');
    const code = /^INVITE_CODE: (invite_[0-9a-f]{32})$/m.exec((await host.run('host.sh')).out)![1];
    expect((await joiner.run('join.sh', [code])).code).toBe(0);
    expect((await host.run('wait.sh', ['--slice', '2'])).first).toBe('PARTNER_JOINED');
    // From here on both talk through the proxy.
    const shown: string[] = [];
    for (let i = 0; i < MESSAGES / 2; i++) {
      await send(host, `request ${i}: checksum ${(i * 2654435761) % 4294967296} [OVER]`, proxy.url);
      shown.push(await nextMessage(joiner, proxy.url));
      await send(joiner, `reply ${i}: verified block ${(i * 40503) % 65536} [OVER]`, proxy.url);
      shown.push(await nextMessage(host, proxy.url));
    }
    const expected = Array.from({ length: MESSAGES / 2 }, (_, i) => [`request ${i}: checksum ${(i * 2654435761) % 4294967296}`, `reply ${i}: verified block ${(i * 40503) % 65536}`]).flat();
    expect(shown).toEqual(expected);
    expect(Math.min(...Object.values(proxy.cuts))).toBeGreaterThan(0);
  }, 1_800_000);
});
