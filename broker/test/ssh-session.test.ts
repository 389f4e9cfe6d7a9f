/**
 * The SSH broker end to end without Docker: a real HTTP broker (startBroker), the real SSH broker
 * in front of it, and a real ssh2 client — sessions, the stream in both directions with an HTTP
 * partner, flushing, usage errors and exit statuses, the forwarded client address, the host key.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { broker, client, messageLines } from './helpers.js';
import { register, ssh, sshBroker, sshBrokers } from './ssh-client.js';

describe('SSH broker', () => {
  it('new@ registers: the printed token works on the HTTP API', async () => {
    const b = await broker();
    const { port } = await sshBroker(b.url);
    const token = await register(port);
    const created = await client(b.url).call('POST', '/create', { token });
    expect(created.status).toBe(200);
    expect(created.json.inviteCode).toMatch(/^invite_[0-9a-f]{32}$/);
  });

  it('bad user names, commands and tokens get usage or a reason and a non-zero exit status', async () => {
    const b = await broker();
    const { port } = await sshBroker(b.url);
    const cases: [string, string | undefined, number, RegExp][] = [
      ['bogus', undefined, 2, /Log in as "new".*\n[\s\S]*ssh -p 2222 new@parley\.test/],
      ['new', 'create', 2, /"new" takes no command/],
      ['tok_0123456789abcdef0123456789abcdef', undefined, 2, /Missing command/],
      ['tok_0123456789abcdef0123456789abcdef', 'dance', 2, /Unknown command "dance"/],
      ['tok_0123456789abcdef0123456789abcdef', 'join', 2, /Wrong arguments for "join"/],
      ['tok_0123456789abcdef0123456789abcdef', 'create', 1, /Invalid or expired token/],
    ];
    for (const [user, command, status, pattern] of cases) {
      const s = await ssh(port, user, command);
      expect(await s.exit, `${user} ${command}`).toBe(status);
      expect(s.stderr()).toMatch(pattern);
    }
    const token = await register(port);
    const s = await ssh(port, token, 'join invite_00000000000000000000000000000000');
    expect(await s.exit).toBe(1);
    expect(s.stderr()).toBe('Invalid or expired code\n');
  });

  it('an SSH host and an HTTP joiner talk both ways, each message confirmed with [DELIVERED]', async () => {
    const b = await broker();
    const api = client(b.url);
    const { port } = await sshBroker(b.url);
    const host = await ssh(port, await register(port), 'create');
    const code = /Invite code: (invite_[0-9a-f]{32})/.exec(await host.waitFor(/Invite code: .*\n/))![1];
    const joiner = (await api.registerAndJoin(code)).json.token;
    await host.waitFor(/has joined\. Session is live!/);

    host.write('Line one\nline two [OVER]\n');
    await host.waitFor(/\[DELIVERED\]\n/);
    const got = await api.wait(joiner, 5);
    expect(got.text).toMatch(/^MESSAGE_RECEIVED\n┌─ Agent-[0-9a-f]{4} \[OVER\]\n/);
    expect(messageLines(got.text)).toEqual(['Line one', 'line two']);

    expect((await api.send(joiner, 'Reply from HTTP [OVER]')).text).toBe('DELIVERED');
    const out = await host.waitFor(/│ Reply from HTTP\n└────\n/);
    expect(out).toMatch(/MESSAGE_RECEIVED\n┌─ Agent-[0-9a-f]{4} \[OVER\]\n│\n│ Reply from HTTP\n└────\n/);

    // Closing the input leaves the room: the partner is told, the session exits 0.
    host.end();
    expect(await host.exit).toBe(0);
    expect((await api.wait(joiner, 5)).text).toMatch(/^MESSAGE_RECEIVED\n\[SYSTEM\]: /);
  });

  it('text without a marker is sent after a pause, and a long paste in 128 KiB pieces', async () => {
    const b = await broker();
    const api = client(b.url);
    const { port } = await sshBroker(b.url);
    const setup = (await api.setup()).json;
    const joiner = await ssh(port, await register(port), `join ${setup.code}`);
    await joiner.waitFor(/WALKIE-TALKIE RULES/);
    expect((await api.wait(setup.token, 5)).text).toContain('has joined');

    joiner.write('no marker here');
    await joiner.waitFor(/\[DELIVERED\]\n/);
    expect(messageLines((await api.wait(setup.token, 5)).text)).toEqual(['no marker here']);

    joiner.write('x'.repeat(200 * 1024));
    const first = await api.wait(setup.token, 5);
    const second = await api.wait(setup.token, 5);
    expect(messageLines(first.text).join('')).toHaveLength(128 * 1024);
    expect(messageLines(second.text).join('')).toHaveLength(72 * 1024);
    joiner.end();
    expect(await joiner.exit).toBe(0);
  });

  it('two SSH agents share a room; /resume typed alone lifts a loop pause', async () => {
    const b = await broker();
    const { port } = await sshBroker(b.url);
    const host = await ssh(port, await register(port), 'create');
    const code = /Invite code: (invite_\w+)/.exec(await host.waitFor(/Invite code: .*\n/))![1];
    const joiner = await ssh(port, await register(port), `join ${code}`);
    await host.waitFor(/has joined/);
    const thanks = ['Thanks so much!', 'Thank you too!', 'Thanks again!', 'Thanks, really!', 'Many thanks!', 'Thanks a lot!', 'Thanks!', 'Thank you!'];
    let turn = 0;
    for (; turn < 20; turn++) {
      const [me, partner] = turn % 2 === 0 ? [host, joiner] : [joiner, host];
      me.write(`${thanks[turn % thanks.length]} [OVER]\n`);
      const confirmations = (me.stdout().match(/\[(NOT )?DELIVERED\]/g) ?? []).length;
      await me.waitFor(new RegExp(`(\\[(NOT )?DELIVERED\\][^]*){${confirmations + 1}}`));
      if (/\[NOT DELIVERED\] Loop detected/.test(me.stdout())) break;
      await partner.waitFor(new RegExp(`│ ${thanks[turn % thanks.length].replace(/[!]/g, '\\!')}\\n└────`));
    }
    expect(turn).toBeLessThan(20);
    await host.waitFor(/\[SYSTEM ALERT\]: Loop detected/);
    host.write('/resume\n');
    await host.waitFor(/\[RESUMED\]/);
    await joiner.waitFor(/resumed the session after the loop alarm/);
    host.end();
    joiner.end();
    expect(await host.exit).toBe(0);
    expect(await joiner.exit).toBe(0);
  });

  it("forwards the SSH client's address: its anonymous rate limit is its own", async () => {
    const b = await broker({ RATE_LIMITS: 'on', RATE_ANON_PER_MIN: '2', TRUSTED_PROXIES: '127.0.0.1' });
    const { port } = await sshBroker(b.url);
    await register(port, '127.0.1.5');
    await register(port, '127.0.1.6'); // same /24 bucket
    const third = await ssh(port, 'new', undefined, '127.0.1.7');
    expect(await third.exit).toBe(1);
    expect(third.stderr()).toMatch(/^Could not register: Rate limit exceeded: retry in \d+s\n$/);
    // The SSH broker's own address (127.0.0.1, the trusted proxy) is a different bucket.
    expect((await client(b.url).register()).status).toBe(200);
    expect(await register(port, '127.0.2.5')).toMatch(/^tok_/);
  });

  it('keeps its host key across restarts', async () => {
    const b = await broker();
    const dir = mkdtempSync(join(tmpdir(), 'parley-ssh-'));
    const first = await sshBroker(b.url, dir);
    await first.close();
    sshBrokers.splice(sshBrokers.indexOf(first), 1);
    const second = await sshBroker(b.url, dir);
    expect(second.hostKeyFingerprint).toBe(first.hostKeyFingerprint);
    expect(second.hostKeyFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it.each([
    // Caddy's local CA on a non-default port: the port is in the URL and curl is given the root certificate.
    [{ PUBLIC_URL: 'https://parley.lan:8443', PARLEY_TLS: 'internal', SSH_PUBLIC_PORT: '2022' }, 'ssh -p 2022 THEIR_TOKEN@parley.lan join', 'curl -s --cacert parley-root.crt -X POST https://parley.lan:8443/register-and-join/'],
    [{ PUBLIC_URL: 'https://localhost:4443' }, 'ssh -p 2222 THEIR_TOKEN@localhost join', 'curl -s --cacert parley-root.crt -X POST https://localhost:4443/register-and-join/'],
    // A public name with an ACME certificate on 443: a plain URL, no CA file.
    [{ PUBLIC_URL: 'https://parley.example.com:443', PARLEY_TLS: 'auto' }, 'ssh -p 2222 THEIR_TOKEN@parley.example.com join', 'curl -s -X POST https://parley.example.com/register-and-join/'],
  ])('the join hints of a new room follow PUBLIC_URL, PARLEY_TLS and SSH_PUBLIC_PORT (%o)', async (env, sshHint, curlHint) => {
    const b = await broker();
    const { port } = await sshBroker(b.url, undefined, env);
    const host = await ssh(port, await register(port), 'create');
    const out = await host.waitFor(/Waiting for your partner/);
    const code = /Invite code: (invite_[0-9a-f]{32})/.exec(out)![1];
    expect(out).toContain(`Your partner joins with:  ${sshHint} ${code}\n`);
    expect(out).toContain(`or:  ${curlHint}${code}\n`);
    host.end();
    await host.exit;
  });
});
