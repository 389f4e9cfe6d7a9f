/**
 * The A2A door end to end, through Caddy over HTTPS: a curl agent in its own container (on its
 * own LAN) listens and publishes itself as an A2A agent; @a2a-js/sdk's client on the host calls
 * it at https://parley.test through Caddy's published port, trusting only Caddy's local root CA
 * (copied out of the Caddy container). The host name stays parley.test for TLS and Host: only
 * the connection is pointed at Caddy's mapped port, by the client's undici dispatcher.
 *
 * A small stack of its own, built from the same images as the appliance suite: two brokers on
 * one Redis (as docker-compose.redis.yml runs them), Caddy balancing across both, one agent. A
 * published agent lives in one broker's memory, so this passes only if Caddy sends every /a2a
 * request to the same broker while the listener's own calls go to either.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import type { Message, Task } from '@a2a-js/sdk';
import { TaskState } from '@a2a-js/sdk';
import { ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver, JsonRpcTransportFactory, RestTransportFactory, type Client } from '@a2a-js/sdk/client';
import { GenericContainer, getContainerRuntimeClient, Network, StartedNetwork, type StartedTestContainer, Wait } from 'testcontainers';
import { Agent as Dispatcher, buildConnector, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendParams as params, userMessage } from '../broker/test/a2a-messages.js';
import { Agent, BROKER_IMAGE, buildImages, CA_PATH, CADDY_IMAGE, DOMAIN, until } from './stack.js';

const run = promisify(execFile);
const CADDY_ROOT_CERT = '/data/caddy/pki/authorities/local/root.crt';
const CANARY = `a2a-canary-${randomBytes(6).toString('hex')}`;

const started: StartedTestContainer[] = [];
const networks: StartedNetwork[] = [];
let listener: Agent;
const brokers: StartedTestContainer[] = [];
let caCert: string;
let caddyPort: number;

beforeAll(async () => {
  await buildImages();
  const client = await getContainerRuntimeClient();
  const core = await new Network().start();
  // The agent's LAN is internal: no gateway of its own, so Caddy's default route stays on the core
  // network and its published port answers (a second gateway-bearing network could take the route).
  const lanName = `parley-e2e-a2a-lan-${process.pid}-${randomBytes(4).toString('hex')}`;
  const lan = new StartedNetwork(client, lanName, await client.network.create({ Name: lanName, Driver: 'bridge', Internal: true, CheckDuplicate: true }));
  networks.push(core, lan);
  const subnet = (await client.network.getById(core.getId()).inspect()).IPAM?.Config?.[0]?.Subnet;
  if (!subnet) throw new Error('the core network has no subnet');

  const redis = await new GenericContainer('redis:7')
    .withCommand(['redis-server', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'])
    .withNetwork(core)
    .withNetworkAliases('redis')
    .withWaitStrategy(Wait.forLogMessage(/Ready to accept connections/))
    .start();
  started.push(redis);
  const secret = randomBytes(32).toString('hex');
  for (let i = 0; i < 2; i++) {
    const b = await new GenericContainer(BROKER_IMAGE)
      .withNetwork(core)
      .withNetworkAliases('broker')
      .withEnvironment({ TRUSTED_PROXIES: subnet, PUBLIC_URL: `https://${DOMAIN}`, LOG_LEVEL: 'trace', STATE_URL: 'redis://redis:6379', PARLEY_SECRET: secret })
      .withWaitStrategy(Wait.forLogMessage(/broker listening/))
      .start();
    started.push(b);
    brokers.push(b);
  }
  const caddy = await new GenericContainer(CADDY_IMAGE)
    .withNetwork(core)
    .withEnvironment({ PARLEY_DOMAIN: DOMAIN, PARLEY_TLS: 'internal' })
    .withExposedPorts(443)
    .withWaitStrategy(Wait.forLogMessage(/serving initial configuration/))
    .start();
  started.push(caddy);
  await client.container.connectToNetwork(client.container.getById(caddy.getId()), client.network.getById(lan.getId()), [DOMAIN]);
  caddyPort = caddy.getMappedPort(443);

  await until(async () => {
    const r = await caddy.exec(['cat', CADDY_ROOT_CERT]);
    caCert = r.stdout;
    return r.exitCode === 0 && caCert.includes('BEGIN CERTIFICATE');
  }, "Caddy's local root certificate");
  const c = await new GenericContainer('local/curl-agent:bookworm').withCommand(['sleep', 'infinity']).withNetwork(lan).start();
  started.push(c);
  await c.copyContentToContainer([{ content: caCert, target: CA_PATH }]);
  listener = new Agent('listener', c, c.getIpAddress(lan.getName()));
  await until(async () => (await listener.http('GET', '/health')).status === 200, 'Caddy serving /health over HTTPS');
  await until(async () => (await hostFetch(caCert)(`https://${DOMAIN}/health`)).status === 200, "Caddy's published port answering the host");
});

afterAll(async () => {
  await Promise.allSettled(started.map((c) => c.stop({ remove: true })));
  await Promise.allSettled(networks.map((n) => n.stop()));
});

/**
 * fetch for the host's A2A client: https://parley.test as the URL, the TLS name and the Host
 * header, connected to Caddy's mapped port; verified against Caddy's root CA only (`ca` given,
 * verification on, as always).
 */
function hostFetch(ca: string | undefined): typeof fetch {
  const connect = buildConnector(ca ? { ca } : {});
  const dispatcher = new Dispatcher({ connect: (opts, cb) => connect({ ...opts, hostname: '127.0.0.1', port: String(caddyPort), servername: DOMAIN }, cb) });
  return ((url: string, init?: RequestInit) => undiciFetch(url, { ...(init as object), dispatcher })) as unknown as typeof fetch;
}

function sdkClient(agentUrl: string, fetchImpl: typeof fetch): Promise<Client> {
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl }), new RestTransportFactory({ fetchImpl })],
      cardResolver: new DefaultAgentCardResolver({ fetchImpl }),
      preferredTransports: ['JSONRPC'],
    }),
  );
  return factory.createFromUrl(`${agentUrl}/`);
}

const textOf = (m: { parts: Message['parts'] } | undefined) => (m?.parts ?? []).map((p) => (p.content?.$case === 'text' ? p.content.value : '')).join('\n');

/** The listener's next partner message as text lines (skipping notices); throws when none comes. */
async function heard(token: string): Promise<string[]> {
  for (let i = 0; i < 6; i++) {
    const r = await listener.wait(token, 10);
    if (r.headers['parley-event'] === 'message') return r.body.split('\n').slice(3, -1).map((l) => l.replace(/^│ ?/, ''));
  }
  throw new Error('no message reached the listener');
}

/** A step that must happen; a poller that gives up throws (never a timing assertion). */
function orGiveUp<T>(p: Promise<T>, what: string, ms = 60_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const giveUp = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up waiting for ${what}`)), ms);
  });
  return Promise.race([p, giveUp]).finally(() => clearTimeout(timer));
}

describe('A2A through Caddy over HTTPS, two brokers on Redis', () => {
  it('a curl listener publishes itself; the SDK client on the host talks to it: blocking, streamed event by event through Caddy, then hangs up', async () => {
    const setup = await listener.setup('listener');
    expect(setup.status).toBe(200);
    const token = setup.json.token as string;
    const pub = await listener.http('POST', '/a2a/publish', { token, body: JSON.stringify({ listenerCode: setup.json.code, name: 'Build helper', description: 'Answers build questions' }) });
    expect(pub.status).toBe(200);
    expect(pub.json.url).toMatch(new RegExp(`^https://${DOMAIN.replace('.', '\\.')}/a2a/[0-9a-f]{24}$`));
    const auth = { serviceParameters: { Authorization: `Bearer ${pub.json.accessKey}` } };

    // Verification is on: without Caddy's root CA the card cannot be fetched.
    await expect(hostFetch(undefined)(pub.json.agentCardUrl)).rejects.toMatchObject({ cause: { code: expect.stringMatching(/CERT|SIGNATURE/) } });
    const fetchImpl = hostFetch(caCert);
    const card = await (await fetchImpl(pub.json.agentCardUrl)).json();
    expect(card.supportedInterfaces[0]).toEqual({ url: pub.json.url, protocolBinding: 'JSONRPC', protocolVersion: '1.0' });
    const a2a = await sdkClient(pub.json.url, fetchImpl);

    // Blocking: the caller's message reaches the curl listener; its [OVER] is the caller's turn.
    const blocking = a2a.sendMessage(params(userMessage(`Is the build green? ${CANARY} [OVER]`)), auth);
    expect(await heard(token)).toEqual([`Is the build green? ${CANARY}`]);
    expect((await listener.send(token, 'Which branch? [OVER]')).body).toBe('DELIVERED');
    const task = (await orGiveUp(blocking, 'the blocking SendMessage')) as Task;
    expect(task.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED);
    expect(textOf(task.status?.message)).toBe('Which branch?');

    // Streaming: the WORKING task arrives while the listener has not answered yet, so Caddy passes
    // each event on as the broker writes it (a buffering proxy would hold it until the stream ends).
    const stream = a2a.sendMessageStream(params(userMessage('main [OVER]', { taskId: task.id, contextId: task.contextId })), auth)[Symbol.asyncIterator]();
    const first = await orGiveUp(stream.next(), 'the first streamed event before the listener answers');
    expect(first.value?.payload?.$case).toBe('task');
    expect((first.value?.payload?.value as Task).status?.state).toBe(TaskState.TASK_STATE_WORKING);
    expect(await heard(token)).toEqual(['main']);
    expect((await listener.send(token, 'Green on main. [STANDBY]')).body).toBe('DELIVERED');
    const rest: string[] = [];
    for (let r = await orGiveUp(stream.next(), 'the streamed reply'); !r.done; r = await orGiveUp(stream.next(), 'the end of the stream')) rest.push(r.value.payload!.$case!);
    expect(rest).toEqual(['artifactUpdate', 'statusUpdate']);
    const done = await a2a.getTask({ tenant: '', id: task.id }, auth);
    expect(done.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(done.artifacts.map((a) => textOf(a))).toEqual(['Green on main.']);
    expect(done.metadata).toEqual({ parleyRoom: { inRoom: true, partner: true, paused: null } });

    // The caller hangs up (CancelTask): the listener is told and stays in its room.
    const open = (await a2a.sendMessage(params(userMessage('One more question [OVER]', { contextId: task.contextId }), { returnImmediately: true }), auth)) as Task;
    expect(await heard(token)).toEqual(['One more question']);
    expect((await a2a.cancelTask({ tenant: '', id: open.id, metadata: undefined }, auth)).status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    expect((await listener.wait(token, 10)).headers['parley-event']).toBe('partner_left');
    expect((await listener.ping(token)).json).toMatchObject({ room_alive: true, partner_connected: false });

    // Neither the caller's words nor the access key reached a broker's log.
    let text = '';
    for (const b of brokers) {
      const { stdout, stderr } = await run('docker', ['logs', b.getId()], { maxBuffer: 256 * 1024 * 1024 });
      text += stdout + stderr;
    }
    expect(text.length).toBeGreaterThan(0);
    for (const secret of [CANARY, pub.json.accessKey, token]) expect(text).not.toContain(secret);
  });

  it('SSE through Caddy: text/event-stream, not compressed, even when the client offers gzip and zstd', async () => {
    const setup = await listener.setup('listener');
    const token = setup.json.token as string;
    const pub = await listener.http('POST', '/a2a/publish', { token, body: JSON.stringify({ listenerCode: setup.json.code, name: 'Stream check', open: true }) });
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'SendStreamingMessage', params: { message: { messageId: 'm1', role: 'ROLE_USER', parts: [{ text: 'stream? [OVER]' }] } } });
    const res = await orGiveUp(
      hostFetch(caCert)(pub.json.url, { method: 'POST', headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip, zstd', 'a2a-version': '1.0' }, body }),
      'the stream to open',
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('content-encoding')).toBeNull();
    const reader = res.body!.getReader();
    const chunk = await orGiveUp(reader.read(), 'the first event before the listener answers');
    expect(new TextDecoder().decode(chunk.value)).toMatch(/^data: .*"TASK_STATE_WORKING"/);
    expect(await heard(token)).toEqual(['stream?']);
    await listener.send(token, 'yes [OVER]');
    let tail = '';
    for (let r = await orGiveUp(reader.read(), 'the reply'); !r.done; r = await orGiveUp(reader.read(), 'the end of the stream')) tail += new TextDecoder().decode(r.value);
    expect(tail).toContain('"TASK_STATE_INPUT_REQUIRED"');
  });
});
