/**
 * The broker's HTTP API from the page (same origin). The token rides in the Authorization
 * header only: never in a URL, a cookie or a log.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterS?: number,
  ) {
    super(message);
  }
}

export interface CallOptions {
  token?: string;
  body?: string;
  json?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** One request; a 4xx/5xx becomes an ApiError with the broker's own {error, code}; a network failure stays a TypeError. */
export async function call(method: string, path: string, opts: CallOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers['content-type'] = 'application/json';
  } else if (body !== undefined) headers['content-type'] = 'text/plain; charset=utf-8';
  const res = await fetch(path, { method, headers, body, signal: opts.signal, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' });
  if (res.ok) return res;
  let error: { error?: string; code?: string } = {};
  try {
    error = await res.json();
  } catch {
    // not JSON (a proxy's page): the status says enough
  }
  const retry = Number(res.headers.get('retry-after'));
  throw new ApiError(res.status, error.code ?? `http_${res.status}`, error.error ?? `The broker answered ${res.status}`, retry > 0 ? retry : undefined);
}

export async function callJson<T>(method: string, path: string, opts: CallOptions = {}): Promise<T> {
  return (await call(method, path, opts)).json() as Promise<T>;
}

/** A random Idempotency-Key (getRandomValues works on plain-HTTP LAN pages too, unlike randomUUID). */
export function randomKey(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}
