/**
 * Scenario 10: a newcomer follows the README's Deployment section with docker-compose.yml as
 * shipped: `.env` copied from `.env.example` with a LAN name, PARLEY_TLS=internal and non-default
 * host ports; `up -d --build`; Caddy's root certificate copied out (step 4); then every URL the
 * user is shown must work: the HTTP→HTTPS redirect's Location, Alt-Svc, /health over HTTPS with
 * the CA (never `curl -k`), the broker's start-up curl and the SSH broker's hints. The name
 * resolves to this machine through curl's --resolve and ssh's HostName, as /etc/hosts would.
 *
 * Compose v1 (`docker-compose`) drives it, as in CI; PARLEY_E2E_COMPOSE=v2 uses `docker compose`.
 * Each test stands alone; the one that stops the broker starts it again and waits for health.
 */
import { execFile, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DockerComposeEnvironment, type StartedDockerComposeEnvironment, type StartedTestContainer, Wait } from 'testcontainers';
import { parseResponse, ROOT, until } from './stack.js';

const run = promisify(execFile);
const DOMAIN = 'parley.lan';
// Letters and digits only: compose v1 and v2 normalise project names differently otherwise.
const project = `parleye2e${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'parley-newcomer-'));
let env: StartedDockerComposeEnvironment;
let ports: { http: number; https: number; ssh: number };

/** A port free on this machine right now (the machine's 80/443/2222 may be taken). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '0.0.0.0', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

beforeAll(async () => {
  ports = { http: await freePort(), https: await freePort(), ssh: await freePort() };
  // Step 3: cp .env.example .env, then edit it.
  const edits: Record<string, string> = {
    COMPOSE_PROJECT_NAME: project,
    PARLEY_DOMAIN: DOMAIN,
    PARLEY_TLS: 'internal',
    HTTP_PUBLIC_PORT: String(ports.http),
    HTTPS_PUBLIC_PORT: String(ports.https),
    SSH_PUBLIC_PORT: String(ports.ssh),
    PARLEY_SUBNET: `10.${randomInt(150, 250)}.${randomInt(0, 255)}.0/24`,
    // CI seeds node:20-bookworm-slim only.
    NODE_VERSION: process.env.PARLEY_E2E_NODE_VERSION ?? '20',
  };
  const example = readFileSync(join(ROOT, '.env.example'), 'utf8');
  const dotenv = example.replace(/^([A-Z_]+)=.*$/gm, (line, name: string) => (name in edits ? `${name}=${edits[name]}` : line));
  for (const name of Object.keys(edits)) expect(dotenv, `.env.example offers ${name}`).toContain(`${name}=${edits[name]}`);
  writeFileSync(join(dir, '.env'), dotenv);

  const compose = new DockerComposeEnvironment(ROOT, 'docker-compose.yml')
    .withProjectName(project)
    .withEnvironmentFile(join(dir, '.env'))
    .withBuild()
    .withDefaultWaitStrategy(Wait.forHealthCheck())
    .withStartupTimeout(240_000);
  env = await (process.env.PARLEY_E2E_COMPOSE === 'v2' ? compose : compose.withClientOptions({ executable: { standalone: true, executablePath: 'docker-compose' } })).up();

  // Step 4: the root certificate, as `docker compose cp caddy:… ./parley-root.crt` copies it.
  const ca = (await container('caddy').exec(['cat', '/data/caddy/pki/authorities/local/root.crt'])).stdout;
  expect(ca).toContain('BEGIN CERTIFICATE');
  writeFileSync(join(dir, 'parley-root.crt'), ca);
});

afterAll(async () => {
  await env?.down({ removeVolumes: true, timeout: 10_000 });
  // The images this run built (named after its compose project).
  await run('docker', ['rmi', `${project}-broker`, `${project}-caddy`]).catch(() => undefined);
});

/** The compose CLI this suite drives (v1 as in CI, or v2), in the repository, with `.env` variables given. */
async function composeCli(args: string[], env: Record<string, string>): Promise<Ran> {
  const [exe, ...pre] = process.env.PARLEY_E2E_COMPOSE === 'v2' ? ['docker', 'compose'] : ['docker-compose'];
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'PARLEY_SECRET'));
  try {
    // An empty env file: a developer's own .env in the checkout must not answer for the test.
    writeFileSync(join(dir, 'empty.env'), '');
    const { stdout, stderr } = await run(exe, [...pre, '--project-name', `${project}cfg`, '--env-file', join(dir, 'empty.env'), ...args], { cwd: ROOT, env: { ...clean, ...env } });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** v1 names containers project_service_1, v2 project-service-1. */
function container(service: string): StartedTestContainer {
  try {
    return env.getContainer(`${project}_${service}_1`);
  } catch {
    return env.getContainer(`${service}-1`);
  }
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** curl on this machine, in the directory holding parley-root.crt, with DOMAIN resolving here. */
async function curl(...args: string[]): Promise<Ran> {
  const resolve = [ports.http, ports.https].flatMap((p) => ['--resolve', `${DOMAIN}:${p}:127.0.0.1`]);
  try {
    const { stdout, stderr } = await run('curl', [...resolve, ...args], { cwd: dir });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const response = parseResponse;

/** The words of a shell command line as printed in a hint (no quoting is used in Parley's hints). */
const words = (line: string) => line.trim().split(/\s+/);

/** `ssh` on this machine as a user types it, with DOMAIN pointing here and a fresh known_hosts. */
function ssh(args: string[]) {
  const [first, ...rest] = args;
  expect(first).toBe('ssh');
  const child = spawn('ssh', ['-o', 'HostName=127.0.0.1', '-o', 'StrictHostKeyChecking=accept-new', '-o', `UserKnownHostsFile=${join(dir, 'known_hosts')}`, '-o', 'BatchMode=yes', ...rest], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    exit,
    stdout: () => out,
    stderr: () => err,
    async waitFor(pattern: RegExp): Promise<string> {
      await until(async () => pattern.test(out) || child.exitCode !== null, `ssh output matching ${pattern}`, 240);
      if (!pattern.test(out)) throw new Error(`ssh ended without ${pattern}: ${out} ${err}`);
      return out;
    },
  };
}

async function inspect(service: string): Promise<any> {
  const { stdout } = await run('docker', ['inspect', container(service).getId()]);
  return JSON.parse(stdout)[0];
}

describe('a newcomer on non-default ports with a LAN name and the local CA', () => {
  it('10. compose runs the three services as it says: read-only brokers, the volumes, healthchecks, only Caddy and SSH published, images of this project', async () => {
    const [caddy, broker, sshd] = await Promise.all(['caddy', 'broker', 'ssh'].map(inspect));
    for (const c of [caddy, broker, sshd]) {
      expect(c.State.Health?.Status, c.Name).toBe('healthy');
      expect(c.Config.Healthcheck?.Test?.length ?? 0, `${c.Name} has a healthcheck`).toBeGreaterThan(0);
    }
    expect(caddy.Config.Healthcheck.Test).toEqual(['CMD', '/usr/local/bin/parley-healthcheck']);
    expect([broker.HostConfig.ReadonlyRootfs, sshd.HostConfig.ReadonlyRootfs]).toEqual([true, true]);
    const mounts = (c: any) => c.Mounts.map((m: any) => `${m.Type}:${m.Destination}`).sort();
    expect(mounts(broker)).toEqual([]);
    expect(mounts(sshd)).toEqual(['volume:/data/ssh']);
    expect(mounts(caddy)).toEqual(['volume:/config', 'volume:/data']);
    const published = (c: any) =>
      Object.entries(c.HostConfig.PortBindings ?? {}).map(([inside, outs]) => `${(outs as any[])[0].HostPort}->${inside}`).sort();
    expect(published(broker)).toEqual([]);
    expect(published(sshd)).toEqual([`${ports.ssh}->2222/tcp`]);
    expect(published(caddy)).toEqual([`${ports.http}->${ports.http}/tcp`, `${ports.https}->${ports.https}/tcp`, `${ports.https}->${ports.https}/udp`].sort());
    // One broker image for both brokers, named after this compose project.
    expect(sshd.Image).toBe(broker.Image);
    expect(broker.Config.Image).toBe(`${project}-broker`);
    expect(caddy.Config.Image).toBe(`${project}-caddy`);
  });

  it('10b. the redirect and Alt-Svc name the HTTPS port; /health answers there with the CA, and is refused without it or by IP', async () => {
    const redirect = response((await curl('-sS', '-i', `http://${DOMAIN}:${ports.http}/health?x=1`)).stdout);
    expect(redirect.status).toBe(308);
    expect(redirect.headers.location).toBe(`https://${DOMAIN}:${ports.https}/health?x=1`);

    const health = await curl('-sS', '-i', '--cacert', 'parley-root.crt', redirect.headers.location);
    expect(health.code).toBe(0);
    const res = response(health.stdout);
    expect([res.status, JSON.parse(res.body)]).toEqual([200, { ok: true }]);
    expect(res.headers['alt-svc']).toMatch(new RegExp(`^h3=":${ports.https}"`));

    // Step 4 is needed: without the CA the certificate is refused (curl exit 60), never bypassed.
    const noCa = await curl('-sS', `https://${DOMAIN}:${ports.https}/health`);
    expect(noCa.code).toBe(60);
    // By IP instead of the name: a clear name mismatch, not "tlsv1 alert internal error".
    const byIp = await curl('-sS', '--cacert', 'parley-root.crt', `https://127.0.0.1:${ports.https}/health`);
    expect(byIp.code).toBe(60);
    expect(byIp.stderr).toMatch(/subject name|does not match/i);
    expect(byIp.stderr).not.toMatch(/internal error/);
  });

  it("10c. the broker's start-up line names PUBLIC_URL and a first curl that works as printed", async () => {
    const { stdout } = await run('docker', ['logs', container('broker').getId()]);
    const listening = stdout.split('\n').find((l) => l.includes('broker listening'))!;
    const msg: string = JSON.parse(listening).msg;
    expect(msg).toBe(`broker listening on https://${DOMAIN}:${ports.https}; try: curl -s --cacert parley-root.crt https://${DOMAIN}:${ports.https}/health`);
    const [, ...args] = words(msg.slice(msg.indexOf('try: ') + 5));
    expect(JSON.parse((await curl(...args)).stdout)).toEqual({ ok: true });
    // PARLEY_TLS=internal suits a LAN name: no warning.
    expect(stdout).not.toMatch(/"level":40/);
  });

  it("10d. the SSH broker's hints name the SSH port, PUBLIC_URL and the CA, and work as printed", async () => {
    const reg = ssh(['ssh', '-p', String(ports.ssh), `new@${DOMAIN}`]);
    reg.child.stdin.end();
    expect(await reg.exit).toBe(0);
    const createLine = /^ {2}(ssh -p \d+ tok_[0-9a-f]{32}@\S+ create)$/m.exec(reg.stdout())![1];
    expect(createLine).toMatch(new RegExp(`^ssh -p ${ports.ssh} tok_[0-9a-f]{32}@${DOMAIN.replace('.', '\\.')} create$`));

    const host = ssh(words(createLine));
    try {
      const out = await host.waitFor(/Waiting for your partner/);
      const code = /Invite code: (invite_[0-9a-f]{32})/.exec(out)![1];
      expect(out).toContain(`ssh -p ${ports.ssh} THEIR_TOKEN@${DOMAIN} join ${code}`);
      const curlLine = /or: {2}(curl .*)$/m.exec(out)![1];
      expect(curlLine).toBe(`curl -s --cacert parley-root.crt -X POST https://${DOMAIN}:${ports.https}/register-and-join/${code}`);
      const joined = await curl(...words(curlLine).slice(1));
      expect(JSON.parse(joined.stdout)).toMatchObject({ role: 'joiner', status: '(2/2 connected)' });
      await host.waitFor(/has joined\. Session is live!/);
    } finally {
      host.child.stdin.end();
      await host.exit;
    }
  });

  it("10e. Caddy's healthcheck passes for the name Caddy serves and fails, as clients do, for a name it has no certificate for", async () => {
    const caddy = container('caddy');
    expect((await caddy.exec(['/usr/local/bin/parley-healthcheck'])).exitCode).toBe(0);
    const wrong = await caddy.exec(['/usr/local/bin/parley-healthcheck'], { env: { PARLEY_DOMAIN: 'other.lan' } });
    expect(wrong.exitCode).not.toBe(0);
    expect(wrong.output).toMatch(/tlsv1 alert internal error|SSL/);
  });

  it('10f. /metrics is not served through Caddy, only on the compose network', async () => {
    const viaCaddy = response((await curl('-sS', '-i', '--cacert', 'parley-root.crt', `https://${DOMAIN}:${ports.https}/metrics`)).stdout);
    expect([viaCaddy.status, JSON.parse(viaCaddy.body)]).toEqual([404, { error: 'Not found', code: 'not_found' }]);
    const inside = await container('ssh').exec(['node', '-e', "fetch('http://broker:3000/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))"]);
    expect(inside.stdout).toMatch(/^# HELP /m);
  });

  it('10h. docker-compose.redis.yml on top: it insists on PARLEY_SECRET, gives every broker STATE_URL and the secret, and runs Redis read-only, unpublished, with no persistence and a healthcheck', async () => {
    const files = ['-f', 'docker-compose.yml', '-f', 'docker-compose.redis.yml'];
    const config = (extra: Record<string, string>) => composeCli([...files, 'config'], extra);
    const missing = await config({});
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('set PARLEY_SECRET (openssl rand -hex 32) for several brokers');

    const secret = 'f'.repeat(64);
    const merged = await config({ PARLEY_SECRET: secret });
    expect(merged.code, merged.stderr).toBe(0);
    const { services, volumes } = parse(merged.stdout);
    const { broker, redis, ssh } = services;
    expect(broker.environment).toMatchObject({ STATE_URL: 'redis://redis:6379', PARLEY_SECRET: secret });
    expect(broker.depends_on).toMatchObject({ redis: { condition: 'service_healthy' } });
    // --scale broker=N needs a broker without a fixed name or published port; it stays read-only without volumes.
    expect([broker.container_name, broker.ports, broker.volumes, broker.read_only]).toEqual([undefined, undefined, undefined, true]);
    expect(ssh.environment.BROKER_URL).toBe('http://broker:3000');

    expect(redis.image).toBe('redis:7');
    expect([redis.read_only, redis.ports, redis.volumes]).toEqual([true, undefined, undefined]);
    const command: string[] = typeof redis.command === 'string' ? redis.command.split(' ') : redis.command;
    expect(command.join(' ')).toMatch(/--save +--appendonly no/);
    expect(redis.healthcheck.test).toEqual(['CMD', 'redis-cli', 'ping']);
    expect(Object.keys(volumes ?? {}).sort()).toEqual(['caddy_config', 'caddy_data', 'ssh_host_key']);
  });

  it("10g. with the broker down Caddy answers 502 or 503 and its error log leaves out the request's path (an invite code)", async () => {
    const code = `invite_${'e'.repeat(32)}`;
    await run('docker', ['stop', container('broker').getId()]);
    try {
      const down = response((await curl('-sS', '-i', '--cacert', 'parley-root.crt', '-X', 'POST', `https://${DOMAIN}:${ports.https}/register-and-join/${code}`)).stdout);
      // 503 when the stopped broker has left Docker's DNS (no upstream to try), 502 while it is still listed.
      expect([502, 503]).toContain(down.status);
      const { stdout, stderr } = await run('docker', ['logs', container('caddy').getId()]);
      const errors = (stdout + stderr).split('\n').filter((l) => l.includes('"logger":"http.log.error"'));
      expect(errors.length).toBeGreaterThan(0);
      expect(stdout + stderr).not.toContain(code);
    } finally {
      await run('docker', ['start', container('broker').getId()]);
      await until(async () => (await inspect('broker')).State.Health?.Status === 'healthy', 'the broker healthy again', 240);
    }
  });
});
