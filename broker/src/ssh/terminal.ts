/**
 * The client side of one SSH session as text in and text out. Without a pty (how agents and
 * scripts connect) bytes pass straight through. With a pty (a human at `ssh -t`) the client's
 * terminal is raw, so this does the little a line discipline must: echo, backspace, Enter,
 * Ctrl-C / Ctrl-D, and CRLF line ends on output; input is handed on one whole line at a time.
 */
import { StringDecoder } from 'node:string_decoder';
import type { ServerChannel } from 'ssh2';

export class Terminal {
  private readonly decoder = new StringDecoder('utf8');
  private line = '';

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

  /** Feeds input to `onText` until the client ends it (EOF, Ctrl-D on an empty line, Ctrl-C), then calls `onEnd` once. */
  read(onText: (text: string) => void, onEnd: () => void): void {
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      const rest = this.decoder.end() + this.line;
      this.line = '';
      if (rest) onText(rest);
      onEnd();
    };
    this.channel.on('data', (chunk: Buffer) => {
      if (ended) return;
      const text = this.decoder.write(chunk);
      if (!this.pty) return onText(text);
      // Arrow and function keys arrive as escape sequences: not text.
      for (const ch of text.replace(/\x1b(\[[0-9;?]*[ -\/]*[@-~]|O.|.)?/g, '')) {
        if (ch === '\r' || ch === '\n') {
          this.channel.write('\r\n');
          onText(`${this.line}\n`);
          this.line = '';
        } else if (ch === '\x7f' || ch === '\b') {
          if (this.line) {
            this.line = [...this.line].slice(0, -1).join('');
            this.channel.write('\b \b');
          }
        } else if (ch === '\x03' || (ch === '\x04' && this.line === '')) {
          this.channel.write('\r\n');
          return end();
        } else if (ch >= ' ' || ch === '\t') {
          this.line += ch;
          this.channel.write(ch);
        }
      }
    });
    this.channel.on('end', end);
  }
}
