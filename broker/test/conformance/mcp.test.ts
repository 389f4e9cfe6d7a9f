/** The room rules through the MCP door: MCP on both sides, and MCP in a room with a curl agent and with an SSH user. */
import { broker } from '../helpers.js';
import { sshBroker } from '../ssh-client.js';
import { httpDriver } from './http-driver.js';
import { mcpDriver } from './mcp-driver.js';
import { roomRules } from './rules.js';
import { sshDriver } from './ssh-driver.js';

roomRules('MCP ↔ MCP', async () => {
  const b = await broker();
  return { creator: mcpDriver(b.url), redeemer: mcpDriver(b.url) };
});

roomRules('MCP ↔ HTTP', async () => {
  const b = await broker();
  return { creator: mcpDriver(b.url), redeemer: httpDriver(b.url) };
});

roomRules('HTTP ↔ MCP', async () => {
  const b = await broker();
  return { creator: httpDriver(b.url), redeemer: mcpDriver(b.url) };
});

roomRules('SSH ↔ MCP', async () => {
  const b = await broker();
  const s = await sshBroker(b.url);
  return { creator: sshDriver(b.url, s.port), redeemer: mcpDriver(b.url) };
});
