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
  /** Dropped from this broker only (idle here): closing it must not end the session. */
  dropped?: boolean;
}

export function sessionTable(ctx: DoorContext, identities: SessionIdentities) {
  const { config, rooms, log } = ctx;
  const sessions = new Map<string, McpSession>();
  const perBucket = new Map<string, number>();
  const idleMs = config.mcpSessionIdleS * 1000;
  // With a shared backend other brokers may serve this session too: idle here is not idle everywhere.
  const shared = Boolean(config.stateUrl);
  const adoptions = new Map<string, Promise<McpSession>>();

  const forget = (s: McpSession) => {
    if (sessions.get(s.id) !== s) return false;
    sessions.delete(s.id);
    const n = (perBucket.get(s.bucket) ?? 1) - 1;
    if (n > 0) perBucket.set(s.bucket, n);
    else perBucket.delete(s.bucket);
    ctx.metrics.mcpSessions.set(sessions.size);
    return true;
  };

  /** The session is over (DELETE, or idle on every broker): its identity leaves its room. */
  const end = async (id: string): Promise<void> => {
    if (!id) return; // an initialize that failed: nothing was recorded
    const s = sessions.get(id);
    if (s?.dropped) return;
    if (s) forget(s);
    const token = await identities.end(id).catch(() => undefined);
    if (token) await rooms.leave(token).catch(() => undefined);
    await s?.server.close().catch(() => undefined);
    log.debug({ sessions: sessions.size }, 'mcp session ended');
  };

  /** Idle on this broker while others may serve it: only this broker's copy goes. */
  const drop = async (s: McpSession): Promise<void> => {
    s.dropped = true;
    if (forget(s)) await s.server.close().catch(() => undefined);
  };

  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const s of sessions.values()) if (s.busy === 0 && now - s.lastUsed > idleMs) void (shared ? drop(s) : end(s.id));
  }, Math.min(idleMs / 2, 30_000)).unref();

  /** A transport and its server; `initialized` for a session another broker began. */
  const create = (bucket: string, initialized?: string): McpSession => {
    const pending: McpSession = { id: initialized ?? '', bucket, transport: undefined!, server: undefined!, lastUsed: Date.now(), busy: 0, calls: new Map() };
    pending.transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      onsessioninitialized: async (id) => {
        pending.id = id;
        admit(pending);
        await identities.set(id, '');
      },
      onsessionclosed: (id) => end(id),
    });
    if (initialized) {
      // The SDK has no way to resume a session another process initialized; these two fields are its whole session state.
      const inner = (pending.transport as unknown as { _webStandardTransport: { sessionId?: string; _initialized: boolean } })._webStandardTransport;
      inner.sessionId = initialized;
      inner._initialized = true;
    }
    pending.transport.onclose = () => void end(pending.id);
    pending.server = mcpServer(ctx, { get id() { return pending.id; }, bucket, responseOf: (requestId) => pending.calls.get(requestId) }, identities);
    return pending;
  };

  const admit = (s: McpSession) => {
    sessions.set(s.id, s);
    perBucket.set(s.bucket, (perBucket.get(s.bucket) ?? 0) + 1);
    ctx.metrics.mcpSessions.set(sessions.size);
  };

  return {
    /** The session to serve this request with: this broker's copy, or (shared backend) one adopted from another broker. */
    async find(id: string, bucket: string): Promise<McpSession | undefined> {
      const local = sessions.get(id);
      if (!shared) return local;
      // The shared record says whether the session still lives (a DELETE on another broker ends it).
      if (!(await identities.known(id))) {
        const stale = sessions.get(id);
        if (stale) await drop(stale);
        return undefined;
      }
      const pending = adoptions.get(id);
      if (pending) return pending;
      const here = sessions.get(id);
      if (here) return here;
      // Two requests of one session may arrive here at once: one adoption.
      const adopted = create(bucket, id);
      admit(adopted);
      const adopting = adopted.server.connect(adopted.transport).then(() => adopted);
      adoptions.set(id, adopting);
      void adopting.finally(() => adoptions.delete(id)).catch(() => undefined);
      return adopting;
    },
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
      return create(bucket);
    },

    end,

    /** Shutting down: sessions end, unless other brokers go on serving them. */
    async closeAll(): Promise<void> {
      clearInterval(sweeper);
      await Promise.all([...sessions.values()].map((s) => (shared ? drop(s) : end(s.id))));
    },
  };
}

export type SessionTable = ReturnType<typeof sessionTable>;
