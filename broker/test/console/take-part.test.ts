/** The console's "take part" flow in a real Chromium against a real broker: people and agents in one room. */
import { describe, expect, it } from 'vitest';
import { broker, client, messageLines } from '../helpers.js';
import { expectAccessible, openConsole, say, screenshot, shownCode, useBrowser } from './browser.js';

const browser = useBrowser();

describe('console: take part', () => {
  it('two people in two browsers (one by keyboard only): start, join by code, talk with [OVER] and [STANDBY], see the standby pause', async () => {
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

    // Bob uses the keyboard only: Tab to the code field, type, Enter; the composer gets focus.
    await bob.page.keyboard.press('Tab');
    expect(await bob.page.evaluate(() => document.activeElement?.id)).toBe('start-btn');
    await bob.page.keyboard.press('Tab');
    expect(await bob.page.evaluate(() => document.activeElement?.id)).toBe('join-code');
    await bob.page.keyboard.type(code);
    await bob.page.keyboard.press('Enter');
    await expect.poll(() => bob.page.evaluate(() => document.activeElement?.id)).toBe('message');
    await expect.poll(() => alice.page.locator('#transcript li.notice').last().textContent()).toMatch(/^ParleyAgent-[0-9a-f]{4} joined\. The session is live\.$/);
    await expect.poll(() => alice.page.locator('#code-box').isHidden()).toBe(true);

    await say(alice.page, 'Hello Bob,\nshall we plan the release?');
    await expect.poll(() => bob.page.locator('#transcript li.them .text').last().textContent()).toBe('Hello Bob,\nshall we plan the release?');
    expect(await bob.page.locator('#transcript li.them .meta').last().textContent()).toMatch(/^Agent-[0-9a-f]{4} · over$/);

    // Bob answers with [STANDBY]: type, Tab past [OVER] to [STANDBY], Enter.
    await bob.page.keyboard.type('Yes. Friday works for me.');
    await bob.page.keyboard.press('Tab');
    expect(await bob.page.evaluate(() => document.activeElement?.textContent)).toBe('Send [OVER]');
    await bob.page.keyboard.press('Tab');
    expect(await bob.page.evaluate(() => document.activeElement?.textContent)).toBe('Send [STANDBY]');
    await bob.page.keyboard.press('Enter');
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

describe('console: a person and an agent', () => {
  it('a listener set up in the page, redeemed by a curl agent: both see ordinary messages, across a reload of the tab', async () => {
    const b = await broker();
    const api = client(b.url);
    const human = await openConsole(browser(), b.url);
    await human.page.getByRole('button', { name: 'Set up a listener' }).click();
    const code = await shownCode(human.page);
    expect(code).toMatch(/^listen_/);

    const agent = await api.registerAndJoin(code);
    expect(agent.status).toBe(200);
    expect(agent.json.role).toBe('host');
    expect(agent.json.headless).toBe(false); // a person is in the room
    await expect.poll(() => human.page.locator('#transcript li.notice').last().textContent()).toMatch(/joined\. The session is live\.$/);

    // The page holds a wait, so the agent sees its partner listening.
    await expect.poll(async () => (await api.ping(agent.json.token)).json.partner_presence).toBe('waiting');

    await api.send(agent.json.token, 'Hi! I am the build agent. What should I check?\nTwo lines. [OVER]');
    await expect.poll(() => human.page.locator('#transcript li.them .text').last().textContent()).toBe('Hi! I am the build agent. What should I check?\nTwo lines.');
    // Ctrl+Enter sends [OVER].
    await human.page.getByLabel('Message', { exact: true }).fill('Check the flaky login test,\nthen report.');
    await human.page.getByLabel('Message', { exact: true }).press('Control+Enter');
    const got = await api.wait(agent.json.token, 10);
    expect(got.headers.get('parley-event')).toBe('message');
    expect(got.text.split('\n')[1]).toMatch(/^┌─ Agent-[0-9a-f]{4} \[OVER\]$/);
    expect(messageLines(got.text)).toEqual(['Check the flaky login test,', 'then report.']);

    // A reload keeps the session (the token is in this tab's sessionStorage) and loses no event.
    await human.page.reload();
    await expect.poll(() => human.page.locator('#transcript li.notice').first().textContent()).toBe('ParleyReconnected to your session. Messages from before the reload are not kept in this tab.');
    await api.send(agent.json.token, 'Still there after your reload? [OVER]');
    await expect.poll(() => human.page.locator('#transcript li.them .text').allTextContents()).toEqual(['Still there after your reload?']);
    expect(await human.page.evaluate(() => document.cookie)).toBe('');
    expect(human.page.url()).toBe(`${b.url}/console`);

    // The agent leaves; the person, who created the room, stays in it and is told.
    await api.leave(agent.json.token);
    await expect.poll(() => human.page.locator('#transcript li.notice').last().textContent()).toMatch(/^ParleyAgent-[0-9a-f]{4} left\. You are alone in the room\.$/);
    await expect.poll(() => human.page.locator('#presence').textContent()).toBe('Your partner left. Nobody else can join this room: leave it to start a new session.');
    expect([...human.errors, ...human.dialogs]).toEqual([]);
  });

  it('on a phone-sized screen in the dark scheme: nothing overflows sideways, the composer stays in view', async () => {
    const b = await broker();
    const api = client(b.url);
    const human = await openConsole(browser(), b.url, { viewport: { width: 390, height: 760 }, colorScheme: 'dark', isMobile: true, hasTouch: true });
    expect(await human.page.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe('rgb(18, 20, 24)');
    await expectAccessible(human.page);
    await screenshot(human.page, 'phone-start-dark');
    await human.page.getByRole('button', { name: 'Start a session' }).click();
    const agent = (await api.registerAndJoin(await shownCode(human.page))).json.token;
    await api.send(agent, `The report is at https://ci.example/${'x'.repeat(120)} and says:\nall 412 tests pass. [OVER]`);
    await expect.poll(() => human.page.locator('#transcript li.them').count()).toBe(1);
    await say(human.page, 'Thanks, merge it.', 'STANDBY');
    expect(await human.page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    for (const name of ['Send [OVER]', 'Send [STANDBY]', 'Leave']) {
      const box = await human.page.getByRole('button', { name }).boundingBox();
      expect(box).not.toBeNull();
      expect(box!.x + box!.width).toBeLessThanOrEqual(390);
      expect(box!.y + box!.height).toBeLessThanOrEqual(760);
    }
    await expectAccessible(human.page);
    await screenshot(human.page, 'phone-dark');
  });
});
