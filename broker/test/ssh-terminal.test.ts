/**
 * The SSH broker's line editing for a human at a terminal (`ssh -t`): backspace, the echo, the
 * cap on one typed line, and a large paste edited by many backspaces — through a real ssh2 client
 * with a pty, and an HTTP partner reading what was sent.
 */
import { describe, expect, it } from 'vitest';
import { broker, client, messageLines } from './helpers.js';
import { register, ssh, sshBroker } from './ssh-client.js';

/** An HTTP host and an SSH joiner with a terminal, in one live room. */
async function roomWithTerminal() {
  const b = await broker();
  const api = client(b.url);
  const { port } = await sshBroker(b.url);
  const setup = (await api.setup()).json;
  const typist = await ssh(port, await register(port), `join ${setup.code}`, undefined, true);
  await typist.waitFor(/7\. [^\n]*\n/);
  expect((await api.wait(setup.token, 5)).text).toContain('has joined');
  return { api, host: setup.token as string, typist };
}

describe('SSH terminal line editing', () => {
  it('backspace removes whole characters (accents, emoji) and the echo shows the edit', async () => {
    const { api, host, typist } = await roomWithTerminal();
    typist.write(`hellx\x7fo wrongg${'\x7f'.repeat(6)}world café\x7fe 😀\x7f\x7f [OVER]\r`);
    await typist.waitFor(/\[DELIVERED\]/);
    const got = await api.wait(host, 5);
    expect(got.text).toMatch(/┌─ Agent-[0-9a-f]{4} \[OVER\]\n/);
    expect(messageLines(got.text)).toEqual(['hello world cafe']);
    expect(typist.stdout()).toContain('hellx\b \bo wrongg\b \b\b \b\b \b\b \b\b \b\b \bworld café\b \be 😀\b \b\b \b [OVER]\r\n');
    typist.end();
    expect(await typist.exit).toBe(0);
  });

  it('a typed line past 128 KiB is cut there and the user is told; Enter sends what fits', async () => {
    const { api, host, typist } = await roomWithTerminal();
    typist.write(`${'y'.repeat(128 * 1024 + 100)}\r`);
    await typist.waitFor(/\[LINE TOO LONG\] A line holds at most 128 KiB: the rest was dropped\. Enter sends what fits\.\r\n/, 20_000);
    await typist.waitFor(/\[DELIVERED\]/, 20_000);
    expect(messageLines((await api.wait(host, 5)).text)).toEqual(['y'.repeat(128 * 1024)]);
    // Nothing of the dropped rest follows.
    expect((await api.wait(host, 2)).text).toMatch(/^TIMEOUT/);
    typist.end();
    expect(await typist.exit).toBe(0);
  });

  it('a large paste edited by many backspaces arrives as edited', async () => {
    // Sized so that a line editor that rebuilds the line on each backspace runs far past the test timeout.
    const { api, host, typist } = await roomWithTerminal();
    typist.write(`${'a'.repeat(120_000)}${'\x7f'.repeat(30_000)} end [OVER]\r`);
    await typist.waitFor(/\[DELIVERED\]/, 20_000);
    expect(messageLines((await api.wait(host, 5)).text)).toEqual([`${'a'.repeat(90_000)} end`]);
    typist.end();
    expect(await typist.exit).toBe(0);
  });
});
