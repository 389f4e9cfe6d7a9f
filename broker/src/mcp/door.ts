/**
 * The MCP door: Streamable HTTP at /mcp (the SDK's McpServer and transport), so MCP agents share
 * rooms with curl, SSH and human participants. Before the SDK sees a request, this door checks
 * Host and Origin against the broker's public address (DNS-rebinding protection; loopback names
 * always pass, for local use), applies the per-address limits, and finds the session: an unknown
 * session id gets the spec's 404, so the client starts a new session.
 *
 * No OAuth is advertised: nothing here answers 401 or WWW-Authenticate, which would send clients
 * into an OAuth flow. Refusals are JSON-RPC error objects, as the SDK's own are, with the
 * catalogue code in `error.data.code`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import getRawBody from 'raw-body';
import type { Door, DoorContext } from '../doors.js';
import { refuse } from '../engine/errors.js';
import { errorReply } from '../http/status.js';
import { sessionIdentities } from './identities.js';
import { sessionTable, type McpSession } from './sessions.js';

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** The broker's external base URL (PUBLIC_URL), when one is set. */
export function publicUrl(ctx: DoorContext): URL | undefined {
  // Validated at start (settings.ts): an absolute http(s) origin, or '' when unset.
  return ctx.config.publicUrl ? new URL(ctx.config.publicUrl) : undefined;
}

/** Host is this broker's public host or a loopback name; Origin, when a browser sends one, likewise. */
export function allowedHostAndOrigin(req: IncomingMessage, pub: URL | undefined): boolean {
  const host = (req.headers.host ?? '').toLowerCase();
  const hostname = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0];
  if (!LOOPBACK.has(hostname) && host !== pub?.host) return false;
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    const o = new URL(origin);
    return LOOPBACK.has(o.hostname) || o.origin === pub?.origin;
  } catch {
    return false;
  }
}

/** The ids of the JSON-RPC requests (not notifications or responses) in a message or batch. */
function requestIds(body: unknown): (string | number)[] {
  const ids: (string | number)[] = [];
  for (const m of Array.isArray(body) ? body : [body]) {
    const { id, method } = (m ?? {}) as { id?: unknown; method?: unknown };
    if (typeof method === 'string' && (typeof id === 'string' || typeof id === 'number')) ids.push(id);
  }
  return ids;
}

export function mcpDoor(ctx: DoorContext): Door {
  const { rooms, limits, log, metrics, config } = ctx;
  const table = sessionTable(ctx, sessionIdentities(ctx.sessions, config.mcpSessionIdleS * 1000));
  const pub = publicUrl(ctx);

  const refuseWith = (res: ServerResponse, e: unknown, headers: Record<string, string> = {}) => {
    const r = errorReply(e, log);
    if (r.retryAfterS) headers['retry-after'] = String(r.retryAfterS);
    const body = JSON.stringify({
      jsonrpc: '2.0',
      error: { code: r.body.code === 'session_not_found' ? -32001 : -32000, message: r.body.error, data: { code: r.body.code } },
      id: null,
    });
    res.writeHead(r.status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers });
    res.end(body);
  };

  /**
   * Hands the request to the session's transport; the session counts as busy until the response
   * closes. The body is read here so each JSON-RPC request's HTTP response is known to the tools:
   * a wait whose client went away ends, and its event is handed out again.
   */
  const serve = async (s: McpSession, req: IncomingMessage, res: ServerResponse) => {
    const body = req.method === 'POST' ? await jsonBody(req) : undefined;
    const ids = requestIds(body);
    for (const id of ids) s.calls.set(id, res);
    s.busy += 1;
    s.lastUsed = Date.now();
    res.once('close', () => {
      for (const id of ids) if (s.calls.get(id) === res) s.calls.delete(id);
      s.busy -= 1;
      s.lastUsed = Date.now();
    });
    await s.transport.handleRequest(req, res, body);
  };

  const jsonBody = async (req: IncomingMessage): Promise<unknown> => {
    const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    if (encoding !== 'identity') throw refuse('unsupported_media_type');
    // A message of MAX_BODY_BYTES, with room for JSON escaping and the envelope.
    const text = await getRawBody(req, { limit: 2 * config.maxBodyBytes + 64 * 1024, encoding: 'utf8' });
    try {
      return JSON.parse(text);
    } catch {
      throw refuse('bad_request', 'Body must be a JSON-RPC message');
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    res.once('finish', () => {
      metrics.response('/mcp', res.statusCode);
      log.debug({ method: req.method, route: '/mcp', status: res.statusCode }, 'request');
    });
    try {
      if (!allowedHostAndOrigin(req, pub)) throw refuse('forbidden_origin');
      // No server-initiated stream (GET): progress and results travel on each call's own response.
      if (req.method !== 'POST' && req.method !== 'DELETE') return refuseWith(res, refuse('method_not_allowed'), { allow: 'POST, DELETE' });
      const bucket = ctx.bucket(req);
      const header = req.headers['mcp-session-id'];
      const sessionId = Array.isArray(header) ? header[0] : header;
      if (sessionId) {
        await limits.checkAuth(bucket);
        const s = await table.find(sessionId, bucket);
        if (!s) {
          await limits.authFailed(bucket);
          throw refuse('session_not_found');
        }
        return await serve(s, req, res);
      }
      if (req.method !== 'POST') throw refuse('bad_request', 'Mcp-Session-Id header is required');
      if (rooms.draining) throw refuse('draining', undefined, 5);
      await limits.check('anon', () => bucket);
      const s = table.open(bucket);
      await s.server.connect(s.transport);
      try {
        await serve(s, req, res);
      } finally {
        // Anything but a successful initialize leaves nothing behind.
        if (!s.transport.sessionId) await s.server.close();
      }
    } catch (e) {
      if (!res.headersSent && !res.destroyed) refuseWith(res, e);
    }
  };

  return {
    name: 'mcp',
    claims: (path) => path === '/mcp',
    handle,
    close: () => table.closeAll(),
  };
}
