/** The broker as a real process: config validation, SIGTERM drain, and nothing surviving a restart. */
import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'node:net';
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

/**
 * One kept-alive connection sending requests back to back, each as soon as the last answer is in,
 * until an answer says `Connection: close` or the broker closes the connection. Every request
 * written gets an entry: its raw response, or null if the connection ended without one.
 */
async function keptAlive(url: string, request: (n: number) => string, started: () => void): Promise<(string | null)[]> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  socket.on('error', () => {}); // a reset shows as a missing answer
  let ended = false;
  socket.on('end', () => (ended = true));
  let buffered = '';
  const answers: (string | null)[] = [];
  const next = () =>
    new Promise<string | null>((resolve) => {
      const onData = (d: Buffer) => {
        buffered += d.toString('latin1');
        const head = buffered.indexOf('\r\n\r\n');
        if (head < 0) return;
        const length = head + 4 + Number(/^content-length: *(\d+)/im.exec(buffered.slice(0, head))?.[1] ?? 0);
        if (buffered.length < length) return;
        done(buffered.slice(0, length));
        buffered = buffered.slice(length);
      };
      const done = (r: string | null) => {
        socket.off('data', onData).off('close', onClose);
        resolve(r);
      };
      const onClose = () => done(null);
      socket.on('data', onData).once('close', onClose);
    });
  await new Promise((r) => socket.once('connect', r));
  for (let n = 0; !ended && !socket.destroyed; n++) {
    const answer = next();
    socket.write(request(n));
    answers.push(await answer);
    if (n === 0) started();
    if (answers.at(-1) === null || /^connection: *close/im.test(answers.at(-1)!)) break;
  }
  socket.destroy();
  return answers;
}

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

  it('on SIGTERM every request already on its way on a kept-alive connection gets an answer: 503 draining with Connection: close, not a reset', async () => {
    const p = run({ QUEUE_MAX_MESSAGES: '100000' });
    try {
      const url = await p.url;
      const { host } = await client(url).pair();
      const send = (loop: number) => (n: number) => {
        const body = `shard ${loop}-${n}: block ${(loop * 7919 + n * 2654435761) % 4294967296} [OVER]`;
        return `POST /send HTTP/1.1\r\nhost: parley\r\nauthorization: Bearer ${host}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
      };
      // 20 connections, each sending back to back; SIGTERM once every one of them has had an answer.
      let live = 0;
      let allLive!: () => void;
      const running = new Promise<void>((r) => (allLive = r));
      const loops = Array.from({ length: 20 }, (_, i) => keptAlive(url, send(i), () => ++live === 20 && allLive()));
      await running;
      p.child.kill('SIGTERM');
      const answers = (await Promise.all(loops)).flat();
      expect(answers.filter((a) => a === null)).toHaveLength(0); // no request reset or left unanswered
      const statuses = answers.map((a) => /^HTTP\/1\.1 (\d+)/.exec(a!)?.[1]);
      expect(new Set(statuses)).toEqual(new Set(['200', '503']));
      const refused = answers.filter((a) => a!.startsWith('HTTP/1.1 503'));
      for (const a of refused) {
        expect(a).toMatch(/^connection: *close\r$/im);
        expect(JSON.parse(a!.slice(a!.indexOf('\r\n\r\n') + 4))).toEqual({ error: expect.any(String), code: 'draining' });
      }
      expect(await p.exited).toBe(0);
    } finally {
      stop(p.child);
    }
  }, 120_000); // a bound for a busy machine (a process start, 20 connections), not a timed assertion

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
