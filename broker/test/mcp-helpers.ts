/** Test helpers for the MCP door: the real SDK client over Streamable HTTP (or stdio through mcp-remote). */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { RequestOptions } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterEach } from 'vitest';
import { client } from './helpers.js';

const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
});

export type ToolResult = CallToolResult & { structuredContent?: any };

export interface McpAgent {
  client: Client;
  /** Calls a tool; `args` as the model would pass them. */
  call(name: string, args?: Record<string, unknown>, options?: RequestOptions): Promise<ToolResult>;
  /** The text content of a result, joined. */
  text(r: ToolResult): string;
}

export async function mcpAgent(base: string, transport: Transport = new StreamableHTTPClientTransport(new URL('/mcp', base))): Promise<McpAgent & { transport: Transport }> {
  const client = new Client({ name: 'parley-test', version: '1.0.0' });
  clients.push(client);
  await client.connect(transport);
  return {
    client,
    transport,
    call: async (name, args = {}, options) => (await client.callTool({ name, arguments: args }, undefined, options)) as ToolResult,
    text: (r) => r.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n'),
  };
}

/** The next event through parley_wait; throws if none comes within `timeout_s`. */
export async function nextEvent(agent: McpAgent, timeout_s = 5): Promise<any> {
  const r = await agent.call('parley_wait', { timeout_s });
  if (r.isError) throw new Error(`parley_wait failed: ${agent.text(r)}`);
  if (r.structuredContent.outcome !== 'event') throw new Error(`no event within ${timeout_s}s`);
  return r.structuredContent.event;
}

/** An MCP host (invite room) and a curl joiner in one live room, the join notice already read. */
export async function mcpHostAndCurlJoiner(base: string) {
  const api = client(base);
  const mcp = await mcpAgent(base);
  const { code } = (await mcp.call('parley_start', {})).structuredContent;
  const joiner: string = (await api.registerAndJoin(code)).json.token;
  const joined = await nextEvent(mcp);
  if (joined.kind !== 'partner_joined') throw new Error(`expected partner_joined, got ${joined.kind}`);
  return { api, mcp, joiner };
}
