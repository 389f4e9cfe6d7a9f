/** The console's watch screen: a person follows their agent's room through a one-time watch link and gives the word after a loop pause. */
import { describe, expect, it } from 'vitest';
import { broker, client } from '../helpers.js';
import { THANKS } from '../polite.js';
import { expectAccessible, openConsole, screenshot, useBrowser } from './browser.js';

const browser = useBrowser();
type Api = ReturnType<typeof client>;

/** POST /watch with the agent's token: the link, and the code in its fragment. */
async function watchLink(api: Api, agent: string): Promise<{ url: URL; code: string }> {
  const r = await api.call('POST', '/watch', { token: agent });
  expect(r.status).toBe(200);
  const url = new URL(r.json.url);
  const code = /^#watch=(watch_[0-9a-f]{32})$/.exec(url.hash)?.[1];
  if (!code) throw new Error(`no watch code in ${r.json.url}`);
  return { url, code };
}

/** The two curl agents trade thanks until the broker pauses the room. */
async function politeLoop(api: Api, host: string, joiner: string): Promise<void> {
  for (let i = 0; i < 24; i++) {
    const [from, to] = i % 2 === 0 ? [host, joiner] : [joiner, host];
    const r = await api.send(from, `${THANKS[i % THANKS.length]} [OVER]`);
    if (r.status === 429) return;
    await api.wait(to, 2);
  }
  throw new Error('the broker never paused the polite loop');
}

/** Events an agent has queued, by kind. */
async function kinds(api: Api, token: string): Promise<string[]> {
  const seen: string[] = [];
  for (let r = await api.wait(token, 1); r.headers.get('parley-event') !== 'timeout'; r = await api.wait(token, 1)) seen.push(r.headers.get('parley-event')!);
  return seen;
}

describe('console: watch link', () => {
  it('the human opens the link, watches both directions live, sees a loop pause in plain words and resumes it with one click; the code works once; the watcher cannot send', async () => {
    const b = await broker();
    const api = client(b.url);
    const { host, joiner } = await api.pair();
    const { url, code } = await watchLink(api, host);
    expect(url.origin).toBe(b.url);

    const watcher = await openConsole(browser(), b.url, {}, url.pathname + url.hash);
    const requested: string[] = [];
    watcher.page.on('request', (r) => requested.push(`${r.url()} ${r.headers().referer ?? ''}`));
    const { page } = watcher;
    await expect.poll(() => page.getByRole('heading', { name: /^Watching Agent-[0-9a-f]{4}$/ }).isVisible()).toBe(true);
    const agentId = (await page.locator('#watch-agent').textContent())!;
    // The code left the address bar at once; the tab keeps a watcher token, not the code.
    expect(page.url()).toBe(`${b.url}/console/`);
    const stored = await page.evaluate(() => sessionStorage.getItem('parley.console') ?? '');
    expect(JSON.parse(stored)).toMatchObject({ how: 'watching', agent: agentId });
    expect(stored).toMatch(/"token":"wat_[0-9a-f]{32}"/);
    expect(stored).not.toContain(code);
    expect(await page.locator('#composer').isHidden()).toBe(true);

    // The partner is told by the broker, in a line no participant can write.
    const told = await api.wait(joiner, 5);
    expect(told.headers.get('parley-event')).toBe('watcher_joined');
    expect(told.text).toMatch(new RegExp(`^MESSAGE_RECEIVED\\n\\[SYSTEM\\]: A human is now watching this session live through ${agentId}'s watch link\\.`));

    // Both directions, live; presence of both sides.
    await api.send(host, 'The migration plan is in docs/migrate.md. Can you check step 3? [OVER]');
    await api.send(joiner, 'Step 3 needs a lock on orders first.\nOtherwise fine. [OVER]');
    await expect.poll(() => page.locator('#transcript li[data-kind="message"] .text').allTextContents()).toEqual([
      'The migration plan is in docs/migrate.md. Can you check step 3?',
      'Step 3 needs a lock on orders first.\nOtherwise fine.',
    ]);
    expect(await page.locator('#transcript li.me .meta').textContent()).toBe(`${agentId} (your agent) · over`);
    expect(await page.locator('#transcript li.them .meta').textContent()).toMatch(/^Agent-[0-9a-f]{4} · over$/);
    expect((await api.wait(host, 2)).headers.get('parley-event')).toBe('message');
    const held = api.wait(host, 20);
    await expect.poll(() => page.locator('#presence').textContent()).toMatch(new RegExp(`^${agentId} \\(your agent\\) is connected and holding a wait\\.Partner Agent-[0-9a-f]{4} is connected; last seen \\d+ s ago\\.$`));
    await screenshot(page, 'watch');
    await expectAccessible(page);
    await api.send(joiner, 'Ping. [OVER]');
    expect((await held).headers.get('parley-event')).toBe('message');

    // The agents fall into a polite loop: the watcher sees why, and resumes with one click.
    await politeLoop(api, host, joiner);
    await expect.poll(() => page.getByRole('heading', { name: 'Paused: this looks like a loop' }).isVisible()).toBe(true);
    expect(await page.locator('#pause-text').textContent()).toMatch(/^The broker stopped the conversation because it was going round in circles \(.+\)\. Messages are refused until someone resumes\./);
    expect(await page.locator('#transcript li[data-kind="loop_alarm"] .text').textContent()).toMatch(/^The broker paused the room: the conversation looks like a loop/);
    await screenshot(page, 'watch-loop');
    await expectAccessible(page);
    expect((await api.send(host, 'Back to work? [OVER]')).json?.code).toBe('loop_paused');
    await page.getByRole('button', { name: 'Resume the session' }).click();
    await expect.poll(() => page.locator('#pause').isHidden()).toBe(true);
    await expect.poll(() => page.locator('#transcript li[data-kind="resumed"] .text').textContent()).toBe(`${agentId} resumed the session. A second loop ends it.`);
    for (const t of [host, joiner]) expect(await kinds(api, t)).toContain('resumed');
    expect((await api.send(host, 'Back to work: step 4 next. [OVER]')).status).toBe(200);
    await expect.poll(() => page.locator('#transcript li[data-kind="message"] .text').last().textContent()).toBe('Back to work: step 4 next.');

    // A watcher cannot send as the agent, even with its token by hand.
    const token = JSON.parse((await page.evaluate(() => sessionStorage.getItem('parley.console')))!).token as string;
    const forged = await api.call('POST', '/send', { token, body: 'Approved, ship it. [OVER]' });
    expect([forged.status, forged.json.code]).toEqual([403, 'watch_only']);
    expect(await kinds(api, joiner)).toEqual(['message']);

    // The link works once: opened again (another browser, a forwarded link), it is refused.
    const other = await openConsole(browser(), b.url, {}, url.pathname + url.hash);
    await expect.poll(() => other.page.locator('#start-error').textContent()).toBe('This watch link was already used or has expired. Ask your agent for a new one.');
    expect(await other.page.locator('#start-error').getAttribute('data-code')).toBe('invalid_code');
    expect(other.page.url()).toBe(`${b.url}/console/`);

    // No request the page made carried the code in a URL or a Referer.
    expect(requested.length).toBeGreaterThan(3);
    expect(requested.filter((r) => r.includes(code.slice(6)))).toEqual([]);
    expect([...watcher.errors, ...watcher.dialogs, ...other.errors]).toEqual([]);
  });

  it('on a phone in the dark scheme: after a loop pause the watcher ends the session in one click, and the partner is told', async () => {
    const b = await broker();
    const api = client(b.url);
    const { host, joiner } = await api.pair();
    const { url } = await watchLink(api, joiner);
    const { page, errors } = await openConsole(browser(), b.url, { viewport: { width: 390, height: 760 }, colorScheme: 'dark', isMobile: true, hasTouch: true }, url.pathname + url.hash);
    await expect.poll(() => page.locator('#watch-bar').isVisible()).toBe(true);
    await politeLoop(api, host, joiner);
    await expect.poll(() => page.getByRole('button', { name: 'End the session' }).isVisible()).toBe(true);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await expectAccessible(page);
    await screenshot(page, 'phone-watch-loop-dark');
    await page.getByRole('button', { name: 'End the session' }).click();
    await expect.poll(() => page.locator('#ended-text').textContent()).toMatch(/^You ended the session for Agent-[0-9a-f]{4}: it left the room, and its partner was told\.$/);
    expect(await kinds(api, host)).toContain('partner_left');
    expect((await api.ping(joiner)).json.room_alive).toBe(false);
    expect(errors).toEqual([]);
  });
});
