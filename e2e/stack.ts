/**
 * The appliance under test, built from the repository's Dockerfiles: caddy + broker + ssh on a
 * core network, and simulated agents (curl + openssh in `local/curl-agent:bookworm`) each on its
 * own LAN network with its own /24, reaching the broker only through Caddy over HTTPS (or the SSH
 * broker), trusting Caddy's local root certificate copied out of the Caddy container.
 *
 * Build once, start once: every scenario opens its own rooms and tokens on this one stack.
 */
import { execFile } from 'node:child_process';
import { createHash, randomInt } from 'node:crypto';
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

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const DOMAIN = 'parley.test';
export const SSH_HOST = `ssh.${DOMAIN}`;
export const CA_PATH = '/etc/parley/root.crt';
/** The skill's scripts, as an agent installs them. */
export const SKILL_DIR = '/opt/parley-skill/scripts';
const CADDY_ROOT_CERT = '/data/caddy/pki/authorities/local/root.crt';
// CI seeds node:20-bookworm-slim only; with Docker Hub access any supported LTS works.
const NODE_VERSION = process.env.PARLEY_E2E_NODE_VERSION ?? '20';
// Tagged per checkout: on a shared Docker engine another checkout's run never swaps its images in.
const CHECKOUT = createHash('sha256').update(ROOT).digest('hex').slice(0, 10);
export const BROKER_IMAGE = `parley-broker:e2e-${CHECKOUT}`;
export const CADDY_IMAGE = `parley-caddy:e2e-${CHECKOUT}`;

const run = promisify(execFile);

/** Both images, built from the repository as users build them (layer cache makes reruns quick). */
export async function buildImages(): Promise<void> {
  await GenericContainer.fromDockerfile(ROOT).withBuildArgs({ NODE_VERSION }).build(BROKER_IMAGE, { deleteOnExit: false });
  await GenericContainer.fromDockerfile(ROOT, 'proxy/Dockerfile').build(CADDY_IMAGE, { deleteOnExit: false });
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
  /** Full URL instead of https://parley.test + path (e.g. plain http://). */
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

export class Agent {
  constructor(
    readonly name: string,
    readonly container: StartedTestContainer,
    readonly address: string,
  ) {}

  /** Run a bash script in the agent; values go in through the environment. */
  async sh(script: string, env: Record<string, string> = {}) {
    const r = await this.container.exec(['bash', '-c', script], { env });
    return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  }

  async http(method: string, path: string, opts: HttpOptions = {}): Promise<HttpReply> {
    const env: Record<string, string> = { METHOD: method, URL: opts.url ?? `https://${DOMAIN}${path}`, CA: CA_PATH };
    if (opts.token) env.TOKEN = opts.token;
    if (opts.body !== undefined) env.BODY = opts.body;
    if (opts.noCa) env.NOCA = '1';
    if (opts.headers) env.XH = Object.entries(opts.headers).map(([k, v]) => `${k}: ${v}`).join('\n');
    const r = await this.sh(CURL, env);
    if (r.code !== 0) return { status: 0, headers: {}, body: '', json: undefined, curlExit: r.code, stderr: r.stderr };
    const split = r.stdout.indexOf('\r\n\r\n');
    const head = r.stdout.slice(0, split).split('\r\n');
    const body = r.stdout.slice(split + 4);
    const headers = Object.fromEntries(head.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      json = undefined;
    }
    return { status: Number(head[0].split(' ')[1]), headers, body, json, curlExit: 0, stderr: r.stderr };
  }

  /** Run one of the skill's scripts, configured as an agent would be (broker URL and CA in the environment). */
  skill(script: string, ...args: string[]) {
    const argv = args.map((_, i) => `"$A${i}"`).join(' ');
    return this.sh(`bash ${SKILL_DIR}/${script} ${argv}`, {
      PARLEY_URL: `https://${DOMAIN}`,
      PARLEY_CA_CERT: CA_PATH,
      ...Object.fromEntries(args.map((v, i) => [`A${i}`, v])),
    });
  }

  /** Send a message with a skill script the one way it takes one: a lone `-` and the text on stdin. */
  say(script: string, text: string) {
    return this.sh(`printf '%s' "$MESSAGE" | bash ${SKILL_DIR}/${script} -`, { PARLEY_URL: `https://${DOMAIN}`, PARLEY_CA_CERT: CA_PATH, MESSAGE: text });
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

export interface Stack {
  broker: StartedTestContainer;
  ssh: StartedTestContainer;
  caddy: StartedTestContainer;
  agents: Record<'a' | 'b' | 'greedy', Agent>;
  caCert: string;
  /** Every container's output so far (stdout + stderr), by name. */
  logs(): Promise<Record<string, string>>;
  /** Restart the broker container and wait until it answers through Caddy again. */
  restartBroker(): Promise<void>;
  /** `docker restart` the Caddy container and wait until it serves /health over HTTPS again. */
  restartCaddy(): Promise<void>;
  stop(): Promise<void>;
}

export async function startStack(): Promise<Stack> {
  const client = await getContainerRuntimeClient();
  const core = await network(client, 'core');
  const lans = { a: await network(client, 'lan-a'), b: await network(client, 'lan-b'), greedy: await network(client, 'lan-greedy') };
  const started: StartedTestContainer[] = [];
  const attach = async (c: StartedTestContainer, net: StartedNetwork, aliases: string[]) =>
    client.container.connectToNetwork(client.container.getById(c.getId()), client.network.getById(net.getId()), aliases);

  try {
    const broker = await new GenericContainer(BROKER_IMAGE)
      .withNetwork(core.net)
      .withNetworkAliases('broker')
      .withEnvironment({
        TRUSTED_PROXIES: core.subnet,
        PUBLIC_URL: `https://${DOMAIN}`,
        PARLEY_TLS: 'internal',
        // Low enough for scenario 5 to hit quickly, high enough for every other scenario's setup calls.
        RATE_ANON_PER_MIN: '40',
        // The most verbose level, so the privacy check reads everything the broker can log.
        LOG_LEVEL: 'trace',
        // /mcp accepts this Host (Caddy passes the agents' one on); progress every second.
        PUBLIC_URL: `https://${DOMAIN}`,
        MCP_PROGRESS_S: '1',
      })
      .withWaitStrategy(Wait.forLogMessage(/broker listening/))
      .start();
    started.push(broker);

    const ssh = await new GenericContainer(BROKER_IMAGE)
      .withCommand(['node', 'broker/dist/ssh/main.js'])
      .withNetwork(core.net)
      .withEnvironment({ BROKER_URL: 'http://broker:3000', PUBLIC_URL: `https://${DOMAIN}`, PARLEY_TLS: 'internal', LOG_LEVEL: 'trace' })
      .withWaitStrategy(Wait.forLogMessage(/ssh broker listening/))
      .start();
    started.push(ssh);
    await attach(ssh, lans.a.net, [SSH_HOST]);

    const caddy = await new GenericContainer(CADDY_IMAGE)
      .withNetwork(core.net)
      // Published on the host for the browser scenario (e2e/console.test.ts).
      .withExposedPorts(443)
      .withEnvironment({ PARLEY_DOMAIN: DOMAIN, PARLEY_TLS: 'internal' })
      .withWaitStrategy(Wait.forLogMessage(/serving initial configuration/))
      .start();
    started.push(caddy);
    for (const lan of Object.values(lans)) await attach(caddy, lan.net, [DOMAIN]);

    const caCert = await readWhenPresent(caddy, CADDY_ROOT_CERT);
    const agents = {} as Stack['agents'];
    for (const [name, lan] of Object.entries(lans) as [keyof Stack['agents'], { net: StartedNetwork }][]) {
      const c = await new GenericContainer('local/curl-agent:bookworm').withCommand(['sleep', 'infinity']).withNetwork(lan.net).start();
      started.push(c);
      await c.copyContentToContainer([{ content: caCert, target: CA_PATH }]);
      await c.copyDirectoriesToContainer([{ source: resolve(ROOT, 'skill/scripts'), target: SKILL_DIR }]);
      agents[name] = new Agent(name, c, c.getIpAddress(lan.net.getName()));
    }
    // Caddy's certificate for the domain is issued asynchronously after start.
    await until(async () => (await agents.a.http('GET', '/health')).status === 200, 'Caddy serving /health over HTTPS');

    const names = { broker, ssh, caddy };
    return {
      broker,
      ssh,
      caddy,
      agents,
      caCert,
      async logs() {
        const out: Record<string, string> = {};
        for (const [name, c] of Object.entries(names)) {
          const { stdout, stderr } = await run('docker', ['logs', c.getId()], { maxBuffer: 256 * 1024 * 1024 });
          out[name] = stdout + stderr;
        }
        return out;
      },
      async restartBroker() {
        await broker.restart();
        await until(async () => (await agents.a.http('GET', '/health')).status === 200, 'the broker answering through Caddy after its restart');
      },
      async restartCaddy() {
        await run('docker', ['restart', caddy.getId()]);
        await until(async () => (await agents.a.http('GET', '/health')).status === 200, 'Caddy serving /health again after its restart');
      },
      async stop() {
        await Promise.allSettled(started.map((c) => c.stop({ remove: true })));
        await Promise.allSettled([core, ...Object.values(lans)].map((n) => n.net.stop()));
      },
    };
  } catch (e) {
    await Promise.allSettled(started.map((c) => c.stop({ remove: true })));
    await Promise.allSettled([core, ...Object.values(lans)].map((n) => n.net.stop()));
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
