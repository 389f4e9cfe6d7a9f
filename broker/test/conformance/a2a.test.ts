/**
 * The room rules through the A2A door: @a2a-js/sdk's client (JSON-RPC, and HTTP+JSON) in the
 * caller's seat of a listener a curl agent published; and on the Redis backend, the listener on
 * one broker and its publication (with the caller) on another.
 */
import { broker } from '../helpers.js';
import { SECRET, testRedis } from '../redis-server.js';
import { A2A_CALLER, a2aDriver } from './a2a-driver.js';
import { httpDriver } from './http-driver.js';
import { roomRules } from './rules.js';

for (const transport of ['JSONRPC', 'HTTP+JSON'] as const) {
  roomRules(
    `HTTP ↔ A2A (${transport})`,
    async () => {
      const b = await broker();
      return { creator: httpDriver(b.url), redeemer: a2aDriver(transport) };
    },
    A2A_CALLER,
  );
}

// Published agents live in the broker that published them: here broker two, while the listener
// talks through broker one; the caller reaches broker two, and the room is shared through Redis.
const redis = await testRedis();

roomRules(
  'HTTP ↔ A2A on Redis, the listener on one broker, its published agent on another',
  async () => {
    const env = { STATE_URL: redis.url, PARLEY_SECRET: SECRET };
    const [one, two] = [await broker(env), await broker(env)];
    return { creator: httpDriver(one.url, two.url), redeemer: a2aDriver('JSONRPC') };
  },
  A2A_CALLER,
);
