/**
 * RoomService: the one interface every front door depends on (HTTP, SSH through HTTP, MCP, A2A,
 * console). A door authenticates with a token string, calls these, and renders the results and
 * events in its own shape. No door reaches past this into the state backend.
 */
import type { RoomEvent, Role } from './events.js';

export type RoomKind = 'standard' | 'listener';

export interface Joined {
  role: Role;
  headless: boolean;
  /** Members now in the room (2 after a join). */
  connected: number;
  agentId: string;
  partner: string | null;
}

export interface Opened {
  code: string;
  role: Role;
  agentId: string;
}

/** Where the partner is, in words a client can act on. */
export type Presence = 'waiting' | 'recent' | 'asleep' | 'gone';

export interface Status {
  inRoom: boolean;
  role: Role | null;
  agentId: string | null;
  partner: { agentId: string; presence: Presence; lastSeenMs: number } | null;
  paused: null | 'standby' | 'loop';
  headless: boolean | null;
}

/** One side of a room, as a watcher sees it. */
export interface Side {
  agentId: string;
  role: Role;
  presence: Presence;
  /** 0 while it holds a wait. */
  lastSeenMs: number;
}

/** What a watcher sees: the watched agent, its partner, the pause. */
export interface WatchStatus {
  agent: Side;
  partner: Side | null;
  paused: null | 'standby' | 'loop';
  headless: boolean;
}

/** What became of a sent message, as far as the broker knows. */
export type MessageFate = 'queued' | 'delivered' | 'acknowledged' | 'expired' | 'dropped';

/**
 * One event handed to a waiting client. `settle(true)` once it fully reached the client (or, for
 * an acknowledging client, once acknowledged); `settle(false)` puts it back at the head of the
 * inbox. An unsettled lease is handed out again after its lease time.
 */
export interface Lease {
  event: RoomEvent;
  settle(delivered: boolean): void;
}

/** The part of AbortSignal a wait uses: an AbortSignal will do, or something lighter per request. */
export interface Cancellation {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
}

export interface NextOptions {
  timeoutMs: number;
  /** The client went away: the wait ends with null and leaves no waiter behind. */
  signal?: Cancellation;
  /** Acknowledges this event id (and settles it) before taking the next one. */
  ack?: string;
  /** Acknowledging clients keep each event leased until they ack it (at-least-once). */
  acking?: boolean;
}

/**
 * A value a door reads only once the token has checked out, such as a request body: a bad token
 * is refused before a large body is read.
 */
export type Deferred<T> = T | (() => Promise<T>);

/**
 * `from`: the caller's address bucket (DoorContext.bucket). Tokens and rooms made for it count
 * against the per-address caps (with RATE_LIMITS on); without it they are not counted.
 */
export interface RoomService {
  readonly draining: boolean;
  register(from?: string): Promise<{ token: string }>;
  /** A fresh token that creates a room in one call (no token is left behind if the room is refused). */
  setup(kind: RoomKind, headless?: boolean, from?: string): Promise<{ token: string } & Opened>;
  open(token: string | undefined, kind: RoomKind, headless?: boolean, from?: string): Promise<Opened>;
  join(token: string | undefined, code: string): Promise<Joined>;
  /** The code is checked (and burned) only once a token could be made; a token whose code fails is deleted. */
  registerAndJoin(code: string, from?: string): Promise<Joined & { token: string }>;
  setHeadless(token: string | undefined, headless: Deferred<boolean>): Promise<{ headless: boolean }>;
  send(token: string | undefined, raw: Deferred<string>, opts?: { idempotencyKey?: string }): Promise<{ id: string }>;
  next(token: string | undefined, opts: NextOptions): Promise<Lease | null>;
  status(token: string | undefined): Promise<Status>;
  /** What became of a message this token sent. */
  fate(token: string | undefined, messageId: string): Promise<MessageFate>;
  resume(token: string | undefined): Promise<void>;
  leave(token: string | undefined): Promise<void>;
  /** A one-time watch link code for this participant's human (burned on first use). */
  watchLink(token: string | undefined): Promise<{ code: string; expiresInS: number }>;
  /** Burns a watch code for a watcher token: it reads the room, never speaks in it. The partner is told. */
  redeemWatch(code: string): Promise<{ token: string; agentId: string }>;
  /** The watcher's feed: both directions and the room's notices, as `next` hands them out. */
  watchNext(watchToken: string | undefined, opts: NextOptions): Promise<Lease | null>;
  watchStatus(watchToken: string | undefined): Promise<WatchStatus>;
  /** The human's word after a loop pause, on the watched agent's behalf. */
  watchResume(watchToken: string | undefined): Promise<void>;
  /** Ends the watched agent's part in the session (as its leaving would). */
  watchEnd(watchToken: string | undefined): Promise<void>;
  /** A stable key for per-token rate limits (a keyed hash, never the token). */
  rateKey(token: string): string;
  /** SIGTERM: refuse new work, answer held waits with the restart event. */
  drain(): Promise<void>;
  close(): void;
}
