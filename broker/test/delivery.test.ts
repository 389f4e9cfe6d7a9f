/**
 * Delivery you can trust: acknowledged waits, idempotent sends, message fates, presence, and a
 * fault-injection run through a proxy that cuts responses at random points.
 */
import { describe, expect, it } from 'vitest';
import { faultProxy } from './fault-proxy.js';
import { broker, client, eventually, metric } from './helpers.js';
import { parseFrame } from './frames.js';
import { SECRET, testRedis } from './redis-server.js';

const redis = await testRedis();

/** An acknowledging participant that retries whatever the network cut, and shows each event once. */
function ackingClient(base: string, token: string) {
  let ack = '';
  const shown = new Set<string>();
  let redeliveries = 0;
  const retry = async <T>(attempt: () => Promise<T>): Promise<T> => {
    for (let i = 0; ; i++) {
      try {
        return await attempt();
      } catch (e) {
        if (i > 200) throw e;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };
  return {
    shown,
    get redeliveries() {
      return redeliveries;
    },
    async send(text: string, key: string): Promise<string> {
      return retry(async () => {
        const r = await fetch(`${base}/send`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'idempotency-key': key }, body: text });
        const body = await r.text();
        if (r.status !== 200) throw new Error(`send ${r.status} ${body}`);
        return r.headers.get('parley-message-id')!;
      });
    },
    /** The next new message's text (events already shown are dropped by id). */
    async nextMessage(): Promise<string> {
      for (;;) {
        const got = await retry(async () => {
          const r = await fetch(`${base}/wait?timeout=5&ack=${ack}`, { headers: { authorization: `Bearer ${token}` } });
          const body = await r.text();
          if (r.status !== 200) throw new Error(`wait ${r.status} ${body}`);
          return { kind: r.headers.get('parley-event'), id: r.headers.get('parley-event-id') ?? '', body };
        });
        if (got.kind === 'timeout') continue;
        ack = got.id;
        if (shown.has(got.id)) {
          redeliveries++;
          continue;
        }
        shown.add(got.id);
        if (got.kind === 'message') return parseFrame(got.body).text;
      }
    },
  };
}

describe('delivery', () => {
  it('acknowledging clients lose nothing and show nothing twice while a proxy cuts responses at random (2,000 messages)', async () => {
    const b = await broker({ MESSAGE_TTL_S: '600' });
    const api = client(b.url);
    const { host, joiner } = await api.pair();
    const proxy = await faultProxy(b.url, 0.3);
    try {
      const a = ackingClient(proxy.url, host);
      const z = ackingClient(proxy.url, joiner);
      const received: string[] = [];
      for (let i = 0; i < 1000; i++) {
        await a.send(`request ${i}: checksum ${(i * 2654435761) % 4294967296} [OVER]`, `a-${i}`);
        received.push(await z.nextMessage());
        await z.send(`reply ${i}: verified block ${(i * 40503) % 65536} [OVER]`, `z-${i}`);
        received.push(await a.nextMessage());
      }
      const expected = Array.from({ length: 1000 }, (_, i) => [`request ${i}: checksum ${(i * 2654435761) % 4294967296}`, `reply ${i}: verified block ${(i * 40503) % 65536}`]).flat();
      expect(received).toEqual(expected); // 0 lost, 0 shown twice, in order
      const totalCuts = Object.values(proxy.cuts).reduce((x, y) => x + y, 0);
      expect(totalCuts).toBeGreaterThan(100);
      expect(Math.min(...Object.values(proxy.cuts))).toBeGreaterThan(0); // every kind of cut happened
      console.log(`fault run (acking): 2000 messages, ${totalCuts} responses cut ${JSON.stringify(proxy.cuts)}, ${a.redeliveries + z.redeliveries} events handed out again and dropped by id`);
    } finally {
      await proxy.close();
    }
  }, 900_000); // a bound for a busy machine, not a timed assertion

  it('reports (does not hide) what non-acknowledging clients lose to the same cuts over 2,000 messages; what arrives, arrives once and in order', async () => {
    const b = await broker({ MESSAGE_TTL_S: '600', QUEUE_MAX_MESSAGES: '5000', QUEUE_MAX_BYTES: String(64 * 1024 * 1024) });
    const api = client(b.url);
    const { host, joiner } = await api.pair();
    const proxy = await faultProxy(b.url, 0.3);
    try {
      const sender = ackingClient(b.url, host); // straight to the broker: only the reader's answers are cut
      const sent = Array.from({ length: 2000 }, (_, i) => `item ${i}: offset ${i * 4099}`);
      for (const [i, text] of sent.entries()) await sender.send(`${text} [OVER]`, `n-${i}`);
      // An old A2A Linker client: plain waits, no ack; a cut answer is simply retried.
      const got: string[] = [];
      for (let idle = 0; idle < 3; ) {
        const r = await fetch(`${proxy.url}/wait?timeout=1`, { headers: { authorization: `Bearer ${joiner}` } }).then(async (res) => ({ kind: res.headers.get('parley-event'), body: await res.text() })).catch(() => undefined);
        if (!r) continue;
        if (r.kind === 'timeout') idle++;
        else if (r.kind === 'message') got.push(parseFrame(r.body).text);
      }
      const lost = sent.length - got.length;
      const cut = Object.values(proxy.cuts).reduce((x, y) => x + y, 0);
      console.log(`fault run (non-acking): ${lost} of ${sent.length} messages lost to ${cut} cut responses ${JSON.stringify(proxy.cuts)}`);
      expect(got).toEqual(sent.filter((t) => got.includes(t))); // none twice, none out of order
      expect(lost).toBeLessThanOrEqual(cut); // each loss is a cut answer, never a silent drop elsewhere
    } finally {
      await proxy.close();
    }
  }, 900_000);

  it('a retried send with the same Idempotency-Key returns the first id and delivers once', async () => {
    const api = client((await broker()).url);
    const { host, joiner } = await api.pair();
    const first = await api.call('POST', '/send', { token: host, body: 'migrate table users [OVER]', headers: { 'idempotency-key': 'k-1' } });
    const again = await api.call('POST', '/send', { token: host, body: 'migrate table users [OVER]', headers: { 'idempotency-key': 'k-1' } });
    expect(first.text).toBe('DELIVERED');
    expect(again.text).toBe('DELIVERED');
    expect(again.headers.get('parley-message-id')).toBe(first.headers.get('parley-message-id'));
    expect((await api.wait(joiner, 1)).text).toContain('migrate table users');
    expect((await api.wait(joiner, 1)).text).toMatch(/^TIMEOUT/);
    const bad = await api.call('POST', '/send', { token: host, body: 'x [OVER]', headers: { 'idempotency-key': 'has space' } });
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe('bad_idempotency_key');
  });

  it.each([
    ['memory', {}],
    // Redis records a message's receipt in the same script that queues it.
    ['Redis', { STATE_URL: redis.url, PARLEY_SECRET: SECRET }],
  ])('the sender can ask what became of a message: queued, delivered, acknowledged (%s backend)', async (_name, env) => {
    const api = client((await broker(env)).url);
    const { host, joiner } = await api.pair();
    const id = (await api.send(host, 'the build is green [OVER]')).headers.get('parley-message-id')!;
    const fate = async (t = host) => (await api.call('GET', `/messages/${id}`, { token: t })).json;
    expect(await fate()).toEqual({ id, fate: 'queued' });
    const w = await api.call('GET', '/wait?timeout=1&ack=', { token: joiner });
    expect(w.headers.get('parley-event-id')).toBe(id);
    await eventually(fate, (f) => f.fate === 'delivered', 'delivered');
    await api.call('GET', `/wait?timeout=1&ack=${id}`, { token: joiner });
    expect(await fate()).toEqual({ id, fate: 'acknowledged' });
    expect((await fate(joiner)).code).toBe('unknown_message'); // only its sender may ask
  });

  it('a message left unread when its reader leaves is reported to its sender as dropped', async () => {
    const api = client((await broker()).url);
    const { host, joiner } = await api.pair();
    const id = (await api.send(host, 'please review PR 812 [OVER]')).headers.get('parley-message-id')!;
    await api.leave(joiner);
    const notices = [(await api.wait(host, 1)).text, (await api.wait(host, 1)).text].join('\n');
    expect(notices).toMatch(/was dropped unread because Agent-[0-9a-f]{4} left the room/);
    expect(notices).not.toContain('PR 812');
    expect((await api.call('GET', `/messages/${id}`, { token: host })).json.fate).toBe('dropped');
  });

  it('HEAD /wait is refused and takes nothing off the queue', async () => {
    const api = client((await broker()).url);
    const { host, joiner } = await api.pair();
    await api.send(host, 'still here after a HEAD [OVER]');
    const r = await api.call('HEAD', '/wait', { token: joiner });
    expect(r.status).toBe(405);
    expect((await api.wait(joiner, 1)).text).toContain('still here after a HEAD');
  });

  it('presence says whether the partner holds a wait, was seen recently, or is gone', async () => {
    const b = await broker();
    const api = client(b.url);
    const { host, joiner } = await api.pair();
    expect((await api.ping(host)).json.partner_presence).toBe('recent');
    const held = api.wait(joiner, 5);
    await eventually(() => metric(b.url, 'parley_waiters'), (n) => n === 1, 'the wait to be held');
    expect((await api.ping(host)).json.partner_presence).toBe('waiting');
    await api.send(host, 'done waiting [OVER]');
    await held;
    await api.leave(joiner);
    expect((await api.ping(host)).json.partner_presence).toBe('gone');
  });
});
