/**
 * The appliance end to end: real images, agents in their own containers at their own addresses,
 * everything through Caddy over HTTPS (or the SSH broker). Scenarios share one stack and each
 * opens its own rooms and tokens; the broker restart comes last.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Agent, buildImages, CA_PATH, DOMAIN, SSH_HOST, type Stack, startStack, until } from './stack.js';

let stack: Stack;
let a: Agent;
let b: Agent;
const CANARY = `canary-${randomBytes(6).toString('hex')}`;

beforeAll(async () => {
  await buildImages();
  stack = await startStack();
  ({ a, b } = stack.agents);
});

afterAll(async () => {
  await stack?.stop();
});

const FRAME = /^MESSAGE_RECEIVED\n┌─ Agent-[0-9a-f]{4} \[(OVER|STANDBY)\]\n│\n([^]*)└────$/;

/** The text lines of a framed partner message. */
function lines(body: string): string[] {
  const m = FRAME.exec(body);
  if (!m) throw new Error(`not a framed message: ${JSON.stringify(body)}`);
  return m[2].split('\n').slice(0, -1).map((l) => l.replace(/^│ ?/, ''));
}

/** Host `h` opens a standard room, joiner `j` redeems it; the host has read the join notice. */
async function pair(h: Agent, j: Agent) {
  const setup = await h.setup();
  expect(setup.status).toBe(200);
  const joined = await j.registerAndJoin(setup.json.code);
  expect(joined.status).toBe(200);
  expect((await h.wait(setup.json.token)).body).toMatch(/^MESSAGE_RECEIVED\n\[SYSTEM\]: Agent-[0-9a-f]{4} has joined\. Session is live!$/);
  return { host: setup.json.token as string, joiner: joined.json.token as string };
}

// One JSON-RPC POST to /mcp as an MCP client sends it (gzip offered, so a compressing proxy would show).
const MCP_CURL = `
args=(-sS -N -i --cacert "$CA" -X POST -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' -H 'accept-encoding: gzip, zstd')
[ -n "\${SID:-}" ] && args+=(-H "mcp-session-id: $SID")
curl "\${args[@]}" --data-binary @<(printf %s "$BODY") "$URL"
`;

/** A raw response of /mcp: status, headers, and the JSON-RPC result with a given id from its event stream. */
function sse(raw: string) {
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, split).split('\r\n');
  const headers = Object.fromEntries(head.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  const messages = raw.slice(split + 4).split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
  return {
    status: Number(head[0].split(' ')[1]),
    headers,
    result(id: number) {
      const m = messages.find((x) => x.id === id);
      if (!m?.result) throw new Error(`no result ${id} in ${JSON.stringify(raw)}`);
      return m.result;
    },
  };
}

async function mcp(agent: Agent, body: object, sid?: string) {
  const r = await agent.sh(MCP_CURL, { BODY: JSON.stringify(body), CA: CA_PATH, URL: `https://${DOMAIN}/mcp`, ...(sid ? { SID: sid } : {}) });
  if (r.code !== 0) throw new Error(`curl failed: ${r.stderr}`);
  return sse(r.stdout);
}

describe('appliance', () => {
  it('1. pairing: a room through Caddy, messages both ways with the exact framing, ping sees the partner', async () => {
    const setup = await a.setup();
    expect(setup.status).toBe(200);
    expect(setup.json).toEqual({ token: expect.stringMatching(/^tok_[0-9a-f]{32}$/), code: expect.stringMatching(/^invite_[0-9a-f]{32}$/), role: 'host' });
    const joined = await b.registerAndJoin(setup.json.code);
    expect(joined.json).toMatchObject({ token: expect.stringMatching(/^tok_/), role: 'joiner', headless: false, status: '(2/2 connected)' });
    expect(joined.json.rules).toContain('WALKIE-TALKIE RULES');
    const host = setup.json.token;
    const joiner = joined.json.token;
    expect((await a.wait(host)).body).toMatch(/has joined\. Session is live!$/);

    const sent = await a.send(host, `Hello from A, ${CANARY}\nsecond line [OVER]`);
    expect([sent.status, sent.body]).toEqual([200, 'DELIVERED']);
    const got = await b.wait(joiner);
    expect(got.body).toMatch(/^MESSAGE_RECEIVED\n┌─ Agent-[0-9a-f]{4} \[OVER\]\n│\n│ Hello from A, canary-[0-9a-f]+\n│ second line\n└────$/);

    expect((await b.send(joiner, 'Reply from B [STANDBY]')).body).toBe('DELIVERED');
    const reply = await a.wait(host);
    expect(reply.body).toMatch(/^MESSAGE_RECEIVED\n┌─ Agent-[0-9a-f]{4} \[STANDBY\]\n│\n│ Reply from B\n└────$/);

    const ping = await a.ping(host);
    expect(ping.json).toEqual({ room_alive: true, partner_connected: true, partner_last_seen_ms: expect.any(Number), partner_presence: expect.any(String), paused: null });
    // Caddy's security headers are on every answer.
    expect(ping.headers['strict-transport-security']).toMatch(/max-age=\d+/);
    expect(ping.headers['x-content-type-options']).toBe('nosniff');
  });

  it("1b. pairing with the skill's own scripts (host.sh, join.sh, send.sh, wait.sh, ping.sh)", async () => {
    const hosted = await a.skill('host.sh');
    expect(hosted.code).toBe(0);
    const code = /^INVITE_CODE: (invite_[0-9a-f]{32})$/m.exec(hosted.stdout)![1];
    expect((await b.skill('join.sh', code)).code).toBe(0);
    expect((await a.skill('wait.sh', '--slice', '5')).stdout).toMatch(/^PARTNER_JOINED/);

    expect((await a.say('send.sh', 'Hello from the skill,\nline two [OVER]')).stdout).toMatch(/^DELIVERED/);
    const got = await b.skill('wait.sh', '--slice', '5');
    expect(got.stdout).toMatch(/^MESSAGE from=Agent-[0-9a-f]{4} signal=OVER\n/);
    expect(got.stdout).toContain('│ Hello from the skill,\n│ line two\n');
    expect((await b.say('send.sh', 'Got it [STANDBY]')).stdout).toMatch(/^DELIVERED/);
    expect((await a.skill('wait.sh', '--slice', '5')).stdout).toMatch(/^MESSAGE from=Agent-[0-9a-f]{4} signal=STANDBY\n[^]*│ Got it/);
    expect((await a.skill('ping.sh')).stdout).toMatch(/^ROOM_ALIVE: true\nPARTNER_CONNECTED: true\n/);
  });

  it('2. invite burning: a used code gets the same 404 as an unknown one; a listener code works once and makes the redeemer host', async () => {
    const setup = await a.setup();
    expect((await b.registerAndJoin(setup.json.code)).status).toBe(200);
    const again = await a.registerAndJoin(setup.json.code);
    const unknown = await a.registerAndJoin(`invite_${randomBytes(16).toString('hex')}`);
    expect(again.status).toBe(404);
    expect([again.status, again.body]).toEqual([unknown.status, unknown.body]);
    expect(again.json).toEqual({ error: expect.any(String), code: expect.any(String) });

    const listener = await b.setup('listener');
    expect(listener.json).toMatchObject({ code: expect.stringMatching(/^listen_[0-9a-f]{32}$/), role: 'joiner' });
    const redeemed = await a.registerAndJoin(listener.json.code);
    expect(redeemed.json).toMatchObject({ role: 'host', headless: true, status: '(2/2 connected)' });
    const twice = await b.registerAndJoin(listener.json.code);
    expect([twice.status, twice.body]).toEqual([unknown.status, unknown.body]);
  });

  it('3. STANDBY: both sides on standby pause the room, the next [OVER] resumes it', async () => {
    const { host, joiner } = await pair(a, b);
    expect((await a.send(host, 'My part is done [STANDBY]')).body).toBe('DELIVERED');
    expect(lines((await b.wait(joiner)).body)).toEqual(['My part is done']);
    expect((await b.send(joiner, 'Mine too [STANDBY]')).body).toBe('DELIVERED');
    expect(lines((await a.wait(host)).body)).toEqual(['Mine too']);
    const paused = /^MESSAGE_RECEIVED\n\[SYSTEM\]: Both agents are on STANDBY/;
    expect((await a.wait(host)).body).toMatch(paused);
    expect((await b.wait(joiner)).body).toMatch(paused);

    expect((await a.send(host, 'One more thing: the cron job runs at 02:00 UTC [OVER]')).body).toBe('DELIVERED');
    expect(lines((await b.wait(joiner)).body)).toEqual(['One more thing: the cron job runs at 02:00 UTC']);
    expect((await b.send(joiner, 'Noted, moving it to 03:00 [OVER]')).body).toBe('DELIVERED');
  });

  it('4. loop severing: a polite loop is paused with an alarm; a resumed loop is severed and both tokens die', async () => {
    const { host, joiner } = await pair(a, b);
    const thanks = ['Thanks so much, that was helpful!', 'Thank you too, great working with you!', 'Much appreciated, thanks again!', 'Likewise, thanks for the help!'];
    /** Trade thanks, alternating, until a send is refused; returns the refusal. */
    const loop = async () => {
      for (let turn = 0; turn < 30; turn++) {
        const [from, fromToken, to, toToken] = turn % 2 === 0 ? [a, host, b, joiner] : [b, joiner, a, host];
        const r = await from.send(fromToken, `${thanks[turn % thanks.length]} [OVER]`);
        if (r.status !== 200) return r;
        await to.wait(toToken);
      }
      throw new Error('the loop was never detected');
    };
    const first = await loop();
    expect(first.status).toBe(429);
    expect(first.json).toMatchObject({ code: 'loop_paused', error: expect.stringMatching(/^Loop detected/) });
    for (const [agent, token] of [[a, host], [b, joiner]] as const) {
      let alert = await agent.wait(token, 2);
      while (alert.status === 200 && !alert.body.startsWith('MESSAGE_RECEIVED\n[SYSTEM ALERT]')) alert = await agent.wait(token, 2);
      expect(alert.body).toMatch(/^MESSAGE_RECEIVED\n\[SYSTEM ALERT\]: Loop detected/);
    }
    expect((await a.resume(host)).json).toEqual({ ok: true });
    for (const [agent, token] of [[a, host], [b, joiner]] as const) expect((await agent.wait(token, 2)).body).toContain('resumed the session');

    const second = await loop();
    expect(second.status).toBe(429);
    expect(second.json.code).toBe('loop_severed');
    for (const [agent, token] of [[a, host], [b, joiner]] as const) {
      let told = await agent.wait(token, 2);
      while (told.status === 200 && !told.body.includes('severed')) told = await agent.wait(token, 2);
      expect(told.body).toMatch(/^MESSAGE_RECEIVED\n\[SYSTEM ALERT\]: .*severed/s);
      expect((await agent.ping(token)).status).toBe(401);
      expect((await agent.send(token, 'anyone there? [OVER]')).status).toBe(401);
    }
  });

  it('5. rate limiting through Caddy: one address gets 429 with Retry-After, another is unaffected, a forged X-Forwarded-For changes nothing', async () => {
    const greedy = stack.agents.greedy;
    // Every request claims to come from a different /24: were the header believed, no bucket would fill.
    const burst = await greedy.sh(
      `for i in $(seq 1 45); do
         curl -sS -o /dev/null -w '%{http_code}\\n' --cacert "$CA" -X POST -H "X-Forwarded-For: 198.51.$i.7" "https://${DOMAIN}/register"
       done`,
      { CA: '/etc/parley/root.crt' },
    );
    const codes = burst.stdout.trim().split('\n').map(Number);
    expect(codes.slice(0, 40).every((c) => c === 200)).toBe(true);
    expect(codes.slice(40).every((c) => c === 429)).toBe(true);

    const refused = await greedy.http('POST', '/register', { headers: { 'X-Forwarded-For': '203.0.113.50' } });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(refused.json).toEqual({ error: expect.stringMatching(/Rate limit exceeded/), code: 'rate_limited' });

    // Agent B sits on another network, in another /24: its bucket is untouched.
    expect(b.address.split('.').slice(0, 3)).not.toEqual(greedy.address.split('.').slice(0, 3));
    expect((await b.register()).status).toBe(200);
  });

  it('6. TLS: plain HTTP redirects; without the local CA verification fails, with it it succeeds', async () => {
    const plain = await a.http('GET', '', { url: `http://${DOMAIN}/health`, noCa: true });
    expect(plain.status).toBe(308);
    expect(plain.headers.location).toBe(`https://${DOMAIN}/health`);
    const untrusted = await a.http('GET', '/health', { noCa: true });
    expect(untrusted.status).toBe(0);
    expect(untrusted.curlExit).toBe(60); // CURLE_PEER_FAILED_VERIFICATION
    expect(untrusted.stderr).toMatch(/certificate/i);
    const trusted = await a.http('GET', '/health');
    expect([trusted.status, trusted.json]).toEqual([200, { ok: true }]);
  });

  it('7. SSH ↔ HTTP: an agent on ssh and a curl agent talk in one room', async () => {
    // Register over SSH and keep the token in ~/.ssh/config, never on a command line.
    const reg = await a.sh(`
      set -e
      out=$(ssh -p 2222 -o StrictHostKeyChecking=accept-new -o BatchMode=yes new@${SSH_HOST})
      tok=$(printf '%s\\n' "$out" | sed -n 's/^Your Parley token: //p')
      mkdir -p ~/.ssh
      printf 'Host parley\\n  HostName ${SSH_HOST}\\n  Port 2222\\n  User %s\\n  BatchMode yes\\n' "$tok" > ~/.ssh/config
      [ -n "$tok" ]`);
    expect(reg.code).toBe(0);

    // Bad commands get usage and an exit status at once.
    const bad = await a.sh('ssh parley dance; echo "exit=$?"');
    expect(bad.stdout).toBe('exit=2\n');
    expect(bad.stderr).toMatch(/Unknown command "dance"[^]*ssh -p 2222 TOKEN@parley\.test join CODE/);

    // An interactive session fed through a FIFO, its output in a file.
    await a.sh(`mkfifo /tmp/ssh.in
      setsid bash -c 'ssh parley create < /tmp/ssh.in > /tmp/ssh.out 2>&1; echo $? > /tmp/ssh.exit' &
      setsid sleep infinity > /tmp/ssh.in &
      echo $! > /tmp/ssh.holder`);
    const output = async (pattern: RegExp) => {
      let out = '';
      await until(async () => pattern.test((out = (await a.sh('cat /tmp/ssh.out')).stdout)), `ssh output ${pattern}`);
      return out;
    };
    const code = /Invite code: (invite_[0-9a-f]{32})/.exec(await output(/Invite code: invite_/))![1];
    const joined = await b.registerAndJoin(code);
    expect(joined.json.role).toBe('joiner');
    const joiner = joined.json.token;
    await output(/has joined\. Session is live!/);

    await a.sh('printf "%s\\n" "$MSG" > /tmp/ssh.in', { MSG: `Hello over SSH, ${CANARY} [OVER]` });
    await output(/\[DELIVERED\]/);
    expect(lines((await b.wait(joiner)).body)).toEqual([`Hello over SSH, ${CANARY}`]);

    expect((await b.send(joiner, `Hello back over HTTPS, ${CANARY} [OVER]`)).body).toBe('DELIVERED');
    const out = await output(/Hello back over HTTPS/);
    expect(out).toMatch(new RegExp(`MESSAGE_RECEIVED\\n┌─ Agent-[0-9a-f]{4} \\[OVER\\]\\n│\\n│ Hello back over HTTPS, ${CANARY}\\n└────\\n`));

    // Closing the SSH input leaves the room: the curl agent is told, ssh exits 0.
    await a.sh('kill "$(cat /tmp/ssh.holder)"');
    await until(async () => (await a.sh('cat /tmp/ssh.exit')).stdout.trim() !== '', 'the ssh session to end');
    expect((await a.sh('cat /tmp/ssh.exit')).stdout.trim()).toBe('0');
    expect((await b.wait(joiner)).body).toMatch(/^MESSAGE_RECEIVED\n\[SYSTEM\]: /);
  });

  it('7b. MCP through Caddy: a JSON-RPC session over HTTPS, progress streamed uncompressed before the result, a curl partner', async () => {
    const init = await mcp(a, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'e2e', version: '1' } } });
    expect(init.status).toBe(200);
    const sid = init.headers['mcp-session-id'];
    expect(sid).toMatch(/^[0-9a-f-]{36}$/);
    expect((await mcp(a, { jsonrpc: '2.0', method: 'notifications/initialized' }, sid)).status).toBe(202);
    const started = await mcp(a, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'parley_start', arguments: {} } }, sid);
    const joined = await b.registerAndJoin(started.result(2).structuredContent.code);
    expect(joined.status).toBe(200);
    const notice = await mcp(a, { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'parley_wait', arguments: { timeout_s: 5 } } }, sid);
    expect(notice.result(3).structuredContent.event.kind).toBe('partner_joined');

    // A wait in the background, its stream written to a file as it arrives.
    const body = { jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'parley_wait', arguments: { timeout_s: 60 }, _meta: { progressToken: 'p1' } } };
    await a.sh(`(${MCP_CURL}) > /tmp/mcp-wait.out 2>&1 &`, { SID: sid, BODY: JSON.stringify(body), CA: CA_PATH, URL: `https://${DOMAIN}/mcp` });
    const streamed = async () => (await a.sh('cat /tmp/mcp-wait.out')).stdout;
    await until(async () => (await streamed()).includes('notifications/progress'), 'a progress notification through Caddy');
    expect(await streamed()).not.toContain('"result"');
    expect((await b.send(joined.json.token, `Over MCP, ${CANARY} [OVER]`)).body).toBe('DELIVERED');
    await until(async () => (await streamed()).includes('"result"'), 'the wait result through Caddy');
    const done = sse(await streamed());
    expect(done.headers['content-type']).toBe('text/event-stream');
    expect(done.headers['content-encoding']).toBeUndefined();
    expect(done.result(4).structuredContent.event).toMatchObject({ kind: 'message', signal: 'OVER', untrusted_text: `Over MCP, ${CANARY}` });
  });

  it('8. privacy: the canary sent in messages appears in no container log', async () => {
    const { host, joiner } = await pair(b, a);
    expect((await b.send(host, `Secret plan: ${CANARY} [OVER]`)).body).toBe('DELIVERED');
    expect(lines((await a.wait(joiner)).body)).toEqual([`Secret plan: ${CANARY}`]);
    const logs = await stack.logs();
    // The logs are there and verbose (so the check can fail): requests and SSH sessions were logged.
    expect(logs.broker).toMatch(/"route":"\/send"/);
    expect(logs.ssh).toMatch(/ssh session ended/);
    for (const [name, text] of Object.entries(logs)) {
      expect(text.includes(CANARY), `${name} log holds the canary`).toBe(false);
      expect(/tok_[0-9a-f]{32}/.test(text), `${name} log holds a token`).toBe(false);
    }
  });

  it('9. restart: after the broker restarts, old tokens get 401 and the room is gone', async () => {
    const { host, joiner } = await pair(a, b);
    const spare = await a.setup();
    await stack.restartBroker();
    for (const [agent, token] of [[a, host], [b, joiner], [a, spare.json.token]] as const) {
      expect((await agent.ping(token)).status).toBe(401);
      expect((await agent.send(token, 'still there? [OVER]')).status).toBe(401);
    }
    expect((await b.registerAndJoin(spare.json.code)).status).toBe(404);
    // The new broker works: a fresh pair talks.
    const fresh = await pair(a, b);
    expect((await a.send(fresh.host, 'after the restart [OVER]')).body).toBe('DELIVERED');
  });
});
