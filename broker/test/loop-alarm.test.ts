/** The broker's side of loop detection: pause on the first alarm, resume on request, sever on the second. */
import { describe, expect, it } from 'vitest';
import { broker, client, type Reply } from './helpers.js';
import { THANKS as thanks } from './polite.js';

/** Both sides trade thanks, alternating, until /send is refused. Returns the refusal and who sent it. */
async function politeLoop(api: ReturnType<typeof client>, host: string, joiner: string, limit = 24) {
  for (let i = 0; i < limit; i++) {
    const [from, to] = i % 2 === 0 ? [host, joiner] : [joiner, host];
    const r = await api.send(from, `${thanks[i % thanks.length]} [OVER]`);
    if (r.status !== 200) return { refusal: r, sender: from, turns: i };
    await api.wait(to, 1);
  }
  throw new Error('no alarm');
}

const drainAll = async (api: ReturnType<typeof client>, token: string) => {
  const seen: Reply[] = [];
  for (let r = await api.wait(token, 1); !r.text.startsWith('TIMEOUT') && r.status === 200; r = await api.wait(token, 1)) seen.push(r);
  return seen.map((r) => r.text);
};

describe('loop alarm', () => {
  it('catches an alternating polite loop: 429, both alerted, room paused', async () => {
    const api = client((await broker()).url);
    const { host, joiner } = await api.pair();
    await api.send(host, 'Deployed v2.3.1 to staging; migrations 0042-0044 applied, p95 at 180ms [OVER]');
    await api.wait(joiner, 1);
    const { refusal } = await politeLoop(api, joiner, host);
    expect(refusal.status).toBe(429);
    expect(refusal.json.code).toBe('loop_paused');
    expect(refusal.json.error).toMatch(/^Loop detected/);
    for (const t of [host, joiner]) expect((await drainAll(api, t)).some((x) => x.startsWith('MESSAGE_RECEIVED\n[SYSTEM ALERT]: Loop detected'))).toBe(true);
    // Paused: everyone is refused, with the same loop body, until a resume.
    for (const t of [host, joiner]) {
      const r = await api.send(t, 'A genuinely new finding: the index on users.email is missing [OVER]');
      expect(r.status).toBe(429);
      expect(r.json.code).toBe('loop_paused');
    }
  });

  it('resume lifts the pause; /resume when not paused is 409', async () => {
    const api = client((await broker()).url);
    const { host, joiner } = await api.pair();
    const early = await api.resume(host);
    expect(early.status).toBe(409);
    expect(early.json.code).toBe('not_paused');
    await politeLoop(api, host, joiner);
    await drainAll(api, host);
    await drainAll(api, joiner);
    expect((await api.resume(joiner)).json).toEqual({ ok: true });
    for (const t of [host, joiner]) expect((await api.wait(t, 1)).text).toContain('resumed the session after the loop alarm');
    const r = await api.send(host, 'Real work: bump the retry budget in config/retry.yaml from 3 to 5 [OVER]');
    expect(r.text).toBe('DELIVERED');
  });

  it('a second alarm after the resume severs the session and revokes both tokens', async () => {
    const b = await broker();
    const api = client(b.url);
    const { host, joiner } = await api.pair();
    await politeLoop(api, host, joiner);
    await drainAll(api, host);
    await drainAll(api, joiner);
    await api.resume(host);
    await drainAll(api, host);
    await drainAll(api, joiner);
    const { refusal } = await politeLoop(api, host, joiner);
    expect(refusal.status).toBe(429);
    expect(refusal.json.code).toBe('loop_severed');
    // Each side is told once, then its token is dead everywhere.
    for (const t of [host, joiner]) {
      const told = await api.wait(t, 1);
      expect(told.text).toMatch(/^MESSAGE_RECEIVED\n\[SYSTEM ALERT\]: Loop detected again after resuming.*severed/s);
      expect((await api.wait(t, 1)).status).toBe(401);
      expect((await api.send(t, 'hello? [OVER]')).status).toBe(401);
      expect((await api.ping(t)).status).toBe(401);
    }
    expect(b.engine.stats().rooms).toBe(0);
    expect(b.store.db.exec('SELECT count(*) FROM tokens')[0].values[0][0]).toBe(0);
    const metrics = await api.call('GET', '/metrics');
    expect(metrics.text).toMatch(/^parley_loop_alarms_total 2$/m);
    expect(metrics.text).toMatch(/^parley_sessions_severed_total 1$/m);
  });
});
