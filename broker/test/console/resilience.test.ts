/** The console through a loop pause (shown, resumed by a click) and a broker restart (said plainly, started again). */
import { describe, expect, it } from 'vitest';
import { broker, client, messageLines } from '../helpers.js';
import { THANKS } from '../polite.js';
import { expectAccessible, openConsole, screenshot, shownCode, useBrowser } from './browser.js';

const browser = useBrowser();


describe('console: pauses and restarts', () => {
  it('a polite loop with a curl agent pauses the room; the person sees why and resumes with one click', async () => {
    const b = await broker();
    const api = client(b.url);
    const { page, errors } = await openConsole(browser(), b.url);
    await page.getByRole('button', { name: 'Start a session' }).click();
    const agent = (await api.registerAndJoin(await shownCode(page))).json.token;
    const composer = page.getByLabel('Message', { exact: true });
    const pause = page.locator('#pause');
    // The person and the agent trade thanks until the broker pauses the room.
    let alarmed = false;
    for (let i = 0; i < 24 && !alarmed; i++) {
      if (i % 2 === 0) {
        const mine = await page.locator('#transcript li.me').count();
        await composer.fill(THANKS[i % THANKS.length]);
        await page.getByRole('button', { name: 'Send [OVER]' }).click();
        await expect.poll(async () => (await page.locator('#transcript li.me').count()) > mine || (await pause.isVisible())).toBe(true);
        alarmed = await pause.isVisible();
        if (!alarmed) expect((await api.wait(agent, 10)).headers.get('parley-event')).toBe('message');
      } else {
        const theirs = await page.locator('#transcript li.them').count();
        const r = await api.send(agent, `${THANKS[i % THANKS.length]} [OVER]`);
        if (r.status === 429) alarmed = true;
        else await expect.poll(() => page.locator('#transcript li.them').count()).toBe(theirs + 1);
      }
    }
    expect(alarmed).toBe(true);
    await expect.poll(() => page.getByRole('heading', { name: 'Paused: this looks like a loop' }).isVisible()).toBe(true);
    expect(await page.locator('#pause-text').textContent()).toMatch(/^The broker stopped the conversation because it was going round in circles \(.+\)\. Messages are refused until someone resumes\./);
    expect(await page.getByRole('button', { name: 'End the session' }).isVisible()).toBe(true);
    await screenshot(page, 'loop-pause');
    await expectAccessible(page);

    await page.getByRole('button', { name: 'Resume the session' }).click();
    await expect.poll(() => pause.isHidden()).toBe(true);
    // The agent hears the resume as an ordinary broker notice, then the person's next message.
    let seen = '';
    for (let i = 0; i < 10 && !seen.includes('resumed the session'); i++) seen = (await api.wait(agent, 10)).text;
    expect(seen).toMatch(/^MESSAGE_RECEIVED\n\[SYSTEM\]: Agent-[0-9a-f]{4} resumed the session after the loop alarm\./);
    await composer.fill('Back to work: the index on users.email is missing.');
    await page.getByRole('button', { name: 'Send [OVER]' }).click();
    const next = await api.wait(agent, 10);
    expect(messageLines(next.text)).toEqual(['Back to work: the index on users.email is missing.']);
    expect(errors).toEqual([]);
  });

  it('a network drop: the page says it lost the connection, retries, and gets what was sent meanwhile', async () => {
    const b = await broker();
    const api = client(b.url);
    const { page, errors } = await openConsole(browser(), b.url);
    await page.getByRole('button', { name: 'Start a session' }).click();
    const agent = (await api.registerAndJoin(await shownCode(page))).json.token;
    await expect.poll(() => page.locator('#transcript li.notice').count()).toBe(1);
    await page.context().setOffline(true);
    await expect.poll(() => page.locator('#link').textContent()).toMatch(/^Lost the connection to the broker\. Trying again in \d+ s\.$/);
    await screenshot(page, 'offline');
    await api.send(agent, 'Sent while you were offline. [OVER]');
    await page.context().setOffline(false);
    await expect.poll(() => page.locator('#transcript li.them .text').allTextContents()).toEqual(['Sent while you were offline.']);
    await expect.poll(() => page.locator('#link').textContent()).toBe('Connected again.');
    expect(errors).toEqual([]);
  });

  it('a broker restart while the page is open: the page says so, then that the session ended, and starts again', async () => {
    const b = await broker({ DRAIN_TIMEOUT_S: '1' });
    const api = client(b.url);
    const { page, errors } = await openConsole(browser(), b.url);
    await page.getByRole('button', { name: 'Start a session' }).click();
    await api.registerAndJoin(await shownCode(page));
    await expect.poll(() => page.locator('#transcript li.notice').count()).toBe(1);
    // Held waits hear that the broker is restarting (this memory broker loses its sessions).
    await expect.poll(async () => Number(/parley_waiters (\d+)/.exec(await (await fetch(`${b.url}/metrics`)).text())?.[1])).toBeGreaterThan(0);
    await b.drain();
    await expect.poll(() => page.locator('#transcript li.notice').last().textContent()).toBe('ParleyThe broker is restarting, and sessions end with the restart.');
    await expect.poll(() => page.locator('#link').textContent()).toMatch(/restarting|Lost the connection|Reconnecting/);
    await screenshot(page, 'restarting');

    // A new broker on the same port does not know the old token.
    const again = await broker({ HTTP_PORT: String(b.port) });
    expect(again.port).toBe(b.port);
    await expect.poll(() => page.locator('#ended-text').textContent(), { timeout: 60_000 }).toBe(
      'The broker no longer knows this session: it restarted, or the session expired. Start again when you are ready.',
    );
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe('again-btn');
    await expectAccessible(page);
    await page.getByRole('button', { name: 'Start again' }).click();
    await page.getByRole('button', { name: 'Start a session' }).click();
    const code = await shownCode(page);
    expect((await client(again.url).registerAndJoin(code)).status).toBe(200);
    expect(errors).toEqual([]);
  });
});
