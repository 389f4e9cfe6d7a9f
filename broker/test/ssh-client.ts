/** A real SSH broker in front of a real HTTP broker, and a real ssh2 client session, for tests. */
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterEach, expect } from 'vitest';
import { startSshBroker, type RunningSshBroker } from '../src/ssh/server.js';

export const sshBrokers: RunningSshBroker[] = [];
afterEach(async () => {
  await Promise.all(sshBrokers.splice(0).map((s) => s.close()));
});

export async function sshBroker(brokerUrl: string, hostKeyDir = mkdtempSync(join(tmpdir(), 'parley-ssh-')), env: Record<string, string> = {}) {
  const s = await startSshBroker({
    env: { SSH_PORT: '0', SSH_HOST: '127.0.0.1', BROKER_URL: brokerUrl, SSH_HOST_KEY_PATH: join(hostKeyDir, 'host_key'), LOG_LEVEL: 'silent', PUBLIC_URL: 'https://parley.test', ...env },
  });
  sshBrokers.push(s);
  return s;
}

export interface SshSession {
  /** Everything the session wrote to stdout so far. */
  stdout(): string;
  stderr(): string;
  write(text: string): void;
  /** Close our input (EOF), as Ctrl-D or the end of a pipe does. */
  end(): void;
  /** Resolves once stdout matches (a pattern, or a test of the whole output); throws when it does not within the timeout. */
  waitFor(pattern: RegExp | ((out: string) => boolean), timeoutMs?: number): Promise<string>;
  /** The exit status the server sent. */
  exit: Promise<number | null>;
}

/**
 * One SSH session as a user: `command` undefined asks for a shell. `from` picks the local source
 * address; `pty` asks for a terminal, as `ssh -t` does.
 */
export function ssh(port: number, username: string, command?: string, from = '127.0.0.1', pty = false): Promise<SshSession> {
  return new Promise((resolve, reject) => {
    const conn = new ssh2.Client();
    let out = '';
    let err = '';
    const watchers: { test: (out: string) => boolean; resolve: (s: string) => void }[] = [];
    const check = () => {
      for (const w of watchers.splice(0)) (w.test(out) ? w.resolve(out) : watchers.push(w));
    };
    conn.on('error', reject);
    conn.on('ready', () => {
      const onChannel = (e: Error | undefined, ch: ssh2.ClientChannel) => {
        if (e) return reject(e);
        const exit = new Promise<number | null>((done) => {
          let code: number | null = null;
          ch.on('exit', (c: number | null) => (code = c));
          ch.on('close', () => {
            conn.end();
            done(code);
          });
        });
        ch.on('data', (d: Buffer) => {
          out += d.toString();
          check();
        });
        ch.stderr.on('data', (d: Buffer) => (err += d.toString()));
        resolve({
          stdout: () => out,
          stderr: () => err,
          write: (t) => ch.write(t),
          end: () => ch.end(),
          waitFor: (pattern, timeoutMs = 10_000) =>
            new Promise((res, rej) => {
              const timer = setTimeout(() => rej(new Error(`SSH output never matched ${pattern} within ${timeoutMs} ms; got ${JSON.stringify(out.slice(-300))}`)), timeoutMs);
              const test = typeof pattern === 'function' ? pattern : (o: string) => pattern.test(o);
              watchers.push({ test, resolve: (s) => (clearTimeout(timer), res(s)) });
              check();
            }),
          exit,
        });
      };
      const ptyOpts = pty ? { term: 'xterm', rows: 24, cols: 80 } : false;
      if (command === undefined) conn.shell(ptyOpts, onChannel);
      else conn.exec(command, { pty: ptyOpts }, onChannel);
    });
    conn.connect({ sock: connect({ host: '127.0.0.1', port, localAddress: from }), username, hostVerifier: () => true });
  });
}

/** Registers over SSH as `new`; the printed token. */
export async function register(port: number, from?: string): Promise<string> {
  const s = await ssh(port, 'new', undefined, from);
  expect(await s.exit).toBe(0);
  return /Your Parley token: (tok_[0-9a-f]{32})/.exec(s.stdout())![1];
}
