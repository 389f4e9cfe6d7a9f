/** The skill on several brokers sharing Redis: a broker restarting does not end the session. */
import { describe, expect, it } from 'vitest';
import { SECRET, testRedis } from '../../broker/test/redis-server.js';
import { agent, liveBroker, messageText, until } from './agents.js';

const redis = await testRedis();

describe('skill on a shared backend', () => {
  it('a wait answered by a restarting broker says retry and keeps the token; the next wait on another broker goes on', async () => {
    const env = { STATE_URL: redis.url, PARLEY_SECRET: SECRET };
    const a = await liveBroker(env);
    const b = await liveBroker(env);
    const host = agent(a.url, 'host');
    const joiner = agent(b.url, 'joiner');
    const code = /^INVITE_CODE: (invite_[0-9a-f]{32})$/m.exec((await host.run('host.sh')).out)![1];
    expect((await joiner.run('join.sh', [code])).code).toBe(0);
    expect((await host.run('wait.sh', ['--slice', '2'])).first).toBe('PARTNER_JOINED');
    const held = host.start('wait.sh', ['--slice', '20']);
    await until(async () => (await fetch(`${b.url}/ping`, { headers: { authorization: `Bearer ${joiner.token()}` } }).then((r) => r.json())).partner_presence === 'waiting');
    await a.drain();
    const r = await held.result;
    expect([r.code, r.first]).toEqual([8, 'BROKER_RESTARTING retry_after=3']);
    expect(host.token()).toMatch(/^tok_/); // kept
    expect((await joiner.say('send.sh', 'still here after the restart [OVER]')).first).toBe('DELIVERED');
    const next = await host.run('wait.sh', ['--slice', '5'], '', { PARLEY_URL: b.url });
    expect(next.first).toMatch(/^MESSAGE /);
    expect(messageText(next.out)).toBe('still here after the restart');
  });
});
