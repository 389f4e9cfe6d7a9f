/**
 * The SSH door as a conformance driver: each participant is a real ssh2 session on the SSH broker.
 * SSH shows people text, so this driver reads events back from the stream; status, which SSH
 * has no command for, is asked of the HTTP API with the same token (the SSH user name).
 */
import { REFUSALS, type RefusalCode } from '../../src/engine/errors.js';
import type { EventKind } from '../../src/engine/events.js';
import { parseFrame } from '../frames.js';
import { ssh, type SshSession } from '../ssh-client.js';
import type { Driver, Outcome, Participant, SeenEvent } from './driver.js';

const FRAME = /MESSAGE_RECEIVED\n(?:┌─[^\n]*\n│\n(?:│[^\n]*\n)*?└────|\[SYSTEM(?: ALERT)?\]: [^\n]*(?:\n(?!MESSAGE_RECEIVED|\[)[^\n]*)*)\n/g;

/** The event kind of a rendered notice (the SSH door's own words). */
function kindOf(frame: string): EventKind {
  if (frame.startsWith('MESSAGE_RECEIVED\n┌─')) return 'message';
  const rules: [RegExp, EventKind][] = [
    [/\[SYSTEM ALERT\]: Loop detected/, 'loop_alarm'],
    [/has joined\. Session is live!/, 'partner_joined'],
    [/has left the room\.|'s session expired\.$/m, 'partner_left'],
    [/closed the room|session .*expired.*over|You left the room|Your session expired|code expired/, 'room_closed'],
    [/Both agents are on STANDBY/, 'standby_pause'],
    [/resumed the session/, 'resumed'],
    [/Room rule changed/, 'rule_changed'],
    [/was not collected|was dropped unread/, 'undelivered'],
    [/broker is restarting/, 'broker_restarting'],
  ];
  for (const [re, kind] of rules) if (re.test(frame)) return kind;
  throw new Error(`unknown SSH notice: ${frame}`);
}

/** A refusal message back to its catalogue code (SSH prints the message). */
function codeOf(message: string): string {
  const hit = (Object.entries(REFUSALS) as [RefusalCode, string][]).find(([, text]) => message.startsWith(text));
  return hit?.[0] ?? `unrecognised: ${message}`;
}

export function sshDriver(httpBase: string, sshPort: number): Driver {
  const register = async () => (await (await fetch(`${httpBase}/register`, { method: 'POST' })).json()).token as string;
  const participant = (token: string, s: SshSession): Participant => {
    let read = 0; // how much of stdout has been taken as events
    const confirmed = new Map<string, number>(); // confirmations taken so far, per kind
    const confirmation = async (re: RegExp) => {
      const n = confirmed.get(re.source) ?? 0;
      confirmed.set(re.source, n + 1);
      const all = await s.waitFor(new RegExp(`(?:${re.source}[^\\n]*\\n[^]*?){${n + 1}}`));
      return [...all.matchAll(new RegExp(`${re.source}([^\\n]*)\\n`, 'g'))][n];
    };
    return {
      async send(text) {
        s.write(`${text}\n`);
        const line = await confirmation(/\[(?:NOT )?DELIVERED\]/);
        return line[0].startsWith('[DELIVERED]') ? { ok: true } : { ok: false, code: codeOf(line[1].trim()) };
      },
      async next(timeoutMs = 2000): Promise<SeenEvent | null> {
        const until = Date.now() + timeoutMs;
        for (;;) {
          FRAME.lastIndex = read;
          const m = FRAME.exec(s.stdout());
          if (m) {
            read = m.index + m[0].length;
            const raw = m[0];
            const kind = kindOf(raw);
            return kind === 'message' ? { kind, raw, ...parseFrame(raw.replace(/\n$/, '')) } : { kind, raw };
          }
          if (Date.now() >= until) return null;
          await new Promise((r) => setTimeout(r, 20));
        }
      },
      async status() {
        const r = await (await fetch(`${httpBase}/ping`, { headers: { authorization: `Bearer ${token}` } })).json();
        return { inRoom: r.room_alive, paused: r.paused, partner: r.partner_connected };
      },
      async resume(): Promise<Outcome> {
        s.write('/resume\n');
        const line = await confirmation(/\[(?:NOT )?RESUMED\]/);
        return line[0].startsWith('[RESUMED]') ? { ok: true } : { ok: false, code: codeOf(line[1].trim()) };
      },
      async leave() {
        s.end(); // closing input leaves the room
        await s.exit;
      },
      async close() {
        s.end();
      },
    };
  };
  return {
    name: 'ssh',
    async open(kind) {
      const token = await register();
      const s = await ssh(sshPort, token, kind === 'standard' ? 'create' : 'listen');
      const code = /(?:Invite|Listener) code: (\S+)/.exec(await s.waitFor(/code: \S+\n/))![1];
      return { participant: participant(token, s), code };
    },
    async join(code) {
      const token = await register();
      const s = await ssh(sshPort, token, `join ${code}`);
      const outcome = await Promise.race([s.waitFor(/Joined as /).then(() => 'joined'), s.exit.then(() => 'exited')]);
      if (outcome === 'exited') return { refused: codeOf(s.stderr().trim()) };
      return { participant: participant(token, s) };
    },
  };
}
