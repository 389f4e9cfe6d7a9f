/**
 * The appliance end to end: real images, agents in their own containers at their own addresses,
 * everything through Caddy over HTTPS (or the SSH broker). Scenarios share one stack but nothing
 * else: each starts its own agents (own /24s, so its own rate-limit budget) and opens its own
 * rooms, and none needs another to have run before it (`--sequence.shuffle` runs them in any
 * order). The restart scenario waits until the broker is ready again before it ends.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectCodesBurn, expectLoopSevered, expectStandbyPause, JOINED, lines, pair } from './conversation.js';
import { type Agent, CA_PATH, DOMAIN, parseResponse, SSH_HOST, type Stack, stack as build, until } from './stack.js';

let stack: Stack;
const CANARY = `canary-${randomBytes(6).toString('hex')}`;

beforeAll(async () => {
  stack = await build()
    .withSsh()
    // Low enough for scenario 5 to hit quickly, high enough for every other scenario's setup calls.
    .withEnv({ RATE_ANON_PER_MIN: '40', MCP_PROGRESS_S: '1' })
    .start();
});

/** Two fresh agents, each on a LAN and /24 of its own. */
const twoAgents = () => stack.agents(2) as Promise<[Agent, Agent]>;

afterAll(async () => {
  await stack?.stop();
});

/** Register over SSH and keep the token in ~/.ssh/config (host `parley`), never on a command line. */
function sshLogin(agent: Agent) {
  return agent.sh(`
    set -e
    out=$(ssh -p 2222 -o StrictHostKeyChecking=accept-new -o BatchMode=yes new@${SSH_HOST})
    tok=$(printf '%s\\n' "$out" | sed -n 's/^Your Parley token: //p')
    mkdir -p ~/.ssh
    printf 'Host parley\\n  HostName ${SSH_HOST}\\n  Port 2222\\n  User %s\\n  BatchMode yes\\n' "$tok" > ~/.ssh/config
    [ -n "$tok" ]`);
}

// One JSON-RPC POST to /mcp as an MCP client sends it (gzip offered, so a compressing proxy would show).
const MCP_CURL = `
args=(-sS -N -i --cacert "$CA" -X POST -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' -H 'accept-encoding: gzip, zstd')
[ -n "\${SID:-}" ] && args+=(-H "mcp-session-id: $SID")
curl "\${args[@]}" --data-binary @<(printf %s "$BODY") "$URL"
`;

/** A raw response of /mcp: status, headers, and the JSON-RPC result with a given id from its event stream. */
function sse(raw: string) {
  const { status, headers, body } = parseResponse(raw);
  const messages = body.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
  return {
    status,
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
    const [a, b] = await twoAgents();
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
    const [a, b] = await twoAgents();
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
    const [a, b] = await twoAgents();
    await expectCodesBurn(a, b, [a]);
  });

  it('3. STANDBY: both sides on standby pause the room, the next [OVER] resumes it', async () => {
    const [a, b] = await twoAgents();
    const { host, joiner } = await pair(a, b);
    await expectStandbyPause(a, host, b, joiner);
  });

  it('4. loop severing: a polite loop is paused with an alarm; a resumed loop is severed and both tokens die', async () => {
    const [a, b] = await twoAgents();
    const { host, joiner } = await pair(a, b);
    await expectLoopSevered(a, host, b, joiner);
  });

  it('5. rate limiting through Caddy: one address gets 429 with Retry-After, another is unaffected, a forged X-Forwarded-For changes nothing', async () => {
    const [greedy, b] = await twoAgents();
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
    const [a] = await stack.agents(1);
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
    const [a, b] = await twoAgents();
    expect((await sshLogin(a)).code).toBe(0);

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
    const [a, b] = await twoAgents();
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

  it('8. privacy: the canary sent in messages (over HTTPS and SSH) appears in no container log', async () => {
    const [a, b] = await twoAgents();
    const { host, joiner } = await pair(b, a);
    expect((await b.send(host, `Secret plan: ${CANARY} [OVER]`)).body).toBe('DELIVERED');
    expect(lines((await a.wait(joiner)).body)).toEqual([`Secret plan: ${CANARY}`]);
    // The same canary over SSH: an agent joins a room with ssh, says it, and hangs up.
    const room = await b.setup();
    expect((await sshLogin(a)).code).toBe(0);
    const said = await a.sh(`printf '%s\\n' "$MSG" | ssh parley join "$CODE"`, { MSG: `Over SSH: ${CANARY} [OVER]`, CODE: room.json.code });
    expect(said.code).toBe(0);
    expect((await b.wait(room.json.token)).body).toMatch(JOINED);
    expect(lines((await b.wait(room.json.token)).body)).toEqual([`Over SSH: ${CANARY}`]);
    const logs = await stack.logs();
    // The logs are there and verbose (so the check can fail): requests and SSH sessions were logged.
    expect(logs.broker0).toMatch(/"route":"\/send"/);
    expect(logs.ssh).toMatch(/ssh session ended/);
    for (const [name, text] of Object.entries(logs)) {
      expect(text.includes(CANARY), `${name} log holds the canary`).toBe(false);
      expect(/tok_[0-9a-f]{32}/.test(text), `${name} log holds a token`).toBe(false);
    }
  });

  it('9. restart: after the broker restarts, old tokens get 401 and the room is gone', async () => {
    const [a, b] = await twoAgents();
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
