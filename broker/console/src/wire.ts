/**
 * What a /wait answer means. The page asks for events as JSON (`Accept: application/json`), the
 * engine's RoomEvent as data, and turns each into either a message {from, signal, text} or a
 * broker notice in the console's own plain words. Nothing here is ever rendered as markup.
 */
export type Signal = 'OVER' | 'STANDBY';

/** The fields of the engine's RoomEvent kinds that the console reads (broker/src/engine/events.ts). */
export interface WireEvent {
  kind: string;
  id: string;
  from?: string;
  signal?: Signal;
  text?: string;
  agent?: string;
  why?: string;
  creatorRole?: string;
  severed?: boolean;
  reason?: string;
  headless?: boolean;
  sessionsSurvive?: boolean;
  unread?: number;
}

export type Incoming =
  | { kind: 'message'; id: string; from: string; signal: Signal; text: string }
  | {
      kind: 'notice';
      id: string;
      event: string;
      text: string;
      /** The session is over for this tab. */
      final: boolean;
      /** The room's pause after this event, when it changes it. */
      pause?: 'standby' | 'loop' | null;
      partner?: string;
      reason?: string;
    }
  | { kind: 'timeout' };

/** `watched`: the agent a watcher follows (its own room_closed names it instead of "you"). */
export function readEvent(e: WireEvent, watched?: string): Incoming {
  if (e.kind === 'timeout') return { kind: 'timeout' };
  if (e.kind === 'message') return { kind: 'message', id: e.id, from: e.from ?? 'Your partner', signal: e.signal === 'STANDBY' ? 'STANDBY' : 'OVER', text: e.text ?? '' };
  const who = e.agent ?? 'Your partner';
  const notice = (text: string, extra: Partial<Extract<Incoming, { kind: 'notice' }>> = {}): Incoming => ({ kind: 'notice', id: e.id, event: e.kind, text, final: false, ...extra });
  switch (e.kind) {
    case 'partner_joined':
      return notice(`${who} joined. The session is live.`, { partner: e.agent });
    case 'partner_left':
      return notice(e.why === 'expired' ? `${who}'s session expired. You are alone in the room.` : `${who} left. You are alone in the room.`);
    case 'room_closed':
      return notice(watched && (e.why === 'you_left' || e.why === 'you_expired') ? watchedClosedText(e, watched) : closedText(e), { final: true });
    case 'standby_pause':
      return notice('Both sides are on standby, so the room is paused. A new message from either side wakes it.', { pause: 'standby' });
    case 'loop_alarm': {
      const why = e.reason ? ` (${e.reason})` : '';
      return e.severed
        ? notice(`The broker saw the conversation go round in circles again${why} and ended the session.`, { final: true })
        : notice(`The broker paused the room: the conversation looks like a loop${why}. Messages are refused until someone resumes; a second loop ends the session.`, { pause: 'loop', reason: e.reason });
    }
    case 'resumed':
      return notice(`${who} resumed the session. A second loop ends it.`, { pause: null });
    case 'rule_changed':
      return notice(e.headless ? `${who} made the room headless: the agents go on without waiting for a person.` : `${who} turned headless off: a person is in the loop.`);
    case 'watcher_joined':
      return notice(`A person is now watching this session live from ${who}'s side. They cannot send; only ${who} speaks for that side.`);
    case 'undelivered':
      return notice(e.why === 'room_closed' ? 'A message you sent was dropped unread: your partner left the room.' : 'A message you sent was not collected in time and was dropped.');
    case 'broker_restarting': {
      const lost = e.unread ? ` ${e.unread === 1 ? 'One message you sent was' : `${e.unread} messages you sent were`} not read yet and will be lost.` : '';
      return notice(e.sessionsSurvive ? 'The broker is restarting. Your session survives; reconnecting shortly.' : `The broker is restarting, and sessions end with the restart.${lost}`);
    }
    default:
      return notice(`The broker sent an event this page does not know (${e.kind}).`);
  }
}

function watchedClosedText(e: WireEvent, watched: string): string {
  return e.why === 'you_left' ? `${watched} left the room, so there is nothing more to watch.` : `${watched}'s session expired, so there is nothing more to watch.`;
}

function closedText(e: WireEvent): string {
  switch (e.why) {
    case 'you_left':
      return 'You left the room.';
    case 'you_expired':
      return 'Your session expired.';
    case 'code_expired':
      return 'Your code expired before anyone joined, so the room is closed.';
    case 'expired':
      return `${e.agent ?? 'Your partner'}'s session expired, so the room is closed. The session is over.`;
    default:
      return e.creatorRole === 'host' ? `The host (${e.agent}) closed the room. The session is over.` : `${e.agent ?? 'Your partner'} closed the room. The session is over.`;
  }
}

/**
 * Partner text as shown: Windows line ends made plain, and characters that would change how the
 * text around them reads (bidi overrides and isolates, invisible marks, controls) shown as visible
 * tags, so a partner cannot reorder or hide text.
 */
// eslint-disable-next-line no-control-regex
const INVISIBLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;

export function visibleText(text: string): string {
  return text.replace(/\r\n?/g, '\n').replace(INVISIBLE, (c) => `⟨U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}⟩`);
}
