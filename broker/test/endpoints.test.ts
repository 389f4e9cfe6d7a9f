/** Health, readiness, metrics, unknown paths and wrong methods. */
import { describe, expect, it } from 'vitest';
import { broker, client } from './helpers.js';

describe('operational endpoints', () => {
  it('GET /health and /ready answer 200 JSON', async () => {
    const api = client((await broker()).url);
    expect((await api.call('GET', '/health')).json).toEqual({ ok: true });
    expect((await api.call('GET', '/ready')).json).toEqual({ ready: true });
  });

  it('GET /metrics is Prometheus text with counts', async () => {
    const api = client((await broker()).url);
    const { host, joiner } = await api.pair();
    await api.send(host, 'one [OVER]');
    await api.wait(joiner, 1);
    const r = await api.call('GET', '/metrics');
    expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(r.text).toMatch(/^# TYPE parley_messages_total counter$/m);
    expect(r.text).toMatch(/^parley_messages_total 1$/m);
    expect(r.text).toMatch(/^parley_messages_delivered_total 1$/m);
    expect(r.text).toMatch(/^parley_rooms 1$/m);
  });

  it('unknown paths are a JSON 404, wrong methods a JSON 405 with Allow', async () => {
    const api = client((await broker()).url);
    const missing = await api.call('GET', '/nope');
    expect(missing.status).toBe(404);
    expect(missing.json).toEqual({ error: 'Not found', code: 'not_found' });
    const wrong = await api.call('GET', '/send');
    expect(wrong.status).toBe(405);
    expect(wrong.json.code).toBe('method_not_allowed');
    expect(wrong.headers.get('allow')).toContain('POST');
    const waitWrong = await api.call('POST', '/wait');
    expect(waitWrong.status).toBe(405);
    expect(waitWrong.json).toEqual({ error: 'Method not allowed', code: 'method_not_allowed' });
  });
});
