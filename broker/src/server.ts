/**
 * Wires config, state backend, engine and front doors into one listening broker.
 * Tests, the benchmark and the loop evaluation start real brokers through startBroker().
 */
import { createServer, type Server } from 'node:http';
import { Server as NetServer, type AddressInfo } from 'node:net';
import type { DestinationStream } from 'pino';
import { memoryBackend } from './backend/memory/index.js';
import { redisBackend } from './backend/redis/index.js';
import type { Store } from './backend/memory/sql-store.js';
import { loadConfig } from './config.js';
import { consoleDoor } from './console/door.js';
import { closingResponses, dispatch, doorContext, type Door } from './doors.js';
import { Engine } from './engine/engine.js';
import { refusingWhenUnavailable } from './engine/unavailable.js';
import { a2aDoor } from './a2a/door.js';
import { apiDoor } from './http/api.js';
import { capConnections } from './http/connection-caps.js';
import { opsDoor } from './http/ops.js';
import { jsonText } from './http/status.js';
import { waitDoor } from './http/wait.js';
import { createLogger } from './log.js';
import { mcpDoor } from './mcp/door.js';
import { createMetrics } from './metrics.js';
import { tlsWarning, usesLocalCa } from './settings.js';

/** How long a drain keeps idle kept-alive connections open for requests already on their way. */
const DRAIN_IDLE_GRACE_MS = 1000;

export interface RunningBroker {
  url: string;
  port: number;
  server: Server;
  engine: Engine;
  /** The memory backend's sql.js store (tests read its bytes); absent on a shared backend. */
  store: Store | undefined;
  /** Stop at once (tests). */
  close(): Promise<void>;
  /** SIGTERM: refuse new work, answer waiters with the restarting event, let responses finish, then stop. */
  drain(): Promise<void>;
}

export async function startBroker(opts: { env?: Record<string, string | undefined>; logStream?: DestinationStream } = {}): Promise<RunningBroker> {
  const env = { ...process.env, ...opts.env };
  const config = loadConfig(env);
  const log = createLogger(config.logLevel, opts.logStream);
  const memory = config.stateUrl ? undefined : await memoryBackend({ secret: config.secret || undefined });
  const backend = memory ?? (await redisBackend({ url: config.stateUrl, secret: config.secret }));
  let engine: Engine | undefined;
  const metrics = createMetrics(() => engine?.stats().rooms ?? 0);
  engine = new Engine(backend, config, metrics);
  const rooms = memory ? engine : refusingWhenUnavailable(engine, backend);
  const ctx = doorContext(rooms, config, metrics, log, backend.sessions, backend.rateLimitStore);
  // Order matters: the first door that claims a path serves it; the API door takes the rest.
  const doors: Door[] = [opsDoor(ctx, async () => backend.ready()), waitDoor(ctx), a2aDoor(ctx), mcpDoor(ctx), consoleDoor(ctx), apiDoor(ctx)];
  const server = createServer({ ServerResponse: closingResponses(() => rooms.draining) });
  server.on('request', capConnections(server, ctx, dispatch(doors)));
  // Node's own parser refusals (malformed request, headers too large) get the same JSON shape.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return socket.destroy();
    const [status, code, error] = err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'headers_too_large', 'Request headers too large'] : [400, 'bad_request', 'Bad request'];
    const body = jsonText({ error, code });
    socket.end(`HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : 'Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  });
  // Longer than any proxy's idle keep-alive, so a reused connection is never cut under a request.
  server.keepAliveTimeout = 75_000;
  server.headersTimeout = 80_000;
  server.requestTimeout = (config.waitTimeoutS + 30) * 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.httpPort, config.httpHost, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = config.httpHost === '0.0.0.0' ? '127.0.0.1' : config.httpHost.includes(':') ? `[${config.httpHost}]` : config.httpHost;
  // What to try first: PUBLIC_URL, or this very port when it was picked at start.
  const url = config.publicUrl || `http://localhost:${port}`;
  const cacert = usesLocalCa(url, config.tls) ? '--cacert parley-root.crt ' : '';
  log.info({ port, url, rateLimits: config.rateLimits, backend: backend.name }, `broker listening on ${url}; try: curl -s ${cacert}${url}/health`);
  const tlsProblem = tlsWarning(config.publicUrl, config.tls);
  if (tlsProblem) log.warn(tlsProblem);

  const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));
  const closeDoors = () => Promise.all(doors.map((d) => d.close?.()));
  const close = async () => {
    engine!.close();
    await closeDoors();
    server.close();
    server.closeAllConnections();
    await closed;
  };
  const drain = async () => {
    log.info('draining');
    await engine!.drain();
    await Promise.all(doors.map((d) => d.drain?.()));
    // Stop taking connections, but not yet the kept-alive ones: http.Server#close would close the
    // idle ones at once, resetting a request already on its way on one of them. For a moment each
    // gets its answer instead (503 draining, or the held wait's notice) with `Connection: close`.
    NetServer.prototype.close.call(server);
    const deadline = setTimeout(() => server.closeAllConnections(), config.drainTimeoutS * 1000);
    await Promise.race([closed, new Promise((r) => setTimeout(r, Math.min(DRAIN_IDLE_GRACE_MS, config.drainTimeoutS * 1000)))]);
    server.close(); // what stayed idle all along
    await closed;
    clearTimeout(deadline);
    engine!.close();
    await closeDoors();
    log.info('drained');
  };
  return { url: `http://${host}:${port}`, port, server, engine, store: memory?.store, close, drain };
}
