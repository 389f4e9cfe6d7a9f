/**
 * The SSH broker's view of the HTTP broker: plain calls to its public API, each carrying the SSH
 * client's address in X-Forwarded-For (honoured because this adapter is in TRUSTED_PROXIES), so
 * per-address rate limits apply to SSH users exactly as to HTTP ones.
 */
export interface BrokerReply {
  status: number;
  text: string;
  /** The `error` of a JSON error body, or the raw text. */
  error: string;
  json: any;
  /** Retry-After, in seconds, when the broker sent one. */
  retryAfter?: string;
}

export type BrokerCall = (method: 'GET' | 'POST', path: string, opts?: { body?: string; signal?: AbortSignal }) => Promise<BrokerReply>;

export function brokerClient(baseUrl: string, clientAddress: string, token?: string): BrokerCall {
  return async (method, path, opts = {}) => {
    const headers: Record<string, string> = { 'x-forwarded-for': clientAddress };
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
    return { status: res.status, text, error, json, retryAfter: res.headers.get('retry-after') ?? undefined };
  };
}
