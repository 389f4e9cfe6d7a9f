/** Test helpers for the A2A door: a published listener driven like a curl agent, and the SDK's client. */
import { ClientFactory, ClientFactoryOptions, type Client } from '@a2a-js/sdk/client';
import { broker, client } from './helpers.js';

export { sendParams, userMessage } from './a2a-messages.js';

export async function publishedListener(opts: { open?: boolean; env?: Record<string, string>; logs?: string[] } = {}) {
  const b = await broker(opts.env, opts.logs);
  const api = client(b.url);
  const s = (await api.setup({ type: 'listener' })).json;
  const pub = await api.call('POST', '/a2a/publish', {
    token: s.token,
    type: 'application/json',
    body: JSON.stringify({ listenerCode: s.code, name: 'Build helper', description: 'Answers build questions', skills: [{ name: 'Builds', description: 'CI help', tags: ['ci'] }], open: opts.open }),
  });
  if (pub.status !== 200) throw new Error(`publish failed: ${pub.status} ${pub.text}`);
  return { b, api, listener: s.token as string, pub: pub.json as { id: string; url: string; agentCardUrl: string; accessKey: string | null } };
}

/** The listener's next partner message (notices such as the join are skipped); throws if none comes. */
export async function nextMessage(api: ReturnType<typeof client>, token: string): Promise<string> {
  for (let i = 0; i < 5; i++) {
    const r = await api.wait(token, 5);
    if (r.headers.get('parley-event') === 'message') return r.text;
  }
  throw new Error('no message reached the listener');
}

/** The next event of any kind for a token, as its Parley-Event name and text; throws on a timeout. */
export async function nextEvent(api: ReturnType<typeof client>, token: string): Promise<{ kind: string; text: string }> {
  const r = await api.wait(token, 5);
  const kind = r.headers.get('parley-event') ?? '';
  if (kind === 'timeout' || kind === '') throw new Error(`no event: ${r.status} ${r.text}`);
  return { kind, text: r.text };
}

export async function sdkClient(agentUrl: string, transport: 'JSONRPC' | 'HTTP+JSON' = 'JSONRPC'): Promise<Client> {
  const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, { preferredTransports: [transport] }));
  // The trailing slash makes the card path resolve under the agent's URL.
  return factory.createFromUrl(`${agentUrl}/`);
}

export const withKey = (key: string | null) => (key ? { serviceParameters: { Authorization: `Bearer ${key}` } } : {});

/** Raw JSON-RPC, as a v0.3 client (or curl) sends it. */
export async function rpc(url: string, method: string, params: unknown, opts: { key?: string | null; version?: string; id?: unknown; raw?: string } = {}) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.key) headers.authorization = `Bearer ${opts.key}`;
  if (opts.version) headers['a2a-version'] = opts.version;
  const res = await fetch(url, { method: 'POST', headers, body: opts.raw ?? JSON.stringify({ jsonrpc: '2.0', id: opts.id ?? 1, method, params }) });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type') ?? '', text, json: res.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : undefined };
}

/** The `data:` payloads of an SSE body, parsed. */
export function sseEvents(text: string): any[] {
  return text
    .split('\n\n')
    .map((block) => block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n'))
    .filter(Boolean)
    .map((d) => JSON.parse(d));
}
