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
}

export interface Driver {
  name: string;
  /** Opens a room as a fresh participant and returns it with the room's one-time code. */
  open(kind: 'standard' | 'listener'): Promise<{ participant: Participant; code: string }>;
  /** Redeems a code as a fresh participant, or returns the refusal code. */
  join(code: string): Promise<{ participant: Participant } | { refused: string }>;
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
