/**
 * Where an MCP session keeps its Parley identity (a token). The token lives only on the server:
 * never in a tool argument or a tool result, so a model cannot leak it or be talked out of it.
 * Behind this one small interface so a shared backend (Redis…) can hold it later and any broker
 * process can serve the session.
 */
export interface SessionIdentities {
  get(sessionId: string): Promise<string | undefined>;
  set(sessionId: string, token: string): Promise<void>;
  /** Forgets the session's token and returns it (to leave its room). */
  take(sessionId: string): Promise<string | undefined>;
}

export function memoryIdentities(): SessionIdentities {
  const tokens = new Map<string, string>();
  return {
    get: async (id) => tokens.get(id),
    set: async (id, token) => void tokens.set(id, token),
    take: async (id) => {
      const t = tokens.get(id);
      tokens.delete(id);
      return t;
    },
  };
}
