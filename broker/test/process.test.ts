/** The broker as a real process: config validation, SIGTERM drain, and nothing surviving a restart. */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { client, eventually } from './helpers.js';

const MAIN = new URL('../src/main.ts', import.meta.url).pathname;

function run(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: { ...process.env, HTTP_PORT: '0', HTTP_HOST: '127.0.0.1', RATE_LIMITS: 'off', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      stdout.push(line);
      const port = /"port":(\d+)/.exec(line)?.[1];
      if (port) resolve(`http://127.0.0.1:${port}`);
    });
    exited.then(() => reject(new Error(`exited: ${stderr}`)));
  });
  url.catch(() => undefined); // a refused start is asserted through `exited`
  return { child, url, exited, stdout, stderr: () => stderr };
}

const stop = (c: ChildProcess) => c.exitCode === null && c.kill('SIGKILL');

describe('broker process', () => {
  it.each([
    [{ HTTP_PORT: 'abc' }, /^parley: HTTP_PORT must be a whole number, got "abc"\n$/],
    [{ RATE_LIMITS: 'maybe' }, /^parley: RATE_LIMITS must be "on" or "off"/],
    [{ TRUSTED_PROXIES: '10.0.0.0/99' }, /^parley: TRUSTED_PROXIES must be a comma-separated list/],
    [{ TRUSTED_PROXIES: '10.0.0.0/8,0.0.0.0/0' }, /^parley: TRUSTED_PROXIES entry "0.0.0.0\/0" is not accepted/],
    [{ WAIT_TIMEOUT_S: '0' }, /^parley: WAIT_TIMEOUT_S must be between 1 and 3600, got 0\n$/],
    [{ PUBLIC_URL: 'https://parley.lan/api' }, /^parley: PUBLIC_URL must be a scheme, host and port only \(no path, query or user\), got "https:\/\/parley.lan\/api"\n$/],
    [{ PARLEY_TLS: 'acme' }, /^parley: PARLEY_TLS must be one of auto, internal, got "acme"\n$/],
  ])('refuses a bad setting %o with one line on stderr and exit 1', async (env, message) => {
    const p = run(env as Record<string, string>);
    expect(await p.exited).toBe(1);
    expect(p.stderr()).toMatch(message);
    expect(p.stderr().trim().split('\n')).toHaveLength(1);
  });

  it('on SIGTERM answers held waits with the draining notice, then exits 0', async () => {
    const p = run({});
    try {
      const api = client(await p.url);
      const { host, joiner } = await api.pair();
      const held = [api.wait(host, 60), api.wait(joiner, 60)];
      for (let i = 0; i < 50 && (await api.ping(host)).json.partner_last_seen_ms !== 0; i++) await new Promise((r) => setTimeout(r, 50));
      p.child.kill('SIGTERM');
      for (const r of await Promise.all(held)) expect(r.text).toMatch(/^MESSAGE_RECEIVED\n\[SYSTEM\]: The broker is restarting/);
      expect(await p.exited).toBe(0);
      expect(p.stdout.some((l) => l.includes('"msg":"drained"'))).toBe(true);
    } finally {
      stop(p.child);
    }
  });

  it('on SIGTERM a sender holding a wait hears how many of its messages were never read', async () => {
    const p = run({});
    try {
      const api = client(await p.url);
      const { host } = await api.pair();
      await api.send(host, 'first finding: the index is missing [OVER]');
      await api.send(host, 'second finding: the cache is cold [OVER]');
      const held = api.wait(host, 60);
      await eventually(() => api.ping(host), (r) => r.json.room_alive, 'the room');
      await new Promise((r) => setTimeout(r, 200));
      p.child.kill('SIGTERM');
      expect((await held).text).toMatch(/The broker is restarting\. .* 2 messages you sent had not been read and will not arrive\.$/);
      expect(await p.exited).toBe(0);
    } finally {
      stop(p.child);
    }
  });

  it('keeps nothing across a restart: old tokens get 401 and rooms are gone, even with the same hashing key', async () => {
    // The same PARLEY_SECRET both times: the token hashes alike, so a 401 means nothing was kept (not that the key rotated).
    const secret = { PARLEY_SECRET: 'same-secret-for-both-runs-of-the-broker-0123' };
    const first = run(secret);
    let token: string;
    try {
      const api = client(await first.url);
      token = (await api.pair()).host;
      expect((await api.ping(token)).json.room_alive).toBe(true);
      first.child.kill('SIGTERM');
      await first.exited;
    } finally {
      stop(first.child);
    }
    const second = run(secret);
    try {
      const api = client(await second.url);
      expect((await api.ping(token)).status).toBe(401);
      expect((await api.wait(token, 1)).status).toBe(401);
    } finally {
      stop(second.child);
    }
  });
});
