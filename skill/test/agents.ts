/**
 * Test harness for the skill: a live broker per test and "agents", each with its own temp
 * HOME and XDG_STATE_HOME, running the real bash scripts (and supervisor) as child processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';
import { startBroker } from '../../broker/src/server.js';

/** The bound for a test that runs many scripts in a row: each spawns bash, curl and sed, slow on a busy machine. */
export const MANY_STEPS = 90_000;

export const SKILL = fileURLToPath(new URL('..', import.meta.url));
export const SCRIPTS = join(SKILL, 'scripts');

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
export const onCleanup = (f: () => Promise<void> | void) => cleanups.push(f);

export async function liveBroker(env: Record<string, string> = {}) {
  const b = await startBroker({ env: { HTTP_PORT: '0', HTTP_HOST: '127.0.0.1', RATE_LIMITS: 'off', LOG_LEVEL: 'silent', ...env } });
  onCleanup(() => b.close());
  return b;
}

export interface Result {
  code: number;
  out: string;
  err: string;
  /** First stdout line: the machine-readable verdict. */
  first: string;
}

export interface Running {
  child: ChildProcess;
  result: Promise<Result>;
  stdout(): string;
  stderr(): string;
}

export function agent(url: string, name: string, extraEnv: Record<string, string> = {}) {
  const home = mkdtempSync(join(tmpdir(), `parley-${name}-`));
  onCleanup(() => rmSync(home, { recursive: true, force: true }));
  // A clean environment: no runtime markers (CLAUDECODE, GEMINI_CLI) leaking in from the host.
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: join(home, 'state'), LANG: 'C.UTF-8', PARLEY_URL: url, ...extraEnv };

  const start = (cmd: string, args: string[], input?: string, more: Record<string, string> = {}): Running => {
    const child = spawn(cmd, args, { env: { ...env, ...more }, cwd: home, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d) => (err += d));
    child.stdin!.on('error', () => {});
    child.stdin!.end(input ?? '');
    onCleanup(() => void child.kill('SIGKILL'));
    const result = new Promise<Result>((resolve) =>
      child.on('close', (code) => resolve({ code: code ?? -1, out, err, first: out.split('\n')[0] })),
    );
    return { child, result, stdout: () => out, stderr: () => err };
  };

  const a = {
    home,
    env,
    /** Starts a script without waiting for it. */
    start: (script: string, args: string[] = [], input?: string, more?: Record<string, string>) => start('bash', [join(SCRIPTS, script), ...args], input, more),
    /** Runs a script to completion (`more`: extra environment for this call only). */
    run: (script: string, args: string[] = [], input?: string, more?: Record<string, string>) => a.start(script, args, input, more).result,
    /** Runs send.sh or loop.sh with a message, the one documented way: `-` and the text on stdin. */
    say: (script: 'send.sh' | 'loop.sh', text: string, args: string[] = []) => a.run(script, ['-', ...args], text),
    /** Runs a command line through bash, as an agent's shell tool does. */
    shell: (command: string) => start('bash', ['-c', command]).result,
    supervisor: (args: string[]) => start(process.execPath, [join(SKILL, 'supervisor'), ...args]),
    stateDir: (session = 'default') => join(home, 'state', 'parley', session),
    /** The session's token, read from its header file (only the test ever does this). */
    token: (session = 'default') => /tok_[0-9a-f]+/.exec(readFileSync(join(a.stateDir(session), 'auth'), 'utf8'))![0],
  };
  return a;
}

export type Agent = ReturnType<typeof agent>;

/** Host opens a room, joiner joins, host reads the join notice: a live pair. */
export async function pair(url: string) {
  const host = agent(url, 'host');
  const joiner = agent(url, 'joiner');
  const opened = await host.run('host.sh');
  const code = /^INVITE_CODE: (invite_[0-9a-f]{32})$/m.exec(opened.out)![1];
  const joined = await joiner.run('join.sh', [code]);
  if (joined.code !== 0) throw new Error(joined.out);
  const notice = await host.run('wait.sh', ['--slice', '2']);
  if (notice.first !== 'PARTNER_JOINED') throw new Error(notice.out);
  return { host, joiner };
}

/** The partner's text from a MESSAGE event: the frame's "│ "-prefixed lines. */
export function messageText(out: string): string {
  const lines = out.split('\n');
  return lines
    .slice(4, lines.lastIndexOf('└────'))
    .map((l) => l.replace(/^│ ?/, ''))
    .join('\n');
}

/** Resolves once `check` holds, polling; the test's own timeout bounds it. */
export async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, 25));
}

/** Every running process's command line (to look for a token, or a wait left running). */
export const argvs = () =>
  readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ');
      } catch {
        return ''; // the process ended meanwhile
      }
    });
