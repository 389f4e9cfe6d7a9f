/**
 * Wires config, store, engine and the HTTP adapter into one listening broker.
 * Tests, the benchmark and the loop evaluation start real brokers through startBroker().
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DestinationStream } from 'pino';
import { loadConfig } from './config.js';
import { Engine } from './engine.js';
import { httpHandler } from './http/app.js';
import { createLogger } from './log.js';
import { createMetrics } from './metrics.js';
import { Store } from './store.js';

export interface RunningBroker {
  url: string;
  port: number;
  server: Server;
  engine: Engine;
  store: Store;
  /** Stop at once (tests). */
  close(): Promise<void>;
  /** SIGTERM: refuse new work, answer waiters with the draining notice, let responses finish, then stop. */
  drain(): Promise<void>;
}

export async function startBroker(opts: { env?: Record<string, string | undefined>; logStream?: DestinationStream } = {}): Promise<RunningBroker> {
  const config = loadConfig({ ...process.env, ...opts.env });
  const log = createLogger(config.logLevel, opts.logStream);
  const store = await Store.open();
  let engine: Engine | undefined;
  const metrics = createMetrics(() => engine?.stats().rooms ?? 0);
  engine = new Engine(store, config, metrics);
  const server = createServer(httpHandler({ engine, store, config, metrics, log }));
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
  log.info({ port, rateLimits: config.rateLimits }, 'broker listening');

  const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));
  const close = async () => {
    engine!.close();
    server.close();
    server.closeAllConnections();
    await closed;
  };
  const drain = async () => {
    log.info('draining');
    engine!.drain();
    server.close();
    server.closeIdleConnections();
    const deadline = setTimeout(() => server.closeAllConnections(), config.drainTimeoutS * 1000);
    await closed;
    clearTimeout(deadline);
    engine!.close();
    log.info('drained');
  };
  return { url: `http://${host}:${port}`, port, server, engine, store, close, drain };
}
