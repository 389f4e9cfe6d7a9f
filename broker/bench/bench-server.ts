/**
 * One relay under test in its own process (`parley`, `null`, or `mcp-floor`: see mcp-floor.ts),
 * so its sockets have their own open-file limit and its RSS and CPU time can be read alone. Talks to the bench over IPC:
 * sends {port} once listening, answers {cmd:'stats'} with memory (after a forced GC when
 * --expose-gc is on, unless args.gc is false), CPU time and open connections, and exits on {cmd:'exit'}.
 */
import { writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { Session } from 'node:inspector/promises';
import type { AddressInfo } from 'node:net';
import { startBroker } from '../src/server.js';
import { createMcpFloor } from './mcp-floor.js';
import { createNullRelay } from './null-relay.js';

export interface ServerStats {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  cpuUs: number;
  connections: number;
}

const kind = process.argv[2];
let server: Server;
let stop: () => Promise<void>;
if (kind === 'parley' || kind === 'parley-redis') {
  // parley-redis: the shared backend, on the Redis whose URL the bench passes.
  const shared = kind === 'parley-redis' ? { STATE_URL: process.argv[3], PARLEY_SECRET: 'bench-secret-of-at-least-32-characters!!' } : {};
  // WAIT_TIMEOUT_S: the idle rooms' polls are held through the whole idle phase (twins included).
  const broker = await startBroker({ env: { RATE_LIMITS: 'off', LOG_LEVEL: 'silent', HTTP_PORT: '0', HTTP_HOST: '127.0.0.1', WAIT_TIMEOUT_S: '300', ...shared } });
  server = broker.server;
  stop = () => broker.close();
} else if (kind === 'null' || kind === 'mcp-floor') {
  server = kind === 'null' ? createNullRelay() : createMcpFloor();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  stop = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
} else {
  throw new Error(`usage: bench-server.ts parley|parley-redis URL|null|mcp-floor (got ${kind})`);
}

const gc = (globalThis as { gc?: () => void }).gc;
const send = (m: unknown) => process.send!(m);

let inspector: Session | undefined;

process.on('message', async (m: { cmd: string; id: number; args?: { file?: string; gc?: boolean } }) => {
  if (m.cmd === 'stats') {
    if (gc && m.args?.gc !== false) for (let i = 0; i < 3; i++) gc(); // settle weak/finalizer chains before reading RSS
    const mem = process.memoryUsage();
    const cpu = process.cpuUsage();
    const connections = await new Promise<number>((resolve) => server.getConnections((_e, n) => resolve(n)));
    const stats: ServerStats = { rss: mem.rss, heapUsed: mem.heapUsed, heapTotal: mem.heapTotal, external: mem.external, cpuUs: cpu.user + cpu.system, connections };
    send({ id: m.id, result: stats });
  } else if (m.cmd === 'profileStart') {
    inspector = new Session();
    inspector.connect();
    await inspector.post('Profiler.enable');
    await inspector.post('Profiler.start');
    send({ id: m.id, result: true });
  } else if (m.cmd === 'profileStop' && inspector) {
    const { profile } = await inspector.post('Profiler.stop');
    writeFileSync(m.args!.file!, JSON.stringify(profile));
    inspector.disconnect();
    send({ id: m.id, result: m.args!.file });
  } else if (m.cmd === 'exit') {
    await stop();
    process.exit(0);
  }
});
// The bench going away must never leave a server behind.
process.on('disconnect', () => process.exit(0));
send({ port: (server.address() as AddressInfo).port });
