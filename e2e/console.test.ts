/**
 * The console end to end: a person's Chromium on the host opens a watch link through Caddy over
 * HTTPS (Caddy's local root trusted in the browser's NSS store), while curl agents in their own
 * containers talk in the room.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { THANKS } from '../broker/test/polite.js';
import { trustingChromium, type TrustingBrowser } from './browser.js';
import { type Agent, DOMAIN, type Stack, stack as buildStack } from './stack.js';

let stack: Stack;
let chrome: TrustingBrowser;
/** How long the page may take to show what happened (a busy shared machine; a poller that gives up throws). */
const SHOWN = { timeout: 30_000, interval: 200 };

beforeAll(async () => {
  stack = await buildStack().start();
  chrome = await trustingChromium(stack.caCert, stack.caddy.getMappedPort(443));
});

afterAll(async () => {
  await chrome?.close();
  await stack?.stop();
});

/** Events an agent has queued, by kind (short waits until a quiet one). */
async function kinds(agent: Agent, token: string): Promise<string[]> {
  const seen: string[] = [];
  for (let r = await agent.wait(token, 1); r.headers['parley-event'] !== 'timeout'; r = await agent.wait(token, 1)) {
    if (r.status !== 200) throw new Error(`wait answered ${r.status}: ${r.body}`);
    seen.push(r.headers['parley-event']);
  }
  return seen;
}

describe('console through Caddy', () => {
  it('a watch link opened in Chromium over HTTPS: the room live, the partner told, a loop pause resumed by a click; the code never logged', async () => {
    const [a, b] = await stack.agents(2);
    const setup = await a.setup();
    const host = setup.json.token as string;
    const joiner = (await b.registerAndJoin(setup.json.code)).json.token as string;
    expect(await kinds(a, host)).toEqual(['partner_joined']);

    const link = await a.http('POST', '/watch', { token: host });
    expect(link.status).toBe(200);
    const url: string = link.json.url;
    const code = /^https:\/\/parley\.test\/console\/#watch=(watch_[0-9a-f]{32})$/.exec(url)?.[1];
    expect(code).toBeDefined();

    const context = await chrome.browser.newContext();
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // A certificate Chromium did not trust would fail this navigation (no error is ignored).
    const response = await page.goto(url);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
    expect(response?.headers()['strict-transport-security']).toBe('max-age=31536000');
    expect((await response?.securityDetails())?.issuer).toMatch(/Caddy Local Authority/);
    await expect.poll(() => page.getByRole('heading', { name: /^Watching Agent-[0-9a-f]{4}$/ }).isVisible(), SHOWN).toBe(true);
    expect(page.url()).toBe(`https://${DOMAIN}/console/`);

    expect(await kinds(b, joiner)).toEqual(['watcher_joined']);
    expect((await a.send(host, 'The backup finished at 02:14, 38 GB. Restore test next? [OVER]')).status).toBe(200);
    expect((await b.send(joiner, 'Yes: restore into staging and compare row counts. [OVER]')).status).toBe(200);
    await expect.poll(() => page.locator('#transcript li[data-kind="message"] .text').allTextContents(), SHOWN).toEqual([
      'The backup finished at 02:14, 38 GB. Restore test next?',
      'Yes: restore into staging and compare row counts.',
    ]);
    await kinds(a, host);
    await kinds(b, joiner);

    // A polite loop between the two agents; the person reads why and resumes with one click.
    let paused = false;
    for (let i = 0; i < 24 && !paused; i++) {
      const [from, to, token, other] = i % 2 === 0 ? [a, b, host, joiner] : [b, a, joiner, host];
      const r = await from.send(token, `${THANKS[i % THANKS.length]} [OVER]`);
      paused = r.status === 429;
      if (!paused) await to.wait(other, 5);
    }
    expect(paused).toBe(true);
    await expect.poll(() => page.getByRole('heading', { name: 'Paused: this looks like a loop' }).isVisible(), SHOWN).toBe(true);
    await page.getByRole('button', { name: 'Resume the session' }).click();
    await expect.poll(() => page.locator('#pause').isHidden(), SHOWN).toBe(true);
    expect(await kinds(b, joiner)).toContain('resumed');
    expect((await a.send(host, 'Restore started on staging. [OVER]')).status).toBe(200);
    await expect.poll(() => page.locator('#transcript li[data-kind="message"] .text').last().textContent(), SHOWN).toBe('Restore started on staging.');

    // The link works once.
    const again = await context.newPage();
    await again.goto(url);
    await expect.poll(() => again.locator('#start-error').getAttribute('data-code'), SHOWN).toBe('invalid_code');
    expect(errors).toEqual([]);
    await context.close();

    // Neither Caddy, the broker nor the SSH broker logged the code.
    for (const [name, log] of Object.entries(await stack.logs())) expect({ name, leaked: log.includes(code!.slice(6)) }).toEqual({ name, leaked: false });
  });
});
