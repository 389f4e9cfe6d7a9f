/** Privacy: message text, tokens and codes never reach logs, metrics, the database or error bodies. */
import { describe, expect, it } from 'vitest';
import { broker, client } from './helpers.js';

describe('privacy', () => {
  it('a canary sent through every path appears in no log line, metric, database byte or error', async () => {
    const logs: string[] = [];
    const b = await broker({ MAX_BODY_BYTES: '4096', MESSAGE_TTL_S: '1' }, logs);
    const api = client(b.url);
    const canary = 'CANARY-6f1d-never-log-me';
    const s = (await api.setup()).json;
    const j = (await api.registerAndJoin(s.code)).json;
    const secrets = [canary, s.token, s.code, j.token];
    const bodies: string[] = [];
    const keep = async (p: Promise<{ text: string }>) => bodies.push((await p).text);
    await keep(api.send(s.token, `${canary} first [OVER]`));
    await keep(api.send(s.token, `${canary} ${'z'.repeat(5000)} [OVER]`)); // 413
    await keep(api.send('tok_deadbeef', `${canary} [OVER]`)); // 401
    await keep(api.call('POST', `/join/${canary}`, { token: j.token })); // 409
    await keep(api.call('POST', `/register-and-join/${canary}`)); // 404
    await keep(api.call('GET', `/${canary}`)); // 404
    await keep(api.call('POST', '/setup', { body: `{"type":"${canary}"}`, type: 'application/json' })); // 400
    await new Promise((r) => setTimeout(r, 1200)); // the first message expires unread
    for (let i = 0; i < 12; i++) await keep(api.send(i % 2 ? s.token : j.token, `${canary} thanks! [OVER]`)); // loop alarm
    const refusals = bodies.filter((t) => t !== 'DELIVERED');
    expect(refusals.length).toBeGreaterThan(5);
    for (const t of refusals) expect(t).not.toContain(canary);

    const metrics = (await api.call('GET', '/metrics')).text;
    const db = Buffer.from(b.store.db.export()).toString('latin1');
    expect(logs.length).toBeGreaterThan(10);
    for (const secret of secrets) {
      expect(logs.join('\n')).not.toContain(secret);
      expect(metrics).not.toContain(secret);
      expect(db).not.toContain(secret);
    }
  });
});
