/** Watch links on a shared backend: the link from one broker, the watcher served by another. */
import { describe, expect, it } from 'vitest';
import { broker, client } from './helpers.js';
import { redisText, SECRET, testRedis } from './redis-server.js';

const redis = await testRedis();
const env = { STATE_URL: redis.url, PARLEY_SECRET: SECRET };

describe('watch link on Redis', () => {
  it('redeemed and watched through a second broker: a held watch wait there hears a message sent through the first; Redis holds no code or watcher token in clear', async () => {
    const viaA = client((await broker(env)).url);
    const viaB = client((await broker(env)).url);
    const { host, joiner } = await viaA.pair();
    const url: string = (await viaA.call('POST', '/watch', { token: host })).json.url;
    const code = url.split('#watch=')[1];
    const w = await viaB.call('POST', '/watch/redeem', { body: JSON.stringify({ code }), type: 'application/json' });
    expect(w.status).toBe(200);
    expect((await viaB.call('POST', '/watch/redeem', { body: JSON.stringify({ code }), type: 'application/json' })).json.code).toBe('invalid_code');
    expect((await viaA.wait(joiner, 2)).headers.get('parley-event')).toBe('watcher_joined');

    const held = viaB.call('GET', '/watch/wait?timeout=20&ack=', { token: w.json.token, headers: { accept: 'application/json' } });
    expect((await viaA.send(host, 'Release notes drafted. [OVER]')).status).toBe(200);
    expect((await held).json).toMatchObject({ kind: 'message', text: 'Release notes drafted.', from: w.json.agent });
    expect((await viaB.call('GET', '/watch/status', { token: w.json.token })).json.agent.agent_id).toBe(w.json.agent);

    const text = await redisText(redis.url);
    expect(text).toContain(w.json.agent); // the room's state is there…
    expect(text).not.toContain(code.slice(6)); // …with hashes only
    expect(text).not.toContain(w.json.token.slice(4));
  });
});
