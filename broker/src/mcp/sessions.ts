/**
 * The MCP sessions this process serves: a bounded table (a cap in all, a cap per address bucket)
 * with idle expiry. Each session is one Parley participant; when a session ends (DELETE, idle
 * expiry, shutdown) its participant leaves the room and its token is forgotten.
 */
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { DoorContext } from '../doors.js';
import { refuse } from '../engine/errors.js';
import type { SessionIdentities } from './identities.js';
import { mcpServer } from './tools.js';

/** Sessions one address bucket may hold at once (with RATE_LIMITS on), so one address cannot fill the table. */
export const SESSIONS_PER_ADDRESS = 20;

export interface McpSession {
  id: string;
  bucket: string;
  transport: StreamableHTTPServerTransport;
  server: McpServer;
  lastUsed: number;
  /** Requests being served: a session holding a wait is never idle. */
  busy: number;
  /** The HTTP response each JSON-RPC request in flight will be answered on. */
  calls: Map<string | number, ServerResponse>;
}

export function sessionTable(ctx: DoorContext, identities: SessionIdentities) {
  const { config, rooms, log } = ctx;
  const sessions = new Map<string, McpSession>();
  const perBucket = new Map<string, number>();
  const idleMs = config.mcpSessionIdleS * 1000;

  const end = async (id: string): Promise<void> => {
    const s = sessions.get(id);
    if (!s) return;
    sessions.delete(id);
    const n = (perBucket.get(s.bucket) ?? 1) - 1;
    if (n > 0) perBucket.set(s.bucket, n);
    else perBucket.delete(s.bucket);
    ctx.metrics.mcpSessions.set(sessions.size);
    const token = await identities.take(id);
    if (token) await rooms.leave(token).catch(() => undefined);
    await s.server.close().catch(() => undefined);
    log.debug({ sessions: sessions.size }, 'mcp session ended');
  };

  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const s of sessions.values()) if (s.busy === 0 && now - s.lastUsed > idleMs) void end(s.id);
  }, Math.min(idleMs / 2, 30_000)).unref();

  return {
    get: (id: string) => sessions.get(id),
    get size() {
      return sessions.size;
    },

    /**
     * A transport and server for a request that has no session yet. The session enters the table
     * only once the client's initialize succeeds; the caller closes it if that never happens.
     */
    open(bucket: string): McpSession {
      if (sessions.size >= config.mcpMaxSessions) throw refuse('too_many_sessions', undefined, 30);
      if (config.rateLimits && (perBucket.get(bucket) ?? 0) >= SESSIONS_PER_ADDRESS) {
        throw refuse('too_many_connections', `Too many MCP sessions from your address (at most ${SESSIONS_PER_ADDRESS}): end one first`);
      }
      const pending: McpSession = { id: '', bucket, transport: undefined!, server: undefined!, lastUsed: Date.now(), busy: 0, calls: new Map() };
      pending.transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: randomUUID,
        onsessioninitialized: (id) => {
          pending.id = id;
          sessions.set(id, pending);
          perBucket.set(bucket, (perBucket.get(bucket) ?? 0) + 1);
          ctx.metrics.mcpSessions.set(sessions.size);
        },
        onsessionclosed: (id) => end(id),
      });
      pending.transport.onclose = () => void end(pending.id);
      pending.server = mcpServer(ctx, { get id() { return pending.id; }, bucket, responseOf: (requestId) => pending.calls.get(requestId) }, identities);
      return pending;
    },

    end,

    async closeAll(): Promise<void> {
      clearInterval(sweeper);
      await Promise.all([...sessions.keys()].map(end));
    },
  };
}

export type SessionTable = ReturnType<typeof sessionTable>;
