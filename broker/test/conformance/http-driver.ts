/** The curl door (A2A Linker HTTP API) as a conformance driver: an acknowledging /wait client. */
import type { EventKind } from '../../src/engine/events.js';
import { parseFrame } from '../frames.js';
import type { Driver, Participant, SeenEvent } from './driver.js';

/** `a2aBroker`: where its participant publishes an A2A agent (another broker on a shared backend); this one by default. */
export function httpDriver(base: string, a2aBroker = base): Driver {
  const call = async (method: string, path: string, token?: string, body?: string, at = base) => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(at + path, { method, headers, body });
    const text = await res.text();
    return { status: res.status, text, headers: res.headers, json: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : undefined };
  };
  const participant = (token: string): Participant => {
    let ack = '';
    return {
      async send(text) {
        const r = await call('POST', '/send', token, text);
        return r.status === 200 ? { ok: true } : { ok: false, code: r.json.code };
      },
      async next(timeoutMs = 2000) {
        const r = await call('GET', `/wait?timeout=${Math.max(1, Math.ceil(timeoutMs / 1000))}&ack=${ack}`, token);
        if (r.status !== 200) throw new Error(`/wait answered ${r.status}: ${r.text}`);
        const kind = r.headers.get('parley-event') as EventKind | 'timeout';
        if (kind === 'timeout') return null;
        ack = r.headers.get('parley-event-id') ?? '';
        const e: SeenEvent = { kind, raw: r.text };
        if (kind === 'message') Object.assign(e, parseFrame(r.text));
        return e;
      },
      async status() {
        const r = await call('GET', '/ping', token);
        return { inRoom: r.json.room_alive, paused: r.json.paused, partner: r.json.partner_connected };
      },
      async resume() {
        const r = await call('POST', '/resume', token);
        return r.status === 200 ? { ok: true } : { ok: false, code: r.json.code };
      },
      async leave() {
        await call('POST', '/leave', token);
      },
      async close() {},
      async publish(listenerCode) {
        const r = await call('POST', '/a2a/publish', token, JSON.stringify({ listenerCode, name: 'Conformance listener' }), a2aBroker);
        if (r.status !== 200) throw new Error(`publish answered ${r.status}: ${r.text}`);
        return JSON.stringify({ url: r.json.url, key: r.json.accessKey });
      },
    };
  };
  return {
    name: 'http',
    async open(kind) {
      const r = await call('POST', '/setup', undefined, JSON.stringify({ type: kind }));
      return { participant: participant(r.json.token), code: r.json.code };
    },
    async join(code) {
      const r = await call('POST', `/register-and-join/${code}`);
      return r.status === 200 ? { participant: participant(r.json.token) } : { refused: r.json.code };
    },
  };
}
