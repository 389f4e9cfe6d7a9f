/**
 * The A2A door, outbound: a curl participant dials a stub agent built on @a2a-js/sdk 1.3.0's server
 * pieces, through a real broker; and the SSRF refusals (loopback, cloud metadata, a redirect to a
 * private address, a DNS name resolving to loopback).
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AgentCard, Role, TaskState } from '@a2a-js/sdk';
import { AgentEvent, DefaultRequestHandler, InMemoryTaskStore, JsonRpcTransportHandler, ServerCallContext, type AgentExecutor } from '@a2a-js/sdk/server';
import { afterEach, describe, expect, it } from 'vitest';
import { nextEvent, nextMessage } from './a2a-helpers.js';
import { broker, client, messageLines } from './helpers.js';

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** An A2A agent on the SDK's request handler: "echo: <text>", asking for input until told to finish. */
async function stubAgent() {
  const seen: { path: string; authorization?: string; contextId?: string; taskId?: string }[] = [];
  const server = http.createServer();
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const cardJson = {
    name: 'Echo agent',
    description: 'Echoes',
    version: '1.0.0',
    supportedInterfaces: [{ url: `${base}/rpc`, protocolBinding: 'JSONRPC', protocolVersion: '1.0' }],
    capabilities: { streaming: false },
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['text/plain'],
    skills: [{ id: 'echo', name: 'Echo', description: 'Echoes', tags: [] }],
  };
  const executor: AgentExecutor = {
    async execute(rc, bus) {
      const text = rc.userMessage.parts.map((p) => (p.content?.$case === 'text' ? p.content.value : '')).join('');
      const done = text.includes('finish');
      const parts = [{ content: { $case: 'text' as const, value: `echo: ${text}` }, metadata: undefined, filename: '', mediaType: 'text/plain' }];
      const reply = { messageId: randomUUID(), contextId: rc.contextId, taskId: rc.taskId, role: Role.ROLE_AGENT, parts, metadata: undefined, extensions: [], referenceTaskIds: [] };
      bus.publish(
        AgentEvent.task({
          id: rc.taskId,
          contextId: rc.contextId,
          status: { state: done ? TaskState.TASK_STATE_COMPLETED : TaskState.TASK_STATE_INPUT_REQUIRED, message: done ? undefined : reply, timestamp: new Date().toISOString() },
          artifacts: done ? [{ artifactId: 'result', name: 'result', description: '', parts, metadata: undefined, extensions: [] }] : [],
          history: [rc.userMessage],
          metadata: undefined,
        }),
      );
      bus.finished();
    },
    async cancelTask() {},
  };
  const rpc = new JsonRpcTransportHandler(new DefaultRequestHandler(AgentCard.fromJSON(cardJson), new InMemoryTaskStore(), executor));
  server.on('request', async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const path = req.url ?? '/';
    if (path === '/.well-known/agent-card.json') {
      seen.push({ path, authorization: req.headers.authorization });
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(cardJson));
    }
    if (path.startsWith('/redirect-to/')) {
      res.writeHead(302, { location: decodeURIComponent(path.slice('/redirect-to/'.length)) });
      return res.end();
    }
    const message = JSON.parse(body).params?.message ?? {};
    seen.push({ path, authorization: req.headers.authorization, contextId: message.contextId, taskId: message.taskId });
    const out = await rpc.handle(body, new ServerCallContext({ requestedVersion: String(req.headers['a2a-version'] ?? '0.3') }));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(out));
  });
  return { base, cardUrl: `${base}/.well-known/agent-card.json`, seen };
}

async function room(env: Record<string, string> = {}) {
  const b = await broker(env);
  const api = client(b.url);
  const s = (await api.setup({ type: 'standard' })).json;
  const dial = (body: object) => api.call('POST', '/a2a/dial', { token: s.token, type: 'application/json', body: JSON.stringify({ code: s.code, ...body }) });
  return { api, token: s.token as string, code: s.code as string, dial };
}

describe('A2A door: dialing out', () => {
  it('brings an SDK agent into the room: answers come back [OVER] while it wants input, [STANDBY] once completed, in one context', async () => {
    const agent = await stubAgent();
    const { api, token, dial } = await room({ A2A_DIAL_ALLOW: '127.0.0.1' });
    const dialed = await dial({ cardUrl: agent.cardUrl, key: 'agent-key-1' });
    expect(dialed.status).toBe(200);
    expect(dialed.json).toMatchObject({ ok: true, agent: { name: 'Echo agent', protocolVersion: '1.0' }, agentId: expect.stringMatching(/^Agent-[0-9a-f]{4}$/) });
    expect((await nextEvent(api, token)).kind).toBe('partner_joined');

    await api.send(token, 'hello there [OVER]');
    const first = await nextMessage(api, token);
    expect(first).toContain(`${dialed.json.agentId} [OVER]`);
    expect(messageLines(first)).toEqual(['echo: hello there']);
    await api.send(token, 'please finish [OVER]');
    const second = await nextMessage(api, token);
    expect(second).toContain('[STANDBY]');
    expect(messageLines(second)).toEqual(['echo: please finish']);

    const calls = agent.seen.filter((s) => s.path === '/rpc');
    expect(calls).toHaveLength(2);
    expect(calls.every((c) => c.authorization === 'Bearer agent-key-1')).toBe(true);
    expect(calls[1].contextId).toBeTruthy();
    // The task that wanted input is continued by the next message.
    expect(calls[1].taskId).toBeTruthy();
    expect(agent.seen.find((s) => s.path === '/.well-known/agent-card.json')?.authorization).toBeUndefined();

    // The participant leaving closes the room; the proxy leaves with it.
    await api.leave(token);
  });

  it('dials a v0.3 agent (its agent.json card and message/send shapes)', async () => {
    const server = http.createServer();
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const methods: string[] = [];
    server.on('request', async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      res.writeHead(200, { 'content-type': 'application/json' });
      if (req.method === 'GET') return res.end(JSON.stringify({ protocolVersion: '0.3.0', name: 'Old agent', url: `${base}/rpc`, preferredTransport: 'JSONRPC', capabilities: {}, skills: [] }));
      const rpc = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      methods.push(rpc.method);
      const text = rpc.params.message.parts[0].text;
      res.end(JSON.stringify({ jsonrpc: '2.0', id: rpc.id, result: { kind: 'task', id: 't1', contextId: 'c1', status: { state: 'completed' }, artifacts: [{ artifactId: 'a', parts: [{ kind: 'text', text: `old echo: ${text}` }] }] } }));
    });
    const { api, token, dial } = await room({ A2A_DIAL_ALLOW: '127.0.0.1' });
    expect((await dial({ cardUrl: `${base}/.well-known/agent.json` })).json).toMatchObject({ agent: { name: 'Old agent', protocolVersion: '0.3' } });
    await api.send(token, 'ping [OVER]');
    const got = await nextMessage(api, token);
    expect(got).toContain('[STANDBY]');
    expect(messageLines(got)).toEqual(['old echo: ping']);
    expect(methods).toEqual(['message/send']);
  });

  it('an unreachable agent endpoint comes back as a short [STANDBY] line, never with the participant text', async () => {
    const agent = await stubAgent();
    const { api, token, dial } = await room({ A2A_DIAL_ALLOW: '127.0.0.1' });
    expect((await dial({ cardUrl: agent.cardUrl })).status).toBe(200);
    await nextEvent(api, token);
    await new Promise((r) => servers[0].close(r));
    servers.splice(0);
    await api.send(token, 'PRIVATE-WORDS-7 [OVER]');
    const got = await nextMessage(api, token);
    expect(got).toContain('[STANDBY]');
    expect(messageLines(got).join('\n')).toMatch(/^\(The A2A agent could not be reached: .*\)$/);
    expect(got).not.toContain('PRIVATE-WORDS-7');
  });

  it('refuses loopback, cloud metadata, a redirect to a private address and a name resolving to loopback, and the code still works', async () => {
    const agent = await stubAgent();
    const port = new URL(agent.base).port;
    const { api, code, dial } = await room();
    const refusals = [
      `http://127.0.0.1:${port}/.well-known/agent-card.json`,
      'http://169.254.169.254/latest/meta-data/',
      `http://[::1]:${port}/.well-known/agent-card.json`,
      `http://localhost:${port}/.well-known/agent-card.json`,
      'file:///etc/passwd',
      `http://user:pw@127.0.0.1:${port}/`,
    ];
    for (const cardUrl of refusals) {
      const r = await dial({ cardUrl });
      expect(r.status, cardUrl).toBe(400);
      expect(r.json.code).toBe('bad_body');
      expect(r.json.error).toMatch(/^Cannot dial: /);
    }
    expect(agent.seen).toEqual([]);

    // Loopback allowed (as tests need), but a redirect from there to a private or metadata address is refused.
    const allowed = await room({ A2A_DIAL_ALLOW: '127.0.0.1' });
    for (const target of ['http://10.1.2.3/card.json', 'http://169.254.169.254/latest/meta-data/', 'http://[fd00::1]/card.json']) {
      const r = await allowed.dial({ cardUrl: `${agent.base}/redirect-to/${encodeURIComponent(target)}` });
      expect(r.status, target).toBe(400);
      expect(r.json.error).toMatch(/does not dial/);
    }
    // Nothing was burned: the room's code is still good.
    expect((await api.registerAndJoin(code)).status).toBe(200);
  });

  it('refuses a dial without a token, outside a fresh room, or with a bad body', async () => {
    const { api, dial } = await room();
    expect((await api.call('POST', '/a2a/dial', { type: 'application/json', body: '{}' })).json.code).toBe('unauthorized');
    for (const body of [{}, { cardUrl: 5 }, { cardUrl: 'http://x', code: 'nope' }, { cardUrl: 'http://x', key: 7 }]) {
      const r = await dial(body);
      expect(r.status).toBe(400);
      expect(r.json.code).toBe('bad_body');
    }
  });
});
