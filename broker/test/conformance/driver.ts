/**
 * The conformance suite's view of a door: the room rules are written once against these two
 * interfaces, and each door (HTTP, SSH, MCP, A2A, console) supplies a driver. A door is done
 * when `rules.ts` passes through it, alone and in a room with another door.
 */
import type { EventKind } from '../../src/engine/events.js';

/** One event as a participant saw it, whatever the door's wire shape. */
export interface SeenEvent {
  kind: EventKind;
  /** For messages: the partner's text, as the door presents it to its client. */
  text?: string;
  signal?: 'OVER' | 'STANDBY';
  /** Everything the door showed for this event, verbatim (for forgery checks). */
  raw: string;
}

export type Outcome = { ok: true } | { ok: false; code: string };

export interface Participant {
  send(text: string): Promise<Outcome>;
  /** The next event, or null when none came within `timeoutMs`. */
  next(timeoutMs?: number): Promise<SeenEvent | null>;
  status(): Promise<{ inRoom: boolean; paused: null | 'standby' | 'loop'; partner: boolean }>;
  resume(): Promise<Outcome>;
  leave(): Promise<void>;
  /** Release whatever the driver holds (connections, sessions). */
  close(): Promise<void>;
  /**
   * Publishes this participant's listener room as an A2A agent (POST /a2a/publish with its token)
   * and returns the ticket an A2A caller redeems: the agent's URL and access key. Doors whose
   * participant holds no token a test can use (MCP, console) leave it out.
   */
  publish?(listenerCode: string): Promise<string>;
}

export interface Driver {
  name: string;
  /** Opens a room as a fresh participant and returns it with the room's one-time code. */
  open(kind: 'standard' | 'listener'): Promise<{ participant: Participant; code: string }>;
  /**
   * Redeems a code (or, for a door with `RedeemerLimits.redeems === 'ticket'`, a ticket from
   * `Participant.publish`) as a fresh participant, or returns the refusal code. `opening` is the
   * text of a message the join itself sent (an A2A caller joins by its first message).
   */
  join(code: string): Promise<{ participant: Participant; opening?: string } | { refused: string }>;
}

/** The rules in rules.ts, by name, for doors to say which cannot apply to them. */
export type RuleName = 'pairing' | 'codes' | 'relay' | 'standby' | 'loop' | 'redeemerLeaves' | 'creatorClosesAfterStandby' | 'creatorClosesAfterOver' | 'callerLeaves' | 'forgery';

/**
 * What a door cannot do as the redeemer, said once, with reasons: rules.ts runs everything else
 * through it and lists the rest as skipped with the reason. (An A2A caller is the one such door.)
 */
export interface RedeemerLimits {
  /** The only room kind it can join: rules that do not depend on the kind run in this one. */
  room?: 'listener';
  /** It redeems a published agent's ticket, not a code: the creator publishes its room first. */
  redeems?: 'ticket';
  /** Event kinds the door never shows this participant, each with the reason (status is checked instead). */
  unseen?: Partial<Record<EventKind, string>>;
  /** Rules that cannot apply, each with the reason. */
  notApplicable?: Partial<Record<RuleName, string>>;
}

/** Waits for the next event of `kind`, skipping others; throws when it does not come. */
export async function expectEvent(p: Participant, kind: EventKind, timeoutMs = 5000): Promise<SeenEvent> {
  const until = Date.now() + timeoutMs;
  const seen: string[] = [];
  while (Date.now() < until) {
    const e = await p.next(Math.max(1, until - Date.now()));
    if (!e) break;
    if (e.kind === kind) return e;
    seen.push(e.kind);
  }
  throw new Error(`expected a ${kind} event within ${timeoutMs} ms; saw ${seen.join(', ') || 'nothing'}`);
}
