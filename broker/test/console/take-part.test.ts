/** The console's "take part" flow in a real Chromium against a real broker: people and agents in one room. */
import { describe, expect, it } from 'vitest';
import { broker, client, messageLines } from '../helpers.js';
import { expectAccessible, openConsole, say, screenshot, shownCode, useBrowser } from './browser.js';

const browser = useBrowser();

describe('console: take part', () => {
  it('two people in two browsers: start, join by code, talk with [OVER] and [STANDBY], see the standby pause', async () => {
    const b = await broker();
    const alice = await openConsole(browser(), b.url);
    const bob = await openConsole(browser(), b.url);

    await expect.poll(() => alice.page.getByRole('heading', { name: 'Take part in a session' }).isVisible()).toBe(true);
    await screenshot(alice.page, 'start');
    await expectAccessible(alice.page);

    await alice.page.getByRole('button', { name: 'Start a session' }).click();
    const code = await shownCode(alice.page);
    await expect.poll(() => alice.page.locator('#presence').textContent()).toBe('Waiting for your partner to join with your code.');
    await screenshot(alice.page, 'invite');
    await expectAccessible(alice.page);

    await bob.page.getByLabel('Invite or listener code').fill(code);
    await bob.page.getByRole('button', { name: 'Join', exact: true }).click();
    await expect.poll(() => alice.page.locator('#transcript li.notice').last().textContent()).toMatch(/^ParleyAgent-[0-9a-f]{4} joined\. The session is live\.$/);
    await expect.poll(() => alice.page.locator('#code-box').isHidden()).toBe(true);

    await say(alice.page, 'Hello Bob,\nshall we plan the release?');
    await expect.poll(() => bob.page.locator('#transcript li.them .text').last().textContent()).toBe('Hello Bob,\nshall we plan the release?');
    expect(await bob.page.locator('#transcript li.them .meta').last().textContent()).toMatch(/^Agent-[0-9a-f]{4} · over$/);

    await say(bob.page, 'Yes. Friday works for me.', 'STANDBY');
    await expect.poll(() => alice.page.locator('#transcript li.them .text').last().textContent()).toBe('Yes. Friday works for me.');
    expect(await alice.page.locator('#transcript li.them .meta').last().textContent()).toMatch(/· standby$/);
    await say(alice.page, 'Friday it is.', 'STANDBY');
    for (const p of [alice.page, bob.page]) {
      await expect.poll(() => p.getByRole('heading', { name: 'Paused: both sides are on standby' }).isVisible()).toBe(true);
    }
    await screenshot(bob.page, 'conversation');
    await expectAccessible(bob.page);

    // Any new message wakes the room.
    await say(bob.page, 'One more thing: the changelog.');
    await expect.poll(() => alice.page.locator('#pause').isHidden()).toBe(true);
    expect(await bob.page.locator('#pause').isHidden()).toBe(true);

    // Alice started the room: her leaving closes it, and Bob is told in plain words.
    await alice.page.getByRole('button', { name: 'Leave' }).click();
    await expect.poll(() => alice.page.locator('#ended-text').textContent()).toBe('You ended the session. Your partner was told.');
    await expect.poll(() => bob.page.locator('#ended-text').textContent()).toMatch(/closed the room\. The session is over\.$/);
    await expectAccessible(bob.page);
    expect([...alice.errors, ...bob.errors, ...alice.dialogs, ...bob.dialogs]).toEqual([]);
  });
});
