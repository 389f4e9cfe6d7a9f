/**
 * Chromium on the host for the e2e browser scenario: it trusts Caddy's local root certificate
 * the way a person's browser would, through its NSS store (a throwaway one under a temporary
 * HOME, written with certutil), never by ignoring certificate errors; and it resolves the
 * appliance's domain to Caddy's port published on loopback.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser } from 'playwright-core';
import { DOMAIN } from './stack.js';

const run = promisify(execFile);
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export interface TrustingBrowser {
  browser: Browser;
  close(): Promise<void>;
}

export async function trustingChromium(caCert: string, httpsPort: number): Promise<TrustingBrowser> {
  const home = await mkdtemp(join(tmpdir(), 'parley-e2e-chromium-'));
  try {
    const db = `sql:${join(home, '.pki', 'nssdb')}`;
    await mkdir(join(home, '.pki', 'nssdb'), { recursive: true });
    await writeFile(join(home, 'caddy-root.crt'), caCert);
    await run('certutil', ['-d', db, '-N', '--empty-password']);
    // "C,,": a certificate authority trusted to issue server certificates.
    await run('certutil', ['-d', db, '-A', '-t', 'C,,', '-n', 'Parley e2e Caddy local root', '-i', join(home, 'caddy-root.crt')]);
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      env: { ...process.env, HOME: home },
      args: ['--no-sandbox', `--host-resolver-rules=MAP ${DOMAIN}:443 127.0.0.1:${httpsPort}`],
    });
    return {
      browser,
      async close() {
        await browser.close();
        await rm(home, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await rm(home, { recursive: true, force: true });
    throw e;
  }
}
