/**
 * What the engine tells a participant, as data. Every door renders these its own way: the HTTP
 * door as A2A Linker text (framing.ts, byte-for-byte what old scripts grep), MCP and A2A as
 * structured results, the console as a transcript. Each event has an id, unique per recipient
 * stream, so a client can acknowledge it and drop a duplicate.
 */
import { randomBytes } from 'node:crypto';

export type AgentId = string;
export type Signal = 'OVER' | 'STANDBY';
export type Role = 'host' | 'joiner';

export type RoomEventBody =
  | { kind: 'message'; from: AgentId; signal: Signal; text: string }
  | { kind: 'partner_joined'; agent: AgentId; connected: number }
  | { kind: 'partner_left'; agent: AgentId; why: 'left' | 'expired' }
  /** Why the room ended for the recipient; `agent` is who caused it, when someone did. */
  | { kind: 'room_closed'; why: 'you_left' | 'you_expired' | 'closed' | 'expired' | 'code_expired'; agent?: AgentId; creatorRole?: Role }
  | { kind: 'standby_pause' }
  | { kind: 'loop_alarm'; severed: boolean; reason: string }
  | { kind: 'resumed'; agent: AgentId }
  | { kind: 'rule_changed'; agent: AgentId; headless: boolean }
  /** A human opened a watch link for `agent` and now watches the room live (read-only). */
  | { kind: 'watcher_joined'; agent: AgentId }
  | { kind: 'undelivered'; to: AgentId; messageId: string; afterS: number; why: 'expired' | 'room_closed' }
  /** `unread`: messages this participant sent that a restart loses (sessions that do not survive). */
  | { kind: 'broker_restarting'; sessionsSurvive: boolean; unread?: number };

export type RoomEvent = RoomEventBody & { id: string };
export type EventKind = RoomEvent['kind'];

// Random ids from a pooled buffer: one randomBytes call per 1,024 ids instead of one per event.
let pool = Buffer.alloc(0);
let at = 0;

export function eventId(): string {
  if (at + 8 > pool.length) {
    pool = randomBytes(8192);
    at = 0;
  }
  at += 8;
  return `evt_${pool.toString('hex', at - 8, at)}`;
}

/** Stamps an id on a fresh event body (mutates it: bodies are built for this call alone). */
export function event<B extends RoomEventBody>(body: B, id = eventId()): B & { id: string } {
  const e = body as B & { id: string };
  e.id = id;
  return e;
}

/** Events that end the recipient's part in the room: after one, its token is no longer in a room. */
export function isFinal(e: RoomEvent): boolean {
  return e.kind === 'room_closed' || (e.kind === 'loop_alarm' && e.severed);
}
