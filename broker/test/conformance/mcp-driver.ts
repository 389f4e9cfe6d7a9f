/** The MCP door (/mcp) as a conformance driver: each participant is one MCP session of the SDK client. */
import { parseSignal } from '../../src/framing.js';
import { mcpAgent, type McpAgent, type ToolResult } from '../mcp-helpers.js';
import type { Driver, Outcome, Participant, SeenEvent } from './driver.js';

/** A tool error's refusal code ("Refused (code): …"). */
function outcome(agent: McpAgent, r: ToolResult): Outcome {
  if (!r.isError) return { ok: true };
  const code = /^Refused \((\w+)\)/.exec(agent.text(r))?.[1];
  if (!code) throw new Error(`tool error without a refusal code: ${agent.text(r)}`);
  return { ok: false, code };
}

export function mcpDriver(base: string): Driver {
  const participant = (agent: McpAgent): Participant => ({
    async send(raw) {
      const { text, signal } = parseSignal(raw);
      return outcome(agent, await agent.call('parley_send', { text, signal: signal ?? 'OVER', wait_s: 0 }));
    },
    async next(timeoutMs = 2000) {
      const r = await agent.call('parley_wait', { timeout_s: Math.max(1, Math.ceil(timeoutMs / 1000)) });
      if (r.isError) throw new Error(`parley_wait failed: ${agent.text(r)}`);
      if (r.structuredContent.outcome === 'nothing_yet') return null;
      const { kind, untrusted_text, signal } = r.structuredContent.event;
      const e: SeenEvent = { kind, raw: agent.text(r) };
      if (kind === 'message') Object.assign(e, { text: untrusted_text, signal });
      return e;
    },
    async status() {
      const s = (await agent.call('parley_status')).structuredContent;
      return { inRoom: s.in_room, paused: s.paused ?? null, partner: s.partner !== undefined };
    },
    async resume() {
      return outcome(agent, await agent.call('parley_resume'));
    },
    async leave() {
      await agent.call('parley_leave');
    },
    close: () => agent.client.close(),
  });
  return {
    name: 'mcp',
    async open(kind) {
      const agent = await mcpAgent(base);
      const r = await agent.call('parley_start', { mode: kind === 'standard' ? 'invite' : 'listener' });
      return { participant: participant(agent), code: r.structuredContent.code };
    },
    async join(code) {
      const agent = await mcpAgent(base);
      const r = await agent.call('parley_join', { code });
      const o = outcome(agent, r);
      if (o.ok) return { participant: participant(agent) };
      await agent.client.close();
      return { refused: o.code };
    },
  };
}
