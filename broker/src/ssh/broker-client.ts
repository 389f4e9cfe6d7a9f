/**
 * The SSH broker's view of the HTTP broker: plain calls to its public API, each carrying the SSH
 * client's address in X-Forwarded-For (honoured because this adapter is in TRUSTED_PROXIES), so
 * per-address rate limits apply to SSH users exactly as to HTTP ones.
 */
export interface BrokerReply {
  ok: boolean;
  status: number;
  text: string;
  /** The `error` of a JSON error body, or the raw text. */
  error: string;
  /** The refusal code of a JSON error body (switch on this, never on status or text). */
  code?: string;
  /** What a /wait returned (Parley-Event). */
  event?: string;
  json: any;
  /** Retry-After, in seconds, when the broker sent one. */
  retryAfter?: string;
}

export type BrokerCall = (method: 'GET' | 'POST', path: string, opts?: { body?: string; signal?: AbortSignal; headers?: Record<string, string> }) => Promise<BrokerReply>;

export function brokerClient(baseUrl: string, clientAddress: string, token?: string): BrokerCall {
  return async (method, path, opts = {}) => {
    const headers: Record<string, string> = { ...opts.headers, 'x-forwarded-for': clientAddress };
    if (token) headers.authorization = `Bearer ${token}`;
    if (opts.body !== undefined) headers['content-type'] = 'text/plain; charset=utf-8';
    const res = await fetch(baseUrl + path, { method, headers, body: opts.body, signal: opts.signal });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const error = typeof json?.error === 'string' ? json.error : text.trim();
    return {
      ok: res.ok,
      status: res.status,
      text,
      error,
      json,
      code: res.ok ? undefined : typeof json?.code === 'string' ? json.code : 'unknown',
      event: res.headers.get('parley-event') ?? undefined,
      retryAfter: res.headers.get('retry-after') ?? undefined,
    };
  };
}
