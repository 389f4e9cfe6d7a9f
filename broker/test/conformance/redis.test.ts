/** The room rules on the Redis backend: two brokers sharing one Redis, a participant on each. */
import { broker } from '../helpers.js';
import { SECRET, testRedis } from '../redis-server.js';
import { httpDriver } from './http-driver.js';
import { roomRules } from './rules.js';

const redis = await testRedis();

roomRules('HTTP ↔ HTTP on Redis, one broker each', async () => {
  const env = { STATE_URL: redis.url, PARLEY_SECRET: SECRET };
  const [one, two] = [await broker(env), await broker(env)];
  return { creator: httpDriver(one.url), redeemer: httpDriver(two.url) };
});
