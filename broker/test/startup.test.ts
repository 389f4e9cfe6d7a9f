/** What the broker says when it starts: where it is, a first curl to try, and a TLS warning with its fix. */
import { describe, expect, it } from 'vitest';
import { broker } from './helpers.js';

const lines = (logs: string[]) => logs.map((l) => JSON.parse(l) as { level: number; msg: string; url?: string });

describe('start-up log', () => {
  it('names the URL it serves and a curl that answers', async () => {
    const logs: string[] = [];
    const b = await broker({}, logs);
    const listening = lines(logs).find((l) => l.msg.startsWith('broker listening'))!;
    expect(listening.url).toBe(`http://localhost:${b.port}`);
    expect(listening.msg).toBe(`broker listening on http://localhost:${b.port}; try: curl -s http://localhost:${b.port}/health`);
    const curl = /try: curl -s (\S+)$/.exec(listening.msg)![1];
    const res = await fetch(curl.replace('localhost', '127.0.0.1'));
    expect([res.status, await res.json()]).toEqual([200, { ok: true }]);
  });

  it('behind Caddy names PUBLIC_URL, with --cacert for a local CA', async () => {
    const logs: string[] = [];
    await broker({ PUBLIC_URL: 'https://parley.lan:8443', PARLEY_TLS: 'internal' }, logs);
    const listening = lines(logs).find((l) => l.msg.startsWith('broker listening'))!;
    expect(listening.msg).toBe('broker listening on https://parley.lan:8443; try: curl -s --cacert parley-root.crt https://parley.lan:8443/health');
    expect(lines(logs).filter((l) => l.level >= 40)).toEqual([]);
  });

  it('warns with the fix when PUBLIC_URL names a LAN host that ACME cannot certify', async () => {
    const logs: string[] = [];
    await broker({ PUBLIC_URL: 'https://parley.lan:8443', PARLEY_TLS: 'auto' }, logs);
    const warnings = lines(logs).filter((l) => l.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0].msg).toMatch(/parley\.lan is a private name that no public CA will certify[^]*tlsv1 alert internal error[^]*set PARLEY_TLS=internal in \.env/);
  });
});
