/**
 * The SDK's own floor under the MCP figure: a server built the way the MCP door is (one McpServer
 * and Streamable HTTP transport per session, answers as SSE so progress can flow) whose only tool
 * takes parley_send's arguments and echoes the text back at once, with no room, no partner and
 * no Parley code at all. Whatever this relays per second, driven by the same SDK client as the
 * door, is the most any door built on this SDK could reach on this machine.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import * as z from 'zod';

export const FLOOR_TOOL = 'echo_send';

function floorServer(): McpServer {
  const server = new McpServer({ name: 'mcp-floor', version: '1' });
  server.registerTool(
    FLOOR_TOOL,
    {
      description: 'Echoes the text, as parley_send would return the partner’s answer.',
      // The shapes of parley_send's arguments and result, so the SDK validates as much per call.
      inputSchema: { text: z.string().min(1), signal: z.enum(['OVER', 'STANDBY']), wait_s: z.number().int().min(0).max(300).optional() },
      outputSchema: { message_id: z.string(), signal: z.enum(['OVER', 'STANDBY']), then: z.looseObject({}).optional() },
      annotations: { readOnlyHint: false, destructiveHint: false },
    },
    async ({ text, signal }) => {
      const then = { outcome: 'event', event: { kind: 'message', id: randomUUID(), untrusted_text: text } };
      return { content: [{ type: 'text', text }], structuredContent: { message_id: randomUUID(), signal, then } };
    },
  );
  return server;
}

export function createMcpFloor(): Server {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  return createServer(async (req, res) => {
    const id = req.headers['mcp-session-id'];
    let transport = typeof id === 'string' ? sessions.get(id) : undefined;
    if (!transport) {
      const created = new StreamableHTTPServerTransport({ sessionIdGenerator: randomUUID, onsessioninitialized: (sid) => void sessions.set(sid, created) });
      await floorServer().connect(created);
      transport = created;
    }
    await transport.handleRequest(req, res);
  });
}
