/**
 * The benchmark's MCP load: the same ping-pong as load-client.ts, but each participant is an MCP
 * session (the SDK's Client over Streamable HTTP at /mcp) and each turn is one parley_send that
 * also waits for the answer, as an MCP agent does it. Runs inside the load-client process.
 * `mcpFloorThroughput` drives the SDK-only echo server of mcp-floor.ts with the same client.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { FLOOR_TOOL } from './mcp-floor.js';

type Result = { structuredContent?: any; isError?: boolean; content: unknown[] };

interface McpRoom {
  host: Client;
  joiner: Client;
}

async function session(base: URL): Promise<Client> {
  const c = new Client({ name: 'parley-bench', version: '1' });
  await c.connect(new StreamableHTTPClientTransport(new URL('/mcp', base)));
  return c;
}

async function tool(c: Client, name: string, args: Record<string, unknown>): Promise<any> {
  const r = (await c.callTool({ name, arguments: args })) as Result;
  if (r.isError) throw new Error(`${name}: ${JSON.stringify(r.content).slice(0, 200)}`);
  return r.structuredContent;
}

/** The partner message a wait (or a send's wait) returned; anything else means the run measured something else. */
function messageOf(r: any): string {
  const e = r.then?.event ?? r.event;
  if (e?.kind !== 'message') throw new Error(`unexpected MCP result: ${JSON.stringify(r).slice(0, 160)}`);
  return e.untrusted_text;
}

async function mcpPair(base: URL): Promise<McpRoom> {
  const host = await session(base);
  const joiner = await session(base);
  const { code } = await tool(host, 'parley_start', {});
  await tool(joiner, 'parley_join', { code });
  const joined = await tool(host, 'parley_wait', { timeout_s: 5 });
  if (joined.event?.kind !== 'partner_joined') throw new Error(`expected the join notice, got ${JSON.stringify(joined).slice(0, 100)}`);
  return { host, joiner };
}

export function mcpLoad(base: URL, nextMessage: () => string, stopMessage: () => string, stop: string, cpuUs: () => number) {
  let latencyRoom: McpRoom | undefined;
  let rooms: McpRoom[] = [];
  const floorSessions: Client[] = [];
  /** Runs the loops `start` begins until they all end; messages are what they counted. */
  const timed = async (durationMs: number, start: (deadline: number, counted: () => void) => Promise<void>[]) => {
    let messages = 0;
    const t0 = performance.now();
    const cpu0 = cpuUs();
    await Promise.all(start(t0 + durationMs, () => void messages++));
    return { messages, elapsedMs: performance.now() - t0, clientCpuUs: cpuUs() - cpu0 };
  };
  const send = (c: Client, text: string, waitS: number, name = 'parley_send') => tool(c, name, { text, signal: 'OVER', wait_s: waitS });

  return {
    /** One room; a sample runs from the start of parley_send to the end of the partner's already-held parley_wait. */
    async mcpLatency(args: { warmup: number; samples: number; maxMs: number }): Promise<{ samplesMs: number[] }> {
      latencyRoom ??= await mcpPair(base);
      const { host, joiner } = latencyRoom;
      const samplesMs: number[] = [];
      const deadline = performance.now() + args.maxMs;
      let [from, to] = [host, joiner];
      let held = tool(to, 'parley_wait', { timeout_s: 30 });
      await new Promise((r) => setTimeout(r, 100));
      for (let i = 0; i < args.warmup + args.samples && performance.now() < deadline; i++) {
        const t0 = performance.now();
        const [, got] = await Promise.all([send(from, nextMessage(), 0), held]);
        const t1 = performance.now();
        messageOf(got);
        if (i >= args.warmup) samplesMs.push(t1 - t0);
        [from, to] = [to, from];
        held = tool(to, 'parley_wait', { timeout_s: 30 });
        await new Promise((r) => setImmediate(r));
      }
      await Promise.all([send(from, stopMessage(), 0), held]);
      return { samplesMs };
    },

    /** `rooms` pairs ping-pong for `durationMs`; each turn is one parley_send that waits for the answer. */
    async mcpThroughput(args: { rooms: number; durationMs: number }): Promise<{ messages: number; elapsedMs: number; clientCpuUs: number }> {
      while (rooms.length < args.rooms) rooms.push(await mcpPair(base));
      return timed(args.durationMs, (deadline, counted) => {
        const side = async (me: Client, opens: boolean) => {
          let r = opens ? await send(me, nextMessage(), 30) : await tool(me, 'parley_wait', { timeout_s: 30 });
          for (;;) {
            const got = messageOf(r);
            counted();
            if (got.includes(stop)) return;
            if (performance.now() >= deadline) return void (await send(me, stopMessage(), 0));
            r = await send(me, nextMessage(), 30);
          }
        };
        return rooms.slice(0, args.rooms).flatMap((r) => [side(r.host, true), side(r.joiner, false)]);
      });
    },

    /** Against mcp-floor.ts: `rooms` sessions, each calling the echo tool back to back; each call counts as one message. */
    async mcpFloorThroughput(args: { rooms: number; durationMs: number }): Promise<{ messages: number; elapsedMs: number; clientCpuUs: number }> {
      while (floorSessions.length < args.rooms) floorSessions.push(await session(base));
      return timed(args.durationMs, (deadline, counted) =>
        floorSessions.slice(0, args.rooms).map(async (c) => {
          while (performance.now() < deadline) {
            const text = nextMessage();
            if (messageOf(await send(c, text, 30, FLOOR_TOOL)) !== text) throw new Error('the floor server answered with another text');
            counted();
          }
        }),
      );
    },
  };
}
