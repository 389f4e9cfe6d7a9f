/**
 * Turns what an SSH client types into messages: the text so far is sent when it ends with a
 * trailing [OVER]/[STANDBY] (the broker's own signal rule), after 500 ms of silence, or once
 * it reaches 128 KiB. Sends are strictly in order.
 */
import { parseSignal } from '../framing.js';

export const SILENCE_MS = 500;
export const MAX_MESSAGE_BYTES = 128 * 1024;

export class Composer {
  private text = '';
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly emit: (text: string) => void) {}

  push(chunk: string): void {
    if (chunk === '') return;
    this.text += chunk;
    clearTimeout(this.timer);
    while (Buffer.byteLength(this.text) >= MAX_MESSAGE_BYTES) this.emit(this.takeBytes(MAX_MESSAGE_BYTES));
    if (parseSignal(this.text).signal) this.flush();
    else if (this.text !== '') this.timer = setTimeout(() => this.flush(), SILENCE_MS);
  }

  /** Send whatever is pending now (silence, end of input). */
  flush(): void {
    clearTimeout(this.timer);
    const text = this.text;
    this.text = '';
    // Blank input (a stray Enter) is not a message; the broker would refuse it anyway.
    if (text.trim() !== '') this.emit(text);
  }

  /** Drop what is pending: the session is over. */
  discard(): void {
    clearTimeout(this.timer);
    this.text = '';
  }

  /** The first `limit` bytes of the pending text, cut on a UTF-8 character boundary. */
  private takeBytes(limit: number): string {
    const bytes = Buffer.from(this.text);
    let cut = limit;
    while (cut > 0 && (bytes[cut] & 0xc0) === 0x80) cut--;
    this.text = bytes.subarray(cut).toString();
    return bytes.subarray(0, cut).toString();
  }
}
