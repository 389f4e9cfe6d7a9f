/**
 * The client side of one SSH session as text in and text out. Without a pty (how agents and
 * scripts connect) bytes pass straight through. With a pty (a human at `ssh -t`) the client's
 * terminal is raw, so this does the little a line discipline must: echo, backspace, Enter,
 * Ctrl-C / Ctrl-D, and CRLF line ends on output; input is handed on in whole lines.
 */
import { StringDecoder } from 'node:string_decoder';
import type { ServerChannel } from 'ssh2';
import { MAX_MESSAGE_BYTES } from './composer.js';

/** The longest line a terminal user can type: a message's size. What comes after is dropped, and the user told. */
export const MAX_LINE_BYTES = MAX_MESSAGE_BYTES;
const LINE_TOO_LONG = `\r\n[LINE TOO LONG] A line holds at most ${MAX_LINE_BYTES / 1024} KiB: the rest was dropped. Enter sends what fits.\r\n`;

export class Terminal {
  private readonly decoder = new StringDecoder('utf8');
  /** The line being typed (pty only), one code point per entry. */
  private line: string[] = [];
  private lineBytes = 0;
  private overflowTold = false;

  constructor(
    private readonly channel: ServerChannel,
    private readonly pty: boolean,
  ) {}

  get open(): boolean {
    return this.channel.writable && !this.channel.destroyed;
  }

  write(text: string): void {
    if (this.open) this.channel.write(this.pty ? text.replace(/\r?\n/g, '\r\n') : text);
  }

  writeError(text: string): void {
    if (this.open) (this.pty ? this.channel : this.channel.stderr).write(this.pty ? text.replace(/\r?\n/g, '\r\n') : text);
  }

  /**
   * Feeds input to `onText` until the client ends it (EOF, Ctrl-D on an empty line, Ctrl-C), then
   * calls `onEnd` once. With a pty, each data chunk costs one pass: backspace is a pop, the echo
   * is one write, and the lines completed in the chunk are handed on together.
   */
  read(onText: (text: string) => void, onEnd: () => void): void {
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      const rest = this.decoder.end() + this.line.join('');
      this.line = [];
      if (rest) onText(rest);
      onEnd();
    };
    this.channel.on('data', (chunk: Buffer) => {
      if (ended) return;
      const text = this.decoder.write(chunk);
      if (!this.pty) return onText(text);
      let echo = '';
      let lines = '';
      let interrupted = false;
      // Arrow and function keys arrive as escape sequences: not text.
      for (const ch of text.replace(/\x1b(\[[0-9;?]*[ -\/]*[@-~]|O.|.)?/g, '')) {
        if (ch === '\r' || ch === '\n') {
          echo += '\r\n';
          lines += `${this.line.join('')}\n`;
          this.line = [];
          this.lineBytes = 0;
          this.overflowTold = false;
        } else if (ch === '\x7f' || ch === '\b') {
          const last = this.line.pop();
          if (last !== undefined) {
            this.lineBytes -= utf8Bytes(last);
            echo += '\b \b';
          }
        } else if (ch === '\x03' || (ch === '\x04' && this.line.length === 0)) {
          echo += '\r\n';
          interrupted = true;
          break;
        } else if (ch >= ' ' || ch === '\t') {
          const bytes = utf8Bytes(ch);
          if (this.lineBytes + bytes > MAX_LINE_BYTES) {
            if (!this.overflowTold) echo += LINE_TOO_LONG;
            this.overflowTold = true;
            continue;
          }
          this.line.push(ch);
          this.lineBytes += bytes;
          echo += ch;
        }
      }
      if (echo && this.open) this.channel.write(echo);
      if (lines) onText(lines);
      if (interrupted) end();
    });
    this.channel.on('end', end);
  }
}

function utf8Bytes(codePoint: string): number {
  const c = codePoint.codePointAt(0)!;
  return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
}
