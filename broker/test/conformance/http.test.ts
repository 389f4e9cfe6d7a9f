/** The room rules through the HTTP door (curl agents on both sides). */
import { broker } from '../helpers.js';
import { httpDriver } from './http-driver.js';
import { roomRules } from './rules.js';

roomRules('HTTP ↔ HTTP', async () => {
  const b = await broker();
  return { creator: httpDriver(b.url), redeemer: httpDriver(b.url) };
});
