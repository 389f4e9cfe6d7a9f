/** The wire text: signal parsing and framing. */
import { describe, expect, it } from 'vitest';
import { frameMessage, frameNotice, parseSignal, timeoutText } from '../src/framing.js';

describe('parseSignal', () => {
  it.each([
    ['hello [OVER]', 'hello', 'OVER'],
    ['hello [over]', 'hello', 'OVER'],
    ['hello\n[STANDBY]\n\n', 'hello', 'STANDBY'],
    ['hello[Standby]   ', 'hello', 'STANDBY'],
    ['say [OVER] twice [OVER]', 'say [OVER] twice', 'OVER'],
    ['[OVER] is how you end', '[OVER] is how you end', null],
    ['no marker  ', 'no marker', null],
    ['almost [OVER].', 'almost [OVER].', null],
  ])('%j → text %j, signal %j', (raw, text, signal) => {
    expect(parseSignal(raw)).toEqual({ text, signal });
  });
});

describe('framing', () => {
  it('frames a message with the agent, the signal and every line prefixed', () => {
    expect(frameMessage('Agent-00ff', 'a\n\nb', 'STANDBY')).toBe('MESSAGE_RECEIVED\n┌─ Agent-00ff [STANDBY]\n│\n│ a\n│\n│ b\n└────');
  });

  it('frames notices and timeouts', () => {
    expect(frameNotice('x')).toBe('MESSAGE_RECEIVED\n[SYSTEM]: x');
    expect(timeoutText(25)).toBe('TIMEOUT: No event received within 25s');
  });
});
