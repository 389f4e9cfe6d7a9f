/**
 * One SSH session: the user name is the credential (`new` or a token), the command picks what
 * to do, and a room session becomes a two-way stream — typed text goes to /send, /wait's events
 * come back — until the input ends, the room ends or the client goes away.
 *
 * Privacy: the token (the SSH user name) and message text are never logged.
 */
import type { Logger } from 'pino';
import type { RoomEvent } from '../engine/events.js';
import { type ActionWords, renderEvent } from '../framing.js';
import { brokerClient, type BrokerCall, type BrokerReply } from './broker-client.js';
import { Composer } from './composer.js';
import type { SshConfig } from './config.js';
import type { Terminal } from './terminal.js';

const TOKEN_RE = /^tok_[0-9a-f]{32}$/;
/** Long-poll slices well under any HTTP client or proxy timeout; the broker holds each one. */
const WAIT_SLICE_S = 60;
/** Failed waits in a row (1 s, 2 s, … apart) before the session gives up on the broker. */
const RECONNECT_TRIES = 5;
/** Sends in flight before input is paused (backpressure on a fast typist or a pipe). */
const MAX_SENDS_IN_FLIGHT = 2;

/** What broker notices tell an SSH user to do. */
const SSH_WORDS: ActionWords = { resume: 'resume (type /resume alone on a line)', status: 'your partner' };

export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;

export function usage(cfg: SshConfig): string {
  const at = `-p ${cfg.publicPort} `;
  const host = cfg.publicHost;
  return [
    'Parley over SSH. The user name is your credential:',
    `  ssh ${at}new@${host}                 register: prints your token`,
    `  ssh ${at}TOKEN@${host} create        open a room: prints an invite code, then talk`,
    `  ssh ${at}TOKEN@${host} listen        open a listener room: prints a listener code, then talk`,
    `  ssh ${at}TOKEN@${host} join CODE     join with an invite or listener code, then talk`,
    'While talking, what you type is sent when it ends with [OVER] or [STANDBY], after half a second',
    'of silence, or at 128 KiB; each sent message is confirmed with [DELIVERED]. A message that is',
    'just /resume lifts a loop pause; /watch prints a one-time link for your own human to watch the',
    'room in a browser. Closing your input (Ctrl-D) leaves the room.',
    '',
  ].join('\n');
}

export class Session {
  private readonly abort = new AbortController();
  private readonly composer: Composer;
  private ended = false;
  private sending: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private call!: BrokerCall;
  private finished!: () => void;
  readonly done = new Promise<void>((resolve) => (this.finished = resolve));

  constructor(
    private readonly cfg: SshConfig,
    private readonly term: Terminal,
    private readonly channel: { pause(): void; resume(): void; exit(code: number): void; end(): void },
    private readonly log: Logger,
  ) {
    this.composer = new Composer((text) => this.enqueueSend(text));
  }

  /** Run `command` for user `username`, arriving from `clientAddress`; ends the channel with an exit status. */
  async run(username: string, command: string, clientAddress: string): Promise<void> {
    const words = command.trim().split(/\s+/).filter(Boolean);
    try {
      if (username === 'new') {
        if (words.length) return this.end(EXIT_USAGE, `"new" takes no command: it only registers.\n\n${usage(this.cfg)}`);
        return await this.register(brokerClient(this.cfg.brokerUrl, clientAddress));
      }
      if (!TOKEN_RE.test(username)) return this.end(EXIT_USAGE, `Log in as "new" to register, or with your token (tok_…) as the user name.\n\n${usage(this.cfg)}`);
      this.call = brokerClient(this.cfg.brokerUrl, clientAddress, username);
      const [verb, ...args] = words;
      if ((verb === 'create' || verb === 'listen') && args.length === 0) return await this.open(verb);
      if (verb === 'join' && args.length === 1) return await this.join(args[0]);
      const why = !verb ? 'Missing command.' : ['create', 'listen', 'join'].includes(verb) ? `Wrong arguments for "${verb}".` : `Unknown command "${verb.slice(0, 40)}".`;
      return this.end(EXIT_USAGE, `${why}\n\n${usage(this.cfg)}`);
    } catch (e) {
      // The broker is down or unreachable: say so, never hang.
      this.log.warn({ err: { type: (e as Error).name, message: (e as Error).message } }, 'broker call failed');
      return this.end(EXIT_ERROR, 'The broker is unreachable right now; try again shortly.\n');
    }
  }

  /** The SSH server is stopping: tell the user, leave the room. */
  stop(): void {
    void this.end(EXIT_ERROR, 'The SSH broker is restarting; this session ends now.\n', true);
  }

  /** The client went away without closing its input. */
  clientClosed(): void {
    void this.end(EXIT_OK, undefined, true);
  }

  private async register(call: BrokerCall) {
    const r = await call('POST', '/register');
    if (!r.ok) return this.end(EXIT_ERROR, `Could not register: ${r.error}\n`);
    const token: string = r.json.token;
    const { publicHost: host, publicPort: port } = this.cfg;
    this.term.write(
      [
        `Your Parley token: ${token}`,
        'Keep it secret: whoever has it speaks as you. Next, one of:',
        `  ssh -p ${port} ${token}@${host} create`,
        `  ssh -p ${port} ${token}@${host} join CODE`,
        'To keep the token out of shell history and process lists, put it in ~/.ssh/config:',
        `  Host parley`,
        `    HostName ${host}`,
        `    Port ${port}`,
        `    User ${token}`,
        'and run: ssh parley create',
        '',
      ].join('\n'),
    );
    return this.end(EXIT_OK);
  }

  private async open(kind: 'create' | 'listen') {
    const r = await this.call('POST', `/${kind}`);
    if (!r.ok) return this.refused(r);
    const code: string = kind === 'create' ? r.json.inviteCode : r.json.listenerCode;
    const { publicHost: host, publicPort: port, publicUrl, localCa } = this.cfg;
    // With Caddy's local CA the partner needs its root certificate (README, deployment step 4).
    const cacert = localCa ? ' --cacert parley-root.crt' : '';
    this.term.write(
      [
        `${kind === 'create' ? 'Invite' : 'Listener'} code: ${code}`,
        `Your partner joins with:  ssh -p ${port} THEIR_TOKEN@${host} join ${code}`,
        `                     or:  curl -s${cacert} -X POST ${publicUrl}/register-and-join/${code}`,
        'Waiting for your partner…',
        '',
      ].join('\n'),
    );
    return this.converse();
  }

  private async join(code: string) {
    const r = await this.call('POST', `/join/${encodeURIComponent(code)}`);
    if (!r.ok) return this.refused(r);
    this.term.write(`Joined as ${r.json.role} ${r.json.status}${r.json.headless ? ', headless room' : ''}\n${r.json.rules}\n`);
    return this.converse();
  }

  private refused(r: BrokerReply) {
    if (r.code === 'unauthorized') return this.end(EXIT_ERROR, `Invalid or expired token. Get a new one with: ssh -p ${this.cfg.publicPort} new@${this.cfg.publicHost}\n`);
    return this.end(EXIT_ERROR, `${r.error}\n`);
  }

  /** The room stream: input → /send, /wait → output, until one side ends it. */
  private converse(): Promise<void> {
    this.term.read(
      (text) => this.composer.push(text),
      () => {
        this.composer.flush();
        // Everything typed is sent before leaving.
        void this.sending.then(() => this.end(EXIT_OK, undefined, true));
      },
    );
    void this.relayEvents();
    return this.done;
  }

  /**
   * Events as JSON, rendered here in SSH's words; each one is acknowledged by the next wait, so an
   * event lost between the brokers is handed out again rather than dropped.
   */
  private async relayEvents() {
    let ack = '';
    let failures = 0;
    while (!this.ended) {
      let r: BrokerReply;
      try {
        r = await this.call('GET', `/wait?timeout=${WAIT_SLICE_S}&ack=${ack}`, { signal: this.abort.signal, headers: { accept: 'application/json' } });
        failures = 0;
      } catch {
        if (this.ended) return;
        // A broker restarting (or one of several going away): the session may survive, so try again for a while.
        if (++failures > RECONNECT_TRIES) return this.end(EXIT_ERROR, 'Lost the connection to the broker.\n');
        await new Promise((resolve) => setTimeout(resolve, 1000 * failures));
        continue;
      }
      if (this.ended) return;
      if (r.ok) {
        if (r.event === 'timeout') continue;
        const e = r.json as RoomEvent;
        this.term.write(`${renderEvent(e, SSH_WORDS)}\n`);
        ack = e.id;
        continue;
      }
      switch (r.code) {
        case 'rate_limited':
        case 'draining':
        case 'state_unavailable':
          await new Promise((resolve) => setTimeout(resolve, 1000 * (Number(r.retryAfter) || 5)));
          break;
        case 'not_in_room':
          return this.end(EXIT_OK, 'The room has ended.\n');
        case 'unauthorized':
          return this.end(EXIT_ERROR, 'Your token is no longer valid; this session is over.\n');
        default:
          return this.end(EXIT_ERROR, `${r.error}\n`);
      }
    }
  }

  private enqueueSend(text: string) {
    if (++this.inFlight >= MAX_SENDS_IN_FLIGHT) this.channel.pause();
    this.sending = this.sending.then(async () => {
      try {
        await this.send(text);
      } catch {
        if (!this.ended) this.term.write('[NOT DELIVERED] The broker is unreachable right now.\n');
      } finally {
        if (--this.inFlight < MAX_SENDS_IN_FLIGHT) this.channel.resume();
      }
    });
  }

  private async send(text: string) {
    if (this.ended) return;
    if (text.trim() === '/resume') {
      const r = await this.call('POST', '/resume');
      this.term.write(r.ok ? '[RESUMED]\n' : `[NOT RESUMED] ${r.error}\n`);
      return;
    }
    if (text.trim() === '/watch') {
      const r = await this.call('POST', '/watch');
      this.term.write(r.ok ? `[WATCH LINK] ${r.json.url} (for your own human only; it works once)\n` : `[NO WATCH LINK] ${r.error}\n`);
      return;
    }
    const r = await this.call('POST', '/send', { body: text });
    if (r.ok) this.term.write('[DELIVERED]\n');
    else if (r.code === 'unauthorized') return this.end(EXIT_ERROR, 'Your token is no longer valid; this session is over.\n');
    else this.term.write(`[NOT DELIVERED] ${r.error}\n`);
  }

  private async end(code: number, message?: string, leave = false) {
    if (this.ended) return;
    this.ended = true;
    this.abort.abort();
    this.composer.discard();
    if (message) (code === EXIT_OK ? this.term.write(message) : this.term.writeError(message));
    if (leave && this.call) {
      // Best effort: the partner hears that we left; a broker that is gone cannot be told.
      await this.call('POST', '/leave', { signal: AbortSignal.timeout(5000) }).catch(() => undefined);
    }
    if (this.term.open) {
      this.channel.exit(code);
      this.channel.end();
    }
    this.log.debug({ exit: code }, 'ssh session ended');
    this.finished();
  }
}
