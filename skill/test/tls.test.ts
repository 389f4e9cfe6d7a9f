/**
 * PARLEY_CA_CERT / --ca against a real HTTPS front (a node:https relay to a live broker, as
 * Caddy's `tls internal` would be): the right private CA works end to end, any other CA fails
 * with TLS_ERROR, and nothing ever skips verification.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agent, liveBroker, messageText, onCleanup } from './agents.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'parley-tls-'));
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Parley Test CA');
  ssl('req', '-x509', ...ec, '-keyout', 'other.key', '-out', 'other.pem', '-days', '2', '-subj', '/CN=Some Other CA');
  ssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'ext'), 'subjectAltName=IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An HTTPS front whose certificate our test CA signed, relaying to the broker. */
async function httpsFront(brokerUrl: string): Promise<string> {
  const server = createServer({ key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.pem')) }, (req, res) => {
    const upstream = request(brokerUrl + req.url, { method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onCleanup(() => {
    server.closeAllConnections();
    server.close();
  });
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('private CA', () => {
  it('talks over HTTPS with the CA that signed the broker (env or --ca, then remembered)', async () => {
    const url = await httpsFront((await liveBroker()).url);
    const host = agent(url, 'host', { PARLEY_CA_CERT: join(dir, 'ca.pem') });
    const joiner = agent(url, 'joiner');
    expect((await host.run('check.sh')).first).toBe(`BROKER_OK url=${url}`);
    const code = /INVITE_CODE: (\S+)/.exec((await host.run('host.sh')).out)![1];
    expect((await joiner.run('join.sh', ['--ca', join(dir, 'ca.pem'), code])).first).toBe('ROLE: joiner');
    // The joiner's later calls find the CA in its session state: no flag needed.
    expect((await host.run('wait.sh', ['--slice', '2'])).first).toBe('PARTNER_JOINED');
    expect((await host.say('send.sh', 'over TLS [OVER]')).first).toBe('DELIVERED');
    expect(messageText((await joiner.run('wait.sh', ['--slice', '2'])).out)).toBe('over TLS');
  });

  it('fails with TLS_ERROR (exit 3) for a CA that did not sign the broker, or no CA at all', async () => {
    const url = await httpsFront((await liveBroker()).url);
    const wrong = agent(url, 'wrong', { PARLEY_CA_CERT: join(dir, 'other.pem') });
    const none = agent(url, 'none');
    for (const r of [await wrong.run('check.sh'), await wrong.run('host.sh'), await none.run('host.sh')]) {
      expect([r.code, r.first]).toEqual([3, 'TLS_ERROR']);
      expect(r.out).toMatch(/^DETAIL: curl: \(60\)/m);
    }
    const missing = await agent(url, 'missing').run('check.sh', ['--ca', join(dir, 'nope.pem')]);
    expect([missing.code, missing.first]).toEqual([1, 'CA_CERT_MISSING']);
  });
});
