/**
 * A real Redis for tests: Debian's redis-server on a free loopback port, no persistence, stopped
 * after the file's tests. (`.ci/run` installs redis-server when it is missing.)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll } from 'vitest';

export interface TestRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** SIGKILL and start again on the same port: everything in it is lost, as in a crash. */
  restart(): Promise<void>;
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });

function launch(port: number): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 10_000);
    child.stdout!.on('data', (d) => {
      out += d;
      if (/Ready to accept connections/.test(out)) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.stderr!.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', () => reject(new Error(`redis-server exited: ${out}`)));
  });
}

export async function testRedis(): Promise<TestRedis> {
  const port = await freePort();
  let child = await launch(port);
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  };
  const r: TestRedis = {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop,
    async restart() {
      await stop();
      child = await launch(port);
    },
  };
  afterAll(stop);
  return r;
}

export const SECRET = 'test-secret-of-at-least-thirty-two-characters';

/** Every key and value in Redis, as text (to show what it holds, and what it never holds). */
export async function redisText(url: string): Promise<string> {
  const r = new Redis(url);
  try {
    const parts: string[] = [];
    for (const key of await r.keys('*')) {
      parts.push(key);
      const type = await r.type(key);
      if (type === 'string') parts.push((await r.get(key)) ?? '');
      else if (type === 'hash') parts.push(JSON.stringify(await r.hgetall(key)));
      else if (type === 'list') parts.push(...(await r.lrange(key, 0, -1)));
      else if (type === 'zset') parts.push(...(await r.zrange(key, 0, -1)));
      else if (type === 'set') parts.push(...(await r.smembers(key)));
    }
    return parts.join('\n');
  } finally {
    r.disconnect();
  }
}
