/**
 * The state backend: the ports the room engine stands on. `memoryBackend()` (sql.js + Maps, one
 * process) is the default; a shared backend (Redis) implements the same ports in its own folder.
 *
 * Methods return `T | Promise<T>` (socket.io's adapter habit): the memory backend answers at once,
 * a networked one asynchronously, and the engine awaits both. What can never leave a process is
 * not here: held waits hold a socket, so they stay in the engine and are woken through the bus.
 *
 * Atomicity, port by port (what a shared implementation must guarantee):
 * - CodeStore.take: look up and delete in one step (GETDEL / Lua), so a code works exactly once.
 * - RoomStore.update: the callback sees and changes one room as one step (WATCH/MULTI retry or a
 *   per-room lock); the engine puts every turn rule of one send (pause, both-STANDBY) inside it,
 *   with the detector through DetectorStore.observeTurn, and applies the returned effects after.
 * - InboxStore.lease/ack: lease hands out the head and marks it in flight in one step; ack removes
 *   only the item it names. Two brokers never hand out one item at once (one waiter per token).
 * - TokenStore: single-key writes; the room count of a token changes with its room (create).
 * - Per-address caps (TokenStore.add, RoomStore.create with a Quota): the count of the bucket is
 *   checked and raised in one step, and lowered only by whoever really deleted the token or room.
 * - DetectorStore.observe: per room, serialised with RoomStore.update of the same room;
 *   observeTurn changes the detector and the room in one step, or neither (one script on Redis).
 */
import { createHmac, createSecretKey } from 'node:crypto';
import type { RoomEvent, Role, Signal } from '../engine/events.js';
import type { RoomKind } from '../engine/service.js';
import type { LoopAlarm } from '../loop-detector.js';

export type Awaitable<T> = T | Promise<T>;

export interface Clock {
  now(): number;
}

/** Keyed hash of a secret (token, code, key): the raw secret is never stored. Hex out. */
export interface SecretHasher {
  hash(secret: string): string;
}

/** HMAC-SHA256 under `key`, as hex; the key is prepared once (every request hashes its token). */
export function keyedHasher(key: Buffer): SecretHasher {
  const secret = createSecretKey(key);
  return { hash: (s) => createHmac('sha256', secret).update(s).digest('hex') };
}

export interface TokenRow {
  hash: string;
  roomId: number | null;
  roomsCreated: number;
  expiresAt: number;
}

/** A per-address cap: the client's address bucket (never the address) and the most it may hold. */
export interface Quota {
  bucket: string;
  max: number;
}

/** What one inbox holds, and the bytes queued across every inbox. */
export interface QueueSize {
  count: number;
  bytes: number;
  total: number;
}

/** A token's row and the room it is in, if any. */
export interface Found {
  row: TokenRow;
  room: RoomState | undefined;
}

export interface TokenStore {
  /** False (and nothing added) when `quota`'s bucket already holds `max` live tokens. */
  add(hash: string, expiresAt: number, quota?: Quota): Awaitable<boolean>;
  get(hash: string): Awaitable<TokenRow | undefined>;
  /** The token and the room it is in (if any), read as one step: every request of a member needs both. */
  withRoom(hash: string): Awaitable<Found | undefined>;
  /**
   * What a wait reads first, in one step: the head of the token's inbox, leased as
   * InboxStore.lease does (even for a token that is gone, as a closing notice outlives it, or a
   * watcher's feed, which has no row), and
   * only when there is none, `withRoom`. One round trip per wait on a networked backend.
   * With `ack`, a head whose event is `ack.id` is first acknowledged as InboxStore.ack does (its
   * sender's receipt: acknowledged, kept `receiptTtlMs`), and the next head leased.
   */
  leaseOrRoom(hash: string, ack?: { id: string; receiptTtlMs: number }): Awaitable<{ head: InboxItem } | { head: undefined; found: Found | undefined }>;
  /**
   * What a send reads first, in one step: `withRoom`, and what the inbox of the room's other
   * member holds (as InboxStore.size), when there is one. A networked backend may answer from
   * what it read for this token's last send (`cached`, with the inbox size unknown): the send's
   * own step then checks that the token is still in that room and the inbox caps (see
   * Delivery.guard), so the read costs no round trip. `fresh` asks for a read from the store.
   */
  forSend(hash: string, fresh?: boolean): Awaitable<SendRead>;
  touch(hash: string, expiresAt: number): Awaitable<void>;
  setRoom(hash: string, roomId: number | null): Awaitable<void>;
  /** Deletes the token; its bucket (if it was counted) gets its place back. */
  delete(hash: string): Awaitable<void>;
  /** Hashes of expired tokens, at most a batch per call. */
  expired(now: number): Awaitable<string[]>;
}

export type CodeKind = 'invite' | 'listen';

export interface CodeStore {
  add(hash: string, roomId: number, kind: CodeKind, expiresAt: number): Awaitable<void>;
  /** Looks a live code up and burns it, atomically. */
  take(hash: string, now: number): Awaitable<{ roomId: number; kind: CodeKind } | undefined>;
  /** Deletes expired codes; returns the rooms they belonged to. */
  sweep(now: number): Awaitable<number[]>;
}

export interface MemberState {
  hash: string;
  agentId: string;
  role: Role;
  lastSeen: number;
  lastSignal: Signal | null;
  /** Holding a wait on some broker now (presence). */
  waiting: boolean;
}

/**
 * A watch link for the human behind one member: first a one-time code, then (once redeemed) the
 * watcher token it became. Hashes only, like every secret here.
 */
export interface WatchGrant {
  hash: string;
  kind: 'code' | 'watcher';
  /** The watched member's token hash. */
  of: string;
  expiresAt: number;
}

/** A room as plain data (serialisable), without its messages. */
export interface RoomState {
  id: number;
  kind: RoomKind;
  headless: boolean;
  /** Token hash of the creator: only it changes rules, and its leaving closes the room. */
  creator: string;
  members: MemberState[];
  paused: null | 'standby' | 'loop';
  alarms: number;
  /** Address bucket that opened it, when counted for the per-address room cap ('' if not); never the address itself. */
  bucket: string;
  /** Watch links and watchers (absent until someone asks for a link). */
  watch?: WatchGrant[];
}

export interface RoomStore {
  /**
   * Creates a room owned by `creator` and counts it against the creator's quota. With a `quota`,
   * the room is also counted for its bucket (kept as `bucket`), and not created (undefined) when
   * that bucket already holds `max` open rooms.
   */
  create(init: Omit<RoomState, 'id' | 'bucket'>, now: number, quota?: Quota): Awaitable<RoomState | undefined>;
  get(id: number): Awaitable<RoomState | undefined>;
  /** Atomic per room: undefined when the room is gone. */
  update<R>(id: number, fn: (room: RoomState) => R): Awaitable<R | undefined>;
  /** Deletes the room; its bucket (if it was counted) gets its place back. */
  delete(id: number): Awaitable<void>;
  count(): Awaitable<number>;
}

export interface InboxItem {
  event: RoomEvent;
  /** Bytes the item costs in memory (a JS string of framed text costs 2 per char above Latin-1). */
  bytes: number;
  /** Sender's token hash, for partner messages: told if the message never arrives. */
  from?: string;
  /** The recipient's agent id, for the notice its sender gets if it never arrives. */
  toAgent?: string;
  expiresAt: number;
}

/**
 * Per-token queues of events. An inbox belongs to a token, not to a room: after the room closes,
 * its owner still drains what was sent before the closing notice, in order.
 */
export interface InboxStore {
  /**
   * Queues `item`. With `receiptTtlMs`, the same step records its fate as queued for its sender
   * (`item.from`; see ReceiptStore), as every message's send does. With `lease`, the same step
   * then leases the head and returns it (a wait for `owner` is held on this broker).
   */
  push(owner: string, item: InboxItem, receiptTtlMs?: number, lease?: boolean): Awaitable<InboxItem | undefined>;
  /** The head, marked in flight (the same item again while it is in flight). */
  lease(owner: string): Awaitable<InboxItem | undefined>;
  /**
   * Removes the in-flight item if it is `id`. With `receipt`, the same step records the item's
   * fate for its sender (one round trip on a networked backend, as push does).
   */
  ack(owner: string, id: string, receipt?: Receipt): Awaitable<boolean>;
  /** Puts the in-flight item `id` back at the head. */
  nack(owner: string, id: string, minExpiresAt: number): Awaitable<void>;
  /** Removes and returns every item (the owner left). */
  clear(owner: string): Awaitable<InboxItem[]>;
  /**
   * What `owner`'s inbox holds, and `total`: the bytes queued across every inbox (a global cap
   * keeps one sender from filling memory). One call, since every send checks both.
   */
  size(owner: string): Awaitable<QueueSize>;
  /** Unread partner messages per sender (what a restart of a one-process broker would lose). */
  unreadBySender(): Awaitable<Map<string, number>>;
  /** Called once for each item that reaches its expiry unread. */
  onExpired(fn: (owner: string, item: InboxItem) => void): void;
}

/** Wakes the wait held for `owner` on whichever broker holds it. */
export interface WakeBus {
  wake(owner: string): void;
  onWake(fn: (owner: string) => void): void;
}

export interface DetectorStore {
  observe(roomId: number, side: 0 | 1, text: string, signal: Signal | null): Awaitable<LoopAlarm | null>;
  /**
   * A send's step: observes the message and, unless that raises an alarm, changes the room with
   * `turn` (as RoomStore.update does) together with the detector. `turn` is undefined when the
   * room is gone; with an alarm the room is left as it was. `deliver` names the message the turn
   * taken sends, if any: it is queued in the same step (as InboxStore.push, whose result is `head`).
   * A delivery whose guard fails stores nothing (neither detector nor room) and answers `refused`.
   */
  observeTurn<R>(
    roomId: number,
    side: 0 | 1,
    text: string,
    signal: Signal | null,
    turn: (room: RoomState) => R,
    deliver?: (turn: R) => Delivery | undefined,
  ): Awaitable<{ alarm: LoopAlarm | null; turn?: R; head?: InboxItem; refused?: GuardRefusal }>;
  reset(roomId: number): Awaitable<void>;
  delete(roomId: number): Awaitable<void>;
}

/** What a send reads first (TokenStore.forSend). */
export interface SendRead {
  found: Found | undefined;
  partner?: { hash: string; queued?: QueueSize };
  /** From this process's copy of the token's row and room, not read from the store. */
  cached?: boolean;
}

/** A message to queue in the same step as the turn that sends it (see InboxStore.push). */
export interface Delivery {
  owner: string;
  item: InboxItem;
  receiptTtlMs?: number;
  lease?: boolean;
  /**
   * For a send whose first read was cached: queue only if the sender's token is still in `roomId`
   * and the owner's inbox stays within the caps (as the engine checks them on a fresh read).
   */
  guard?: { sender: string; roomId: number; maxMessages: number; maxBytes: number; maxTotalBytes: number };
}

/** Why a guarded delivery (Delivery.guard) was not made; nothing was stored. */
export type GuardRefusal = 'stale' | 'inbox_full' | 'broker_full';

export type Fate = 'queued' | 'delivered' | 'acknowledged' | 'expired' | 'dropped';

/** A fate to record for a message's sender, alongside a queue change. */
export interface Receipt {
  sender: string;
  fate: Fate;
  ttlMs: number;
}

/** What became of each message, for its sender; and the first answer to each idempotent send. */
export interface ReceiptStore {
  setFate(messageId: string, sender: string, fate: Fate, ttlMs: number): Awaitable<void>;
  fate(messageId: string): Awaitable<{ sender: string; fate: Fate } | undefined>;
  /** The message id a send with this idempotency key produced, if it succeeded before. */
  recall(sender: string, key: string): Awaitable<string | undefined>;
  remember(sender: string, key: string, id: string, ttlMs: number): Awaitable<void>;
}

/**
 * Small secrets a door keeps per client session (an MCP session's Parley token), so that any
 * broker can serve the session's next request. A shared backend seals each value under the shared
 * secret: it never holds a token in clear. A record expires once unused for its `ttlMs`.
 */
export interface SessionStore {
  /** The value, and its idle expiry pushed back by `ttlMs`. */
  get(key: string, ttlMs: number): Awaitable<string | undefined>;
  set(key: string, value: string, ttlMs: number): Awaitable<void>;
  /** Removes the record and returns what it held. */
  delete(key: string): Awaitable<string | undefined>;
}

export interface StateBackend {
  readonly name: string;
  clock: Clock;
  hasher: SecretHasher;
  tokens: TokenStore;
  codes: CodeStore;
  rooms: RoomStore;
  inboxes: InboxStore;
  bus: WakeBus;
  detectors: DetectorStore;
  receipts: ReceiptStore;
  sessions: SessionStore;
  /** A client the rate limiter can keep its counts in (shared backends), if any. */
  rateLimitStore?: unknown;
  /** Whether the backend can serve requests now (a shared one may be unreachable). */
  ready(): Awaitable<boolean>;
  close(): Awaitable<void>;
}
