import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
const c = new Client({ name: 'x', version: '1' });
await c.connect(new StreamableHTTPClientTransport(new URL('http://127.0.0.1:39471/mcp')));
for (const name of ['parley_status', 'parley_status', 'parley_status']) {
  const t = performance.now();
  for (let i = 0; i < 20; i++) await c.callTool({ name, arguments: {} });
  console.log(name, ((performance.now() - t) / 20).toFixed(1), 'ms/call');
}
let t = performance.now();
for (let i = 0; i < 20; i++) await c.listTools();
console.log('listTools', ((performance.now() - t) / 20).toFixed(1));
t = performance.now();
for (let i = 0; i < 20; i++) await (await fetch('http://127.0.0.1:39471/health')).text();
console.log('health', ((performance.now() - t) / 20).toFixed(1));
process.exit(0);
