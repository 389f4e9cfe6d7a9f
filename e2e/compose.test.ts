/**
 * Scenario 10: docker-compose.yml itself, as a user starts it, answers /health through Caddy
 * over HTTPS (trusting Caddy's local CA), and the SSH broker answers on its port.
 * Compose v1 (`docker-compose`) drives it, as in CI; v2 works the same with `docker compose`.
 */
import { randomInt } from 'node:crypto';
import { request } from 'node:https';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerComposeEnvironment, type StartedDockerComposeEnvironment, Wait } from 'testcontainers';
import { ROOT } from './stack.js';

// Letters and digits only: compose v1 and v2 normalise project names differently otherwise.
const project = `parleye2e${process.pid}`;
let env: StartedDockerComposeEnvironment;

beforeAll(async () => {
  const compose = new DockerComposeEnvironment(ROOT, 'docker-compose.yml')
    .withProjectName(project)
    .withBuild()
    .withEnvironment({
      NODE_VERSION: process.env.PARLEY_E2E_NODE_VERSION ?? '20',
      PARLEY_DOMAIN: 'localhost',
      // Random host ports and subnet: the machine's 80/443/2222 may be taken.
      HTTP_PUBLIC_PORT: '0',
      HTTPS_PUBLIC_PORT: '0',
      SSH_PUBLIC_PORT: '0',
      PARLEY_SUBNET: `10.${randomInt(150, 250)}.${randomInt(0, 255)}.0/24`,
    })
    .withDefaultWaitStrategy(Wait.forHealthCheck())
    .withStartupTimeout(180_000);
  env = await (process.env.PARLEY_E2E_COMPOSE === 'v2' ? compose : compose.withClientOptions({ executable: { standalone: true, executablePath: 'docker-compose' } })).up();
});

afterAll(async () => {
  await env?.down({ removeVolumes: true, timeout: 10_000 });
});

/** v1 names containers project_service_1, v2 project-service-1. */
function container(service: string) {
  try {
    return env.getContainer(`${project}_${service}_1`);
  } catch {
    return env.getContainer(`${service}-1`);
  }
}

function httpsGet(port: number, path: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', servername: 'localhost', headers: { host: 'localhost' }, port, path, ca }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

describe('docker-compose.yml', () => {
  it('10. starts caddy, broker and ssh; /health answers through Caddy over HTTPS; SSH answers on its port', async () => {
    const caddy = container('caddy');
    const ca = (await caddy.exec(['cat', '/data/caddy/pki/authorities/local/root.crt'])).stdout;
    expect(ca).toContain('BEGIN CERTIFICATE');
    const health = await httpsGet(caddy.getMappedPort(443), '/health', ca);
    expect(health).toEqual({ status: 200, body: '{"ok":true}' });
    // Without the CA the certificate is refused.
    await expect(httpsGet(caddy.getMappedPort(443), '/health', '')).rejects.toThrow(/certificate/i);

    const banner = await new Promise<string>((resolve, reject) => {
      const s = connect(container('ssh').getMappedPort(2222), '127.0.0.1');
      s.once('data', (d) => (resolve(d.toString()), s.destroy())).once('error', reject);
    });
    expect(banner).toMatch(/^SSH-2\.0-Parley/);
  });
});
