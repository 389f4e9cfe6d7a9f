/**
 * The appliance under test, built from the repository's Dockerfiles and started by a small builder:
 *
 *   const s = await stack()              // Caddy (proxy/Dockerfile) + one broker, memory state
 *     .withBrokers(3)                    // N brokers, all under the alias `broker` (Caddy: `dynamic a broker 3000`)
 *     .withRedis()                       // redis:7 as docker-compose.redis.yml runs it; STATE_URL + one PARLEY_SECRET
 *     .withSsh()                         // the SSH broker (BROKER_URL=http://broker:3000), reachable as ssh.parley.test
 *     .withEnv({ RATE_ANON_PER_MIN: '40' }) // extra broker settings
 *     .start();                          // builds both images once per process, waits until Caddy serves /health
 *   const [a, b] = await s.agents(2);    // curl agents, each on its own LAN with its own /24 (own rate budget),
 *                                        // reaching https://parley.test through Caddy with Caddy's root CA (never -k)
 *   const p = await s.pinnedAgent(1);    // an agent on its own /24 whose only path is plain HTTP to broker 1 itself
 *   await s.brokerGet(0, '/ready');      // the operator's view from inside broker 0's container ({status, json, text})
 *   await s.killBroker(0); await s.startBroker(0);  // docker kill / docker start, then wait until it is ready
 *   await s.pauseBroker(0); await s.unpauseBroker(0); // requests reach it and hang until it resumes
 *   await s.restartBroker(0);            // docker restart (SIGTERM, drain), then wait until Caddy reaches it again
 *   await s.stopRedis(); await s.startRedis();
 *   await s.logs(); await s.stop();
 *
 * Rules for scenarios: each opens its own rooms and its own agents (so its own rate-limit budget),
 * and leaves every broker and Redis running when it ends (start again what you kill, in `finally`).
 * Images are tagged per checkout so concurrent runs from other checkouts on a shared Docker engine
 * never swap theirs in; networks and containers carry random names and are removed by `stop()`.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  GenericContainer,
  getContainerRuntimeClient,
  StartedNetwork,
  Wait,
  type ContainerRuntimeClient,
  type StartedTestContainer,
} from 'testcontainers';
import { parse } from 'yaml';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const DOMAIN = 'parley.test';
export const SSH_HOST = `ssh.${DOMAIN}`;
export const CA_PATH = '/etc/parley/root.crt';
/** The skill's scripts, as an agent installs them. */
export const SKILL_DIR = '/opt/parley-skill/scripts';
const CADDY_ROOT_CERT = '/data/caddy/pki/authorities/local/root.crt';
/** A pinned agent's name for the one broker it reaches. */
const PINNED_HOST = 'pinned-broker';
// CI seeds node:20-bookworm-slim only; with Docker Hub access any supported LTS works.
const NODE_VERSION = process.env.PARLEY_E2E_NODE_VERSION ?? '20';
// Tagged per checkout: on a shared Docker engine another checkout's run never swaps its images in.
const CHECKOUT = createHash('sha256').update(ROOT).digest('hex').slice(0, 10);
export const BROKER_IMAGE = `parley-broker:e2e-${CHECKOUT}`;
export const CADDY_IMAGE = `parley-caddy:e2e-${CHECKOUT}`;

const run = promisify(execFile);

let built: Promise<void> | undefined;
/** Both images, built from the repository as users build them, once per process (the layer cache makes reruns quick). */
export function buildImages(): Promise<void> {
  built ??= (async () => {
    await GenericContainer.fromDockerfile(ROOT).withBuildArgs({ NODE_VERSION }).build(BROKER_IMAGE, { deleteOnExit: false });
    await GenericContainer.fromDockerfile(ROOT, 'proxy/Dockerfile').build(CADDY_IMAGE, { deleteOnExit: false });
  })();
  return built;
}

/** The shipped compose files, so the stack runs services the way they do. */
function composeService(file: string, service: string): any {
  return parse(readFileSync(resolve(ROOT, file), 'utf8')).services[service];
}

/** A bridge network with a fixed subnet (random per run, so concurrent runs and leftovers don't clash). */
async function network(client: ContainerRuntimeClient, name: string): Promise<{ net: StartedNetwork; subnet: string }> {
  for (let attempt = 0; ; attempt++) {
    const subnet = `10.${randomInt(150, 250)}.${randomInt(0, 255)}.0/24`;
    const full = `parley-e2e-${name}-${process.pid}-${randomInt(1e6)}`;
    try {
      const created = await client.network.create({ Name: full, Driver: 'bridge', CheckDuplicate: true, IPAM: { Driver: 'default', Config: [{ Subnet: subnet }] } });
      return { net: new StartedNetwork(client, full, created), subnet };
    } catch (e) {
      if (attempt >= 5) throw e; // the subnet overlapped one in use: pick another
    }
  }
}

/** Node takes tens of seconds to start on a busy 2-core machine, several at once longer: well past testcontainers' 60 s. */
const STARTUP_MS = 240_000;

/** testcontainers has no read_only switch; compose's `read_only: true` is this HostConfig field. */
function readOnly(c: GenericContainer): GenericContainer {
  (c as unknown as { hostConfig: { ReadonlyRootfs?: boolean } }).hostConfig.ReadonlyRootfs = true;
  return c;
}

/**
 * The images' healthchecks start node or curl every 10 s in every container: real load on a
 * 2-core machine running several brokers. The stack waits on logs and /ready itself, and
 * compose.test.ts checks the healthchecks as compose runs them.
 */
function noHealthcheck(c: GenericContainer): GenericContainer {
  (c as unknown as { createOpts: { Healthcheck?: { Test: string[] } } }).createOpts.Healthcheck = { Test: ['NONE'] };
  return c;
}

export interface HttpReply {
  /** 0 when curl itself failed (then see curlExit / stderr). */
  status: number;
  headers: Record<string, string>;
  body: string;
  json: any;
  curlExit: number;
  stderr: string;
}

export interface HttpOptions {
  token?: string;
  body?: string;
  /** Extra request headers, e.g. a forged X-Forwarded-For. */
  headers?: Record<string, string>;
  /** Leave out Caddy's CA (to show verification fails). */
  noCa?: boolean;
  /** Full URL instead of the agent's base URL + path (e.g. plain http://). */
  url?: string;
}

// Tokens travel as a header file through process substitution, never in curl's argv.
const CURL = `
hdr() {
  printf 'user-agent: parley-e2e\\n'
  [ -n "\${TOKEN:-}" ] && printf 'authorization: Bearer %s\\n' "$TOKEN"
  [ -n "\${XH:-}" ] && printf '%s\\n' "$XH"
  [ -n "\${BODY+x}" ] && printf 'content-type: text/plain\\n'
  true
}
args=(-sS -i -X "$METHOD")
[ -z "\${NOCA:-}" ] && args+=(--cacert "$CA")
if [ -n "\${BODY+x}" ]; then curl "\${args[@]}" -H @<(hdr) --data-binary @<(printf %s "$BODY") "$URL"; else curl "\${args[@]}" -H @<(hdr) "$URL"; fi
`;

/** `curl -i` output (the last response, after any 1xx) as status, lower-cased headers and body. */
export function parseResponse(raw: string): { status: number; headers: Record<string, string>; body: string } {
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, split).split('\r\n');
  const headers = Object.fromEntries(head.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  return { status: Number(head[0].split(' ')[1]), headers, body: raw.slice(split + 4) };
}

export class Agent {
  constructor(
    readonly name: string,
    readonly container: StartedTestContainer,
    /** Its address on its own LAN (its own /24). */
    readonly address: string,
    /** Where it reaches Parley: https://parley.test through Caddy, or http://pinned-broker:3000 for a pinned agent. */
    readonly base: string = `https://${DOMAIN}`,
  ) {}

  /** Run a bash script in the agent; values go in through the environment. */
  async sh(script: string, env: Record<string, string> = {}) {
    const r = await this.container.exec(['bash', '-c', script], { env });
    return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  }

  async http(method: string, path: string, opts: HttpOptions = {}): Promise<HttpReply> {
    const env: Record<string, string> = { METHOD: method, URL: opts.url ?? `${this.base}${path}`, CA: CA_PATH };
    if (opts.token) env.TOKEN = opts.token;
    if (opts.body !== undefined) env.BODY = opts.body;
    if (opts.noCa) env.NOCA = '1';
    if (opts.headers) env.XH = Object.entries(opts.headers).map(([k, v]) => `${k}: ${v}`).join('\n');
    const r = await this.sh(CURL, env);
    if (r.code !== 0) return { status: 0, headers: {}, body: '', json: undefined, curlExit: r.code, stderr: r.stderr };
    const { status, headers, body } = parseResponse(r.stdout);
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      json = undefined;
    }
    return { status, headers, body, json, curlExit: 0, stderr: r.stderr };
  }

  /** The environment the skill reads: broker URL and Caddy's CA. */
  get skillEnv(): Record<string, string> {
    return { PARLEY_URL: this.base, PARLEY_CA_CERT: CA_PATH };
  }

  /** Run one of the skill's scripts, configured as an agent would be (broker URL and CA in the environment). */
  skill(script: string, ...args: string[]) {
    const argv = args.map((_, i) => `"$A${i}"`).join(' ');
    return this.sh(`bash ${SKILL_DIR}/${script} ${argv}`, { ...this.skillEnv, ...Object.fromEntries(args.map((v, i) => [`A${i}`, v])) });
  }

  /** Send a message with a skill script the one way it takes one: a lone `-` and the text on stdin. */
  say(script: string, text: string) {
    return this.sh(`printf '%s' "$MESSAGE" | bash ${SKILL_DIR}/${script} -`, { ...this.skillEnv, MESSAGE: text });
  }

  // The wire contract, one call each.
  register = () => this.http('POST', '/register');
  setup = (type: 'standard' | 'listener' = 'standard') => this.http('POST', '/setup', { body: JSON.stringify({ type }) });
  registerAndJoin = (code: string) => this.http('POST', `/register-and-join/${code}`);
  send = (token: string, text: string) => this.http('POST', '/send', { token, body: text });
  wait = (token: string, timeout = 5) => this.http('GET', `/wait?timeout=${timeout}`, { token });
  ping = (token: string) => this.http('GET', '/ping', { token });
  resume = (token: string) => this.http('POST', '/resume', { token });
}

export interface BrokerReply {
  status: number;
  text: string;
  json: any;
}

export interface Stack {
  caddy: StartedTestContainer;
  /** Broker containers, index 0..N-1 (all answer to `broker` on the core network). */
  brokers: StartedTestContainer[];
  ssh?: StartedTestContainer;
  redis?: StartedTestContainer;
  caCert: string;
  /** `count` new agents through Caddy, each on a LAN of its own (its own /24 and rate-limit budget). */
  agents(count: number): Promise<Agent[]>;
  /** A new agent whose only path is plain HTTP to broker `index` itself (on a LAN of its own with that broker). */
  pinnedAgent(index: number): Promise<Agent>;
  /** GET a path on broker `index` from inside its container (loopback, as its healthcheck does). */
  brokerGet(index: number, path: string): Promise<BrokerReply>;
  /** Restart broker `index` (SIGTERM, drain, start) and wait until it is ready and Caddy reaches a broker. */
  restartBroker(index?: number): Promise<void>;
  /** `docker kill` broker `index` (SIGKILL, no drain). */
  killBroker(index: number): Promise<void>;
  /** `docker pause` / `unpause` broker `index`: requests reach it and hang until it resumes. */
  pauseBroker(index: number): Promise<void>;
  unpauseBroker(index: number): Promise<void>;
  /** Start a killed broker again and wait until it is ready. */
  startBroker(index: number): Promise<void>;
  stopRedis(): Promise<void>;
  /** Start Redis again (same container and address). */
  startRedis(): Promise<void>;
  /** Every service container's output so far (stdout + stderr), by name: caddy, broker0.., ssh, redis. */
  logs(): Promise<Record<string, string>>;
  /** `docker restart` the Caddy container and wait until it serves /health over HTTPS again. */
  restartCaddy(): Promise<void>;
  stop(): Promise<void>;
}

export interface StackBuilder {
  withBrokers(n: number): StackBuilder;
  withRedis(): StackBuilder;
  withSsh(): StackBuilder;
  withEnv(env: Record<string, string>): StackBuilder;
  start(): Promise<Stack>;
}

export function stack(): StackBuilder {
  const opts = { brokers: 1, redis: false, ssh: false, env: {} as Record<string, string> };
  const builder: StackBuilder = {
    withBrokers: (n) => ((opts.brokers = n), builder),
    withRedis: () => ((opts.redis = true), builder),
    withSsh: () => ((opts.ssh = true), builder),
    withEnv: (env) => ((opts.env = { ...opts.env, ...env }), builder),
    start: () => startStack(opts),
  };
  return builder;
}

async function startStack(opts: { brokers: number; redis: boolean; ssh: boolean; env: Record<string, string> }): Promise<Stack> {
  await buildImages();
  const client = await getContainerRuntimeClient();
  const core = await network(client, 'core');
  const nets: StartedNetwork[] = [core.net];
  const started: StartedTestContainer[] = [];
  const cleanup = async () => {
    await Promise.allSettled(started.map((c) => c.stop({ remove: true })));
    await Promise.allSettled(nets.map((n) => n.stop()));
  };
  const attach = async (c: StartedTestContainer, net: StartedNetwork, aliases: string[]) =>
    client.container.connectToNetwork(client.container.getById(c.getId()), client.network.getById(net.getId()), aliases);
  const docker = (...args: string[]) => run('docker', args, { maxBuffer: 256 * 1024 * 1024 });

  try {
    let redis: StartedTestContainer | undefined;
    const stateEnv: Record<string, string> = {};
    if (opts.redis) {
      // As docker-compose.redis.yml runs it: its command (no RDB, no AOF) and read-only root.
      const shipped = composeService('docker-compose.redis.yml', 'redis');
      let c = new GenericContainer(shipped.image).withCommand(shipped.command).withNetwork(core.net).withNetworkAliases('redis');
      if (shipped.read_only) c = readOnly(c);
      redis = await c.withWaitStrategy(Wait.forLogMessage(/Ready to accept connections/)).withStartupTimeout(STARTUP_MS).start();
      started.push(redis);
      const brokerEnv = composeService('docker-compose.redis.yml', 'broker').environment;
      stateEnv.STATE_URL = brokerEnv.STATE_URL;
      stateEnv.PARLEY_SECRET = randomBytes(32).toString('hex');
    }

    const readOnlyBroker = composeService('docker-compose.yml', 'broker').read_only === true;
    const brokers = await Promise.all(
      Array.from({ length: opts.brokers }, async (_, i) => {
        let c = new GenericContainer(BROKER_IMAGE)
          .withNetwork(core.net)
          // Every broker answers to `broker` (Caddy balances across them by DNS); `broker-i` names one.
          .withNetworkAliases('broker', `broker-${i}`)
          .withEnvironment({
            TRUSTED_PROXIES: core.subnet,
            PUBLIC_URL: `https://${DOMAIN}`,
            PARLEY_TLS: 'internal',
            // The most verbose level, so privacy checks read everything the broker can log.
            LOG_LEVEL: 'trace',
            ...stateEnv,
            ...opts.env,
          })
          .withWaitStrategy(Wait.forLogMessage(/broker listening/))
          .withStartupTimeout(STARTUP_MS);
        if (readOnlyBroker) c = readOnly(c);
        const b = await noHealthcheck(c).start();
        started.push(b);
        return b;
      }),
    );

    let ssh: StartedTestContainer | undefined;
    if (opts.ssh) {
      ssh = await noHealthcheck(new GenericContainer(BROKER_IMAGE))
        .withCommand(['node', 'broker/dist/ssh/main.js'])
        .withNetwork(core.net)
        .withEnvironment({ BROKER_URL: 'http://broker:3000', PUBLIC_URL: `https://${DOMAIN}`, PARLEY_TLS: 'internal', LOG_LEVEL: 'trace' })
        .withWaitStrategy(Wait.forLogMessage(/ssh broker listening/))
        .withStartupTimeout(STARTUP_MS)
        .start();
      started.push(ssh);
    }

    const caddy = await noHealthcheck(new GenericContainer(CADDY_IMAGE))
      .withNetwork(core.net)
      // Published on the host for the browser scenario (e2e/console.test.ts).
      .withExposedPorts(443)
      .withEnvironment({ PARLEY_DOMAIN: DOMAIN, PARLEY_TLS: 'internal' })
      .withWaitStrategy(Wait.forLogMessage(/serving initial configuration/))
      .withStartupTimeout(STARTUP_MS)
      .start();
    started.push(caddy);
    const caCert = await readWhenPresent(caddy, CADDY_ROOT_CERT);

    let serial = 0;
    /** An agent container on a fresh LAN of its own, with the CA and the skill installed. */
    const agentOn = async (prefix: string, join: (lan: StartedNetwork) => Promise<void>, base?: string): Promise<Agent> => {
      const name = `${prefix}${serial++}`;
      const lan = await network(client, `lan-${name}`);
      nets.push(lan.net);
      await join(lan.net);
      const c = await new GenericContainer('local/curl-agent:bookworm').withCommand(['sleep', 'infinity']).withNetwork(lan.net).start();
      started.push(c);
      await c.copyContentToContainer([{ content: caCert, target: CA_PATH }]);
      await c.copyDirectoriesToContainer([{ source: resolve(ROOT, 'skill/scripts'), target: SKILL_DIR }]);
      return new Agent(name, c, c.getIpAddress(lan.net.getName()), base);
    };
    const agent = () =>
      agentOn('agent', async (lan) => {
        await attach(caddy, lan, [DOMAIN]);
        if (ssh) await attach(ssh, lan, [SSH_HOST]);
      });

    // Caddy's certificate for the domain is issued asynchronously after start.
    const probe = await agent();
    const throughCaddy = (what: string) => until(async () => (await probe.http('GET', '/ready')).status === 200, what);
    await throughCaddy('Caddy serving /ready over HTTPS');

    const brokerGet = async (index: number, path: string): Promise<BrokerReply> => {
      const script = `fetch('http://127.0.0.1:3000'+process.argv[1]).then(async r=>process.stdout.write(r.status+'\\n'+await r.text()),e=>{console.error(e.message);process.exit(1)})`;
      const r = await brokers[index].exec(['node', '-e', script, path]);
      if (r.exitCode !== 0) return { status: 0, text: r.stderr, json: undefined };
      const nl = r.stdout.indexOf('\n');
      const text = r.stdout.slice(nl + 1);
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: Number(r.stdout.slice(0, nl)), text, json };
    };
    const brokerReady = (index: number) => until(async () => (await brokerGet(index, '/ready')).status === 200, `broker ${index} ready`);

    const names: Record<string, StartedTestContainer> = { caddy };
    brokers.forEach((b, i) => (names[`broker${i}`] = b));
    if (ssh) names.ssh = ssh;
    if (redis) names.redis = redis;

    return {
      caddy,
      brokers,
      ssh,
      redis,
      caCert,
      agents: (count) => Promise.all(Array.from({ length: count }, agent)),
      pinnedAgent: (index) => agentOn(`pinned${index}-`, (lan) => attach(brokers[index], lan, [PINNED_HOST]), `http://${PINNED_HOST}:3000`),
      brokerGet,
      async restartBroker(index = 0) {
        await brokers[index].restart();
        await brokerReady(index);
        await throughCaddy(`Caddy reaching a broker after broker ${index} restarted`);
      },
      async killBroker(index) {
        await docker('kill', brokers[index].getId());
      },
      async pauseBroker(index) {
        await docker('pause', brokers[index].getId());
      },
      async unpauseBroker(index) {
        await docker('unpause', brokers[index].getId());
      },
      async startBroker(index) {
        await docker('start', brokers[index].getId());
        await brokerReady(index);
      },
      async stopRedis() {
        if (!redis) throw new Error('this stack has no Redis (withRedis())');
        await docker('stop', redis.getId());
      },
      async startRedis() {
        if (!redis) throw new Error('this stack has no Redis (withRedis())');
        await docker('start', redis.getId());
        await until(async () => (await docker('exec', redis!.getId(), 'redis-cli', 'ping')).stdout.trim() === 'PONG', 'Redis answering again');
      },
      async logs() {
        const out: Record<string, string> = {};
        for (const [name, c] of Object.entries(names)) {
          const { stdout, stderr } = await docker('logs', c.getId());
          out[name] = stdout + stderr;
        }
        return out;
      },
      async restartCaddy() {
        await docker('restart', caddy.getId());
        await throughCaddy('Caddy serving /health again after its restart');
      },
      stop: cleanup,
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

async function readWhenPresent(c: StartedTestContainer, path: string): Promise<string> {
  let content = '';
  await until(async () => {
    const r = await c.exec(['cat', path]);
    content = r.stdout;
    return r.exitCode === 0 && content.includes('BEGIN CERTIFICATE');
  }, `${path} in the Caddy container`);
  return content;
}

/** Poll a readiness condition (setup only: never a timed assertion). */
export async function until(check: () => Promise<boolean>, what: string, tries = 120): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`gave up waiting for ${what}`);
}
