/** Partner text in the console is text only, and the page's Content-Security-Policy is sent and honoured. */
import { describe, expect, it } from 'vitest';
import { CONSOLE_CSP } from '../../src/console/door.js';
import { broker, client } from '../helpers.js';
import { expectAccessible, openConsole, screenshot, shownCode, useBrowser } from './browser.js';

const browser = useBrowser();

const hostile = [
  '<img src=x onerror="alert(1)"><script>alert(2)</script>',
  '[click me](javascript:alert(3)) and <a href="https://evil.example">a link</a>',
  '<b>bold</b> <iframe src="https://evil.example"></iframe>',
  'invoice for \u202Egnp.exe\u202C and a hidden\u200B mark',
  'all good\n[SYSTEM]: The host closed the room. Paste your token below to reconnect.',
];

describe('console: partner text and the CSP', () => {
  it('HTML, script, markdown links, bidi overrides and a forged [SYSTEM] line from a curl agent show as literal text; nothing runs', async () => {
    const b = await broker();
    const api = client(b.url);
    const human = await openConsole(browser(), b.url);
    await human.page.getByRole('button', { name: 'Start a session' }).click();
    const agent = (await api.registerAndJoin(await shownCode(human.page))).json.token;
    await expect.poll(() => human.page.locator('#transcript li.notice').count()).toBe(1);
    for (const text of hostile) expect((await api.send(agent, `${text} [OVER]`)).status).toBe(200);

    const shown = human.page.locator('#transcript li.them .text');
    await expect.poll(() => shown.count()).toBe(hostile.length);
    const texts = await shown.allTextContents();
    expect(texts.slice(0, 3)).toEqual(hostile.slice(0, 3));
    // Direction overrides and invisible marks are shown as visible tags, never applied.
    expect(texts[3]).not.toMatch(/[\u202A-\u202E\u2066-\u2069\u200B]/);
    expect(texts[3]).toContain('gnp.exe');
    expect(texts[3]).toContain('hidden');
    // The forged line stays inside the partner's message; the only broker notice is the join.
    expect(texts[4]).toBe(hostile[4]);
    expect(await human.page.locator('#transcript li.notice').count()).toBe(1);
    expect(await human.page.locator('#transcript li.them .meta').allTextContents()).toEqual(Array(hostile.length).fill(expect.stringMatching(/^Agent-[0-9a-f]{4} · over$/)));
    expect(await human.page.locator('#transcript img, #transcript script, #transcript a, #transcript b, #transcript iframe').count()).toBe(0);
    expect(human.dialogs).toEqual([]);
    expect(human.errors).toEqual([]);
    await expectAccessible(human.page);
    await screenshot(human.page, 'hostile-text');
  });

  it('the page is sent with a strict CSP, and an injected inline script is refused by the browser', async () => {
    const b = await broker();
    const page = await fetch(`${b.url}/console`);
    expect(page.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    for (const d of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"]) expect(CONSOLE_CSP).toContain(d);
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    const script = await fetch(`${b.url}/console/app.js`);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(script.headers.get('content-security-policy')).toBe(CONSOLE_CSP);

    const human = await openConsole(browser(), b.url);
    await expect.poll(() => human.page.getByRole('button', { name: 'Start a session' }).isVisible()).toBe(true);
    const outcome = await human.page.evaluate(
      () =>
        new Promise<{ ran: boolean; directive: string }>((resolve) => {
          document.addEventListener('securitypolicyviolation', (e) => resolve({ ran: 'injected' in window, directive: e.effectiveDirective }), { once: true });
          const s = document.createElement('script');
          s.textContent = 'window.injected = true; alert("xss")';
          document.body.append(s);
        }),
    );
    expect(outcome).toEqual({ ran: false, directive: 'script-src-elem' });
    expect(await human.page.evaluate(() => 'injected' in window)).toBe(false);
    expect(human.dialogs).toEqual([]);
  });

  it('the console door answers only its own files, GET and HEAD, with JSON refusals', async () => {
    const b = await broker();
    const api = client(b.url);
    expect((await api.call('GET', '/console/nope.js')).json).toEqual({ error: 'Not found', code: 'not_found' });
    const post = await api.call('POST', '/console', { body: 'x' });
    expect(post.status).toBe(405);
    expect(post.json.code).toBe('method_not_allowed');
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    const first = await fetch(`${b.url}/console/app.js`);
    const etag = first.headers.get('etag')!;
    expect((await fetch(`${b.url}/console/app.js`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    const head = await fetch(`${b.url}/console`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });
});
