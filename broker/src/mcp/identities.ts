/**
 * Where an MCP session keeps its Parley identity (a token). The token lives only on the server:
 * never in a tool argument or a tool result, so a model cannot leak it or be talked out of it.
 * It is kept in the state backend's session store, so with several brokers on one Redis any of
 * them can serve the session's next request (sealed there, never in clear).
 *
 * A record exists from the session's initialize to its end: '' until the session starts or joins
 * a room, then its token. Every use pushes its expiry back; it outlives MCP_SESSION_IDLE_S, after
 * which a broker that holds the session idle ends it (one process) or lets it go (shared backend).
 */
import type { SessionStore } from '../backend/ports.js';
import { refuse } from '../engine/errors.js';

export interface SessionIdentities {
  /** Whether the session was initialized (by this broker or another) and has not ended. */
  known(sessionId: string): Promise<boolean>;
  /** The session's token, if it is in a room's identity. */
  get(sessionId: string): Promise<string | undefined>;
  set(sessionId: string, token: string): Promise<void>;
  /** Forgets the session's token (the session goes on) and returns it. */
  take(sessionId: string): Promise<string | undefined>;
  /** Ends the session's record and returns its token (to leave its room). */
  end(sessionId: string): Promise<string | undefined>;
}

export function sessionIdentities(store: SessionStore, sessionIdleMs: number): SessionIdentities {
  const key = (id: string) => `mcp:${id}`;
  const idleMs = 2 * sessionIdleMs + 60_000;
  // A store that cannot answer (Redis away) refuses clearly, like every other request then.
  const guarded = async <T>(f: () => T | Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch {
      throw refuse('state_unavailable');
    }
  };
  return {
    known: async (id) => (await guarded(() => store.get(key(id), idleMs))) !== undefined,
    get: async (id) => (await guarded(() => store.get(key(id), idleMs))) || undefined,
    set: (id, token) => guarded(() => store.set(key(id), token, idleMs)),
    async take(id) {
      const token = await this.get(id);
      await guarded(() => store.set(key(id), '', idleMs));
      return token;
    },
    end: async (id) => (await guarded(() => store.delete(key(id)))) || undefined,
  };
}
