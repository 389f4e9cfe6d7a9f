/** Test helpers: a real broker on a free port and a tiny client speaking its wire contract. */
import { afterEach } from 'vitest';
import { startBroker, type RunningBroker } from '../src/server.js';

const running: RunningBroker[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((b) => b.close()));
});

export async function broker(env: Record<string, string> = {}, logs?: string[]): Promise<RunningBroker> {
  const b = await startBroker({
    env: { HTTP_PORT: '0', HTTP_HOST: '127.0.0.1', RATE_LIMITS: 'off', LOG_LEVEL: logs ? 'debug' : 'silent', ...env },
    logStream: logs ? { write: (s: string) => void logs.push(s) } : undefined,
  });
  running.push(b);
  return b;
}

export interface Reply {
  status: number;
  text: string;
  json: any;
  headers: Headers;
}

export function client(base: string) {
  const call = async (method: string, path: string, opts: { token?: string; body?: string; type?: string; headers?: Record<string, string> } = {}): Promise<Reply> => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.body !== undefined) headers['content-type'] = opts.type ?? 'text/plain';
    const res = await fetch(base + path, { method, headers, body: opts.body });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, text, json, headers: res.headers };
  };
  const api = {
    call,
    register: () => call('POST', '/register'),
    setup: (body: object = { type: 'standard' }) => call('POST', '/setup', { body: JSON.stringify(body), type: 'application/json' }),
    join: (token: string, code: string) => call('POST', `/join/${code}`, { token }),
    registerAndJoin: (code: string) => call('POST', `/register-and-join/${code}`),
    send: (token: string, text: string) => call('POST', '/send', { token, body: text }),
    wait: (token: string, timeout?: number) => call('GET', `/wait${timeout ? `?timeout=${timeout}` : ''}`, { token }),
    ping: (token: string) => call('GET', '/ping', { token }),
    leave: (token: string) => call('POST', '/leave', { token }),
    resume: (token: string) => call('POST', '/resume', { token }),
    /** A host and a joiner in one live room, with the host's join notice already read. */
    async pair(type: 'standard' | 'listener' = 'standard') {
      const s = (await api.setup({ type })).json;
      const j = (await api.registerAndJoin(s.code)).json;
      const creator = s.token as string;
      const redeemer = j.token as string;
      const notice = await api.wait(creator, 2);
      if (!notice.text.includes('has joined')) throw new Error(`expected join notice, got ${notice.text}`);
      return type === 'standard' ? { host: creator, joiner: redeemer } : { host: redeemer, joiner: creator };
    },
  };
  return api;
}

/** The lines of a framed partner message, without the frame. */
export function messageLines(body: string): string[] {
  const lines = body.split('\n');
  return lines.slice(3, -1).map((l) => l.replace(/^│ ?/, ''));
}

/** Probes until `ok` holds; throws (saying what it waited for) when it never does. */
export async function eventually<T>(probe: () => Promise<T>, ok: (v: T) => boolean, what = 'condition', tries = 100): Promise<T> {
  let v = await probe();
  for (let i = 0; i < tries && !ok(v); i++) {
    await new Promise((r) => setTimeout(r, 50));
    v = await probe();
  }
  if (!ok(v)) throw new Error(`gave up waiting for ${what}; last value: ${JSON.stringify(v)}`);
  return v;
}

/** A gauge or counter from /metrics. */
export async function metric(url: string, name: string): Promise<number> {
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(await (await fetch(`${url}/metrics`)).text());
  return Number(m?.[1]);
}
