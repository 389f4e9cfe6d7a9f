/**
 * The web console as a conformance driver: each participant is a person in a browser tab who
 * clicks and types. Events are read off the transcript (each entry's data-kind is its event kind),
 * refusals off the error line's data-code. status() asks GET /ping with the tab's own token, as
 * the page itself does for its presence line.
 */
import type { Browser, Page } from 'playwright-core';
import type { EventKind } from '../../src/engine/events.js';
import type { Driver, Outcome, Participant, SeenEvent } from '../conformance/driver.js';

/** Entries that are events from the broker (not the person's own messages, not the page's own notes). */
const EVENTS = '#transcript li:not([data-kind="sent"]):not([data-kind="local"])';
const TRAILING_SIGNAL = /\[(OVER|STANDBY)\]\s*$/i;

export function consoleDriver(browser: Browser, base: string): Driver {
  const tab = async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${base}/console`);
    return page;
  };
  const tokenOf = (page: Page) => page.evaluate(() => (JSON.parse(sessionStorage.getItem('parley.console') ?? 'null') as { token: string } | null)?.token ?? '');

  const participant = (page: Page, token: string): Participant => {
    let read = 0;
    return {
      async send(text): Promise<Outcome> {
        const m = TRAILING_SIGNAL.exec(text);
        const signal = m?.[1].toUpperCase() === 'STANDBY' ? 'STANDBY' : 'OVER';
        const sent = page.locator('#transcript li[data-kind="sent"]');
        const before = await sent.count();
        await page.getByLabel('Message', { exact: true }).fill(m ? text.slice(0, m.index) : text);
        await page.getByRole('button', { name: `Send [${signal}]` }).click();
        const error = page.locator('#send-error[data-code]');
        await page.waitForFunction(
          (n) => document.querySelectorAll('#transcript li[data-kind="sent"]').length > n || document.querySelector('#send-error[data-code]') !== null,
          before,
          { timeout: 15_000 },
        );
        if ((await sent.count()) > before) return { ok: true };
        return { ok: false, code: (await error.getAttribute('data-code')) ?? '' };
      },
      async next(timeoutMs = 2000): Promise<SeenEvent | null> {
        try {
          await page.waitForFunction(([sel, n]) => document.querySelectorAll(sel as string).length > (n as number), [EVENTS, read] as const, { timeout: timeoutMs });
        } catch {
          return null;
        }
        const li = page.locator(EVENTS).nth(read++);
        const kind = (await li.getAttribute('data-kind')) as EventKind;
        const e: SeenEvent = { kind, raw: await li.innerText() };
        if (kind === 'message') {
          e.text = (await li.locator('.text').textContent()) ?? '';
          e.signal = (await li.getAttribute('class'))?.includes('standby') ? 'STANDBY' : 'OVER';
        }
        return e;
      },
      async status() {
        const p = await page.evaluate(async (t) => (await fetch('/ping', { headers: { authorization: `Bearer ${t}` } })).json(), token);
        return { inRoom: p.room_alive, paused: p.paused, partner: p.partner_connected };
      },
      async resume(): Promise<Outcome> {
        const button = page.getByRole('button', { name: 'Resume the session' });
        // The page offers Resume only while the room is loop-paused.
        if (!(await button.isVisible())) throw new Error('the console shows no Resume button: the room is not loop-paused here');
        await button.click();
        await page.locator('#pause').waitFor({ state: 'hidden', timeout: 15_000 });
        return { ok: true };
      },
      async leave() {
        const button = page.getByRole('button', { name: 'Leave' });
        if (await button.isVisible()) await button.click();
        await page.locator('#ended').waitFor({ state: 'visible', timeout: 15_000 });
      },
      async close() {
        await page.context().close();
      },
    };
  };

  const entered = async (page: Page) => {
    await page.locator('#room').waitFor({ state: 'visible', timeout: 15_000 });
    return participant(page, await tokenOf(page));
  };

  return {
    name: 'console',
    async open(kind) {
      const page = await tab();
      await page.getByRole('button', { name: kind === 'listener' ? 'Set up a listener' : 'Start a session' }).click();
      const code = page.locator('#code-box:visible #code');
      await code.waitFor({ timeout: 15_000 });
      return { participant: await entered(page), code: (await code.textContent()) ?? '' };
    },
    async join(code) {
      const page = await tab();
      await page.getByLabel('Invite or listener code').fill(code);
      await page.getByRole('button', { name: 'Join', exact: true }).click();
      await page.waitForFunction(() => !document.getElementById('room')!.hidden || document.querySelector('#start-error[data-code]') !== null, undefined, { timeout: 15_000 });
      const refused = await page.locator('#start-error').getAttribute('data-code');
      if (refused) {
        await page.context().close();
        return { refused };
      }
      return { participant: await entered(page) };
    },
  };
}
