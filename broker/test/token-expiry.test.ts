/** Sliding token expiry through real HTTP, with a short TOKEN_TTL_S. */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { broker, client } from './helpers.js';

describe('token expiry', () => {
  it('a short TOKEN_TTL_S slides with use, and still expires once the token goes unused', async () => {
    const b = await broker({ TOKEN_TTL_S: '3' });
    const api = client(b.url);
    const { token } = (await api.register()).json;
    // Used every 200 ms for longer than its lifetime: every call must still be accepted.
    const until = Date.now() + 4500;
    while (Date.now() < until) {
      expect((await api.ping(token)).status).toBe(200);
      await sleep(200);
    }
    await sleep(3500);
    expect((await api.ping(token)).status).toBe(401);
  });
});
