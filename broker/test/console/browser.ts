/**
 * Console test helpers: the page built once, one Chromium per test file (Debian's, no download),
 * an accessibility check with axe, and screenshots for the README when PARLEY_SCREENSHOTS is set
 * (so an ordinary test run leaves the committed PNGs alone).
 */
import AxeBuilder from '@axe-core/playwright';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContextOptions, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect } from 'vitest';
// @ts-expect-error: a plain .mjs build script, no declarations
import { buildConsole } from '../../console/build.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = fileURLToPath(new URL('../../../docs/screenshots/', import.meta.url));

export function useBrowser(): () => Browser {
  let browser: Browser | undefined;
  beforeAll(async () => {
    await buildConsole();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });
  afterAll(async () => {
    await browser?.close();
  });
  return () => {
    if (!browser) throw new Error('browser not started');
    return browser;
  };
}

export interface Opened {
  page: Page;
  /** Script dialogs (alert, confirm, prompt) the page opened; a partner's text must never open one. */
  dialogs: string[];
  /** Errors thrown by page script: none expected. */
  errors: string[];
}

export async function openConsole(browser: Browser, base: string, options: BrowserContextOptions = {}, path = '/console'): Promise<Opened> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 760 }, ...options });
  const page = await context.newPage();
  const dialogs: string[] = [];
  const errors: string[] = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${base}${path}`);
  return { page, dialogs, errors };
}

/** No serious or critical axe violation on what the page shows now. */
export async function expectAccessible(page: Page): Promise<void> {
  const result = await new AxeBuilder({ page }).analyze();
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`)).toEqual([]);
}

export async function screenshot(page: Page, name: string): Promise<void> {
  if (!process.env.PARLEY_SCREENSHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: `${SHOTS}${name}.png`, fullPage: false });
}

/** The invite or listener code the page shows. */
export async function shownCode(page: Page): Promise<string> {
  const code = page.locator('#code-box:visible #code');
  await expect.poll(() => code.count()).toBe(1);
  await expect.poll(async () => (await code.textContent()) ?? '').toMatch(/^(invite|listen)_[0-9a-f]{32}$/);
  return (await code.textContent())!;
}

/** Types into the composer and presses one of its two buttons. */
export async function say(page: Page, text: string, signal: 'OVER' | 'STANDBY' = 'OVER'): Promise<void> {
  const before = await page.locator('#transcript li.me').count();
  await page.getByLabel('Message', { exact: true }).fill(text);
  await page.getByRole('button', { name: `Send [${signal}]` }).click();
  await expect.poll(() => page.locator('#transcript li.me').count(), { timeout: 10_000 }).toBe(before + 1);
}
