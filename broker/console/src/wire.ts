/**
 * What a /wait answer means, read from its `Parley-Event` header and A2A Linker text body. The
 * console never renders the body as markup: a message becomes {from, signal, text}, a broker
 * notice becomes plain words of the console's own, with the broker's sentence as a fallback.
 */
export type Signal = 'OVER' | 'STANDBY';

export type Incoming =
  | { kind: 'message'; id: string; from: string; signal: Signal; text: string }
  | { kind: 'notice'; id: string; event: string; text: string; final: boolean; pause?: 'standby' | 'loop' | null; partner?: string }
  | { kind: 'timeout' };

const NOTICE = /^MESSAGE_RECEIVED\n\[SYSTEM(?: ALERT)?\]: /;

/** The lines between `┌─ Agent-x [OVER]` + `│` and `└────`, each without its `│ ` prefix. */
export function readMessage(body: string): { from: string; signal: Signal; text: string } | null {
  const lines = body.split('\n');
  const head = /^┌─ (\S+) \[(OVER|STANDBY)\]$/.exec(lines[1] ?? '');
  if (lines[0] !== 'MESSAGE_RECEIVED' || !head || lines[lines.length - 1] !== '└────') return null;
  const text = lines.slice(3, -1).map((l) => l.replace(/^│ ?/, '')).join('\n');
  return { from: head[1], signal: head[2] as Signal, text };
}

export function readEvent(kind: string, id: string, body: string): Incoming {
  if (kind === 'timeout') return { kind: 'timeout' };
  if (kind === 'message') {
    const m = readMessage(body);
    if (m) return { kind: 'message', id, ...m };
  }
  const said = body.replace(NOTICE, '');
  const agent = /^(Agent-[0-9a-f]+)\b/.exec(said)?.[1];
  const notice = (text: string, extra: Partial<Extract<Incoming, { kind: 'notice' }>> = {}): Incoming => ({ kind: 'notice', id, event: kind, text, final: false, ...extra });
  switch (kind) {
    case 'partner_joined':
      return notice(`${agent ?? 'Your partner'} joined. The session is live.`, { partner: agent });
    case 'partner_left':
      return notice(said.includes('expired') ? `${agent ?? 'Your partner'}'s session expired. You are alone in the room; your code does not come back.` : `${agent ?? 'Your partner'} left. You are alone in the room.`);
    case 'room_closed':
      return notice(said, { final: true });
    case 'standby_pause':
      return notice('Both sides are on standby, so the room is paused. A new message from either side wakes it.', { pause: 'standby' });
    case 'loop_alarm': {
      const severed = said.startsWith('Loop detected again');
      const reason = /^Loop detected(?: again after resuming)?: (.*?)\. The (?:room|session) is /.exec(said)?.[1];
      const why = reason ? ` (${reason})` : '';
      return severed
        ? notice(`The broker saw the conversation go round in circles again${why} and ended the session.`, { final: true })
        : notice(`The broker paused the room: the conversation looks like a loop${why}. Messages are refused until someone resumes; a second loop ends the session.`, { pause: 'loop' });
    }
    case 'resumed':
      return notice(`${agent ?? 'A participant'} resumed the session. A second loop ends it.`, { pause: null });
    case 'rule_changed':
      return notice(said.split('\n')[0]);
    case 'undelivered':
      return notice(said.includes('dropped unread') ? 'A message you sent was dropped unread: your partner left the room.' : 'A message you sent was not collected in time and was dropped.');
    case 'broker_restarting':
      return notice(said.includes('survives') ? 'The broker is restarting. Your session survives; reconnecting shortly.' : 'The broker is restarting, and sessions end with the restart.');
    default:
      return notice(said);
  }
}

/**
 * Characters that would change how the text around them reads (bidi overrides and isolates,
 * invisible marks, controls) shown as visible tags, so a partner cannot reorder or hide text.
 */
// eslint-disable-next-line no-control-regex
const INVISIBLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;

export function visibleText(text: string): string {
  return text.replace(INVISIBLE, (c) => `⟨U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}⟩`);
}
