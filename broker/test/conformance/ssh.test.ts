/** The room rules through the SSH door: SSH on both sides, and SSH in a room with a curl agent. */
import { broker } from '../helpers.js';
import { sshBroker } from '../ssh-client.js';
import { httpDriver } from './http-driver.js';
import { roomRules } from './rules.js';
import { sshDriver } from './ssh-driver.js';

roomRules('SSH ↔ SSH', async () => {
  const b = await broker();
  const s = await sshBroker(b.url);
  return { creator: sshDriver(b.url, s.port), redeemer: sshDriver(b.url, s.port) };
});

roomRules('SSH ↔ HTTP', async () => {
  const b = await broker();
  const s = await sshBroker(b.url);
  return { creator: sshDriver(b.url, s.port), redeemer: httpDriver(b.url) };
});
