/**
 * The room engine: pairing, turns, pauses, loop alarms and delivery, with no transport in it.
 * It implements RoomService over a StateBackend; doors call it, the backend holds its state.
 *
 * Messages live only in inboxes, in memory (or a shared memory such as Redis), until they are
 * acknowledged or expire. Every rule of one room change runs inside `rooms.update()`, which the
 * backend makes atomic; events are pushed after it. Held waits are the one thing local to a
 * process: they hold a socket, so they live here and are woken through the backend's bus.
 */
import { randomBytes } from 'node:crypto';
import { BusyFirstMap } from '../backend/busy-first-map.js';
import type { Fate, Found, InboxItem, MemberState, Quota, Receipt, RoomState, StateBackend, TokenRow, WatchGrant } from '../backend/ports.js';
import type { Config } from '../config.js';
import { parseSignal } from '../framing.js';
import { safeText } from '../text-safety.js';
import type { LoopAlarm } from '../loop-detector.js';
import type { Metrics } from '../metrics.js';
import { ParleyError, refuse } from './errors.js';
import { event, type RoomEvent, type RoomEventBody, type Role } from './events.js';
import type { Deferred, Joined, Lease, MessageFate, NextOptions, Opened, Presence, RoomKind, RoomService, Side, Status, WatchStatus } from './service.js';

const TOKEN_RE = /^tok_[0-9a-f]{32}$/;
const CODE_RE = /^(invite|listen)_[0-9a-f]{32}$/;
const WATCH_TOKEN_RE = /^wat_[0-9a-f]{32}$/;
const WATCH_CODE_RE = /^watch_[0-9a-f]{32}$/;
/** How long a watch link works before it is opened. */
export const WATCH_CODE_TTL_S = 15 * 60;
/** Watch links and watchers per room, together. */
const MAX_WATCH_GRANTS = 8;
/** How long a closing notice waits for a token that is no longer in a room. */
const FINAL_TTL_MS = 10 * 60_000;
/** An event whose write failed goes back to the head with at least this long to live. */
const REQUEUE_GRACE_MS = 60_000;
/** When a full broker asks a sender to try again: queues drain as recipients read. */
const BROKER_FULL_RETRY_S = 10;
export const MAX_ROOMS_PER_TOKEN = 3;
/** Wakes remembered for waits being set up (a few ms each); past this the record starts over. */
const UNHELD_WAKES_MAX = 10_000;

/** How stale "holding a wait" may be on a shared backend. */
const PRESENCE_FLUSH_MS = 500;

interface Waiter {
  resolve(lease: Lease | null): void;
  timer: NodeJS.Timeout;
  acking: boolean;
  roomId: number;
  /** A room member's wait (presence), not a watcher's. */
  member: boolean;
  /** Answered, and out of `waiters`: checked without a lookup in a table as big as the open waits. */
  done: boolean;
}

/** Bytes a string really costs in V8: one per char when all of it is Latin-1, else two. */
export function storedBytes(text: string): number {
  // eslint-disable-next-line no-control-regex
  return (/[^\u0000-\u00ff]/.test(text) ? 2 : 1) * text.length + 64;
}

export class Engine implements RoomService {
  /** Held waits by owner: thousands when rooms sit idle, a few busy (see BusyFirstMap). */
  private readonly waiters = new BusyFirstMap<string, Waiter>();
  private readonly presenceWrites = new Map<string, { roomId: number; waiting: boolean; written: boolean | undefined }>();
  private presenceTimer: NodeJS.Timeout | undefined;
  /** In one process a presence write is a change in memory: made at once. */
  private readonly presenceFlushMs: number;
  private readonly sweeper: NodeJS.Timeout;
  private isDraining = false;
  /** A networked backend: each inbox look is a round trip, and wakes come through the bus. */
  private readonly shared: boolean;
  /** Wakes that found no wait held here, numbered, by owner (see missedWake). */
  private readonly unheldWakes = new Map<string, number>();
  private wakeSeq = 0;
  private unheldFloor = 0;

  constructor(
    readonly backend: StateBackend,
    private readonly config: Config,
    private readonly metrics: Metrics,
  ) {
    this.shared = backend.name !== 'memory';
    this.presenceFlushMs = this.shared ? PRESENCE_FLUSH_MS : 0;
    backend.bus.onWake((owner) => this.wakeLocal(owner));
    backend.inboxes.onExpired((owner, item) => void this.expired(owner, item).catch(() => undefined));
    this.sweeper = setInterval(() => void this.sweep().catch(() => undefined), config.sweepIntervalS * 1000).unref();
  }

  get draining(): boolean {
    return this.isDraining;
  }

  /** A token of the right shape: lets a door refuse before reading a body. */
  static wellFormed(token: string | undefined): token is string {
    return token !== undefined && TOKEN_RE.test(token);
  }

  /** A watcher's token: it reads a room, never acts in it as a participant. */
  static isWatchToken(token: string | undefined): token is string {
    return token !== undefined && WATCH_TOKEN_RE.test(token);
  }

  rateKey(token: string): string {
    return this.backend.hasher.hash(token);
  }

  // ── tokens ──────────────────────────────────────────────────────────────

  async register(from?: string): Promise<{ token: string }> {
    this.refuseWhileDraining();
    const { token } = await this.issue(from);
    this.metrics.tokensIssued.inc();
    return { token };
  }

  /** A fresh token, counted against its address bucket's cap. */
  private async issue(from?: string): Promise<{ token: string; hash: string }> {
    const token = `tok_${randomBytes(16).toString('hex')}`;
    const hash = this.backend.hasher.hash(token);
    const expiresAt = this.backend.clock.now() + this.config.tokenTtlS * 1000;
    if (!(await this.backend.tokens.add(hash, expiresAt, this.quota(from, this.config.maxTokensPerAddress)))) throw refuse('too_many_tokens');
    return { token, hash };
  }

  /** Per-address caps apply with rate limits on, to calls that say where they come from. */
  private quota(from: string | undefined, max: number): Quota | undefined {
    return this.config.rateLimits && from ? { bucket: from, max } : undefined;
  }

  /** Runs `fn` for a token just issued; if it fails, the token is deleted again (and its place given back). */
  private async withNewToken<T>(from: string | undefined, fn: (t: { token: string; hash: string }) => Promise<T>): Promise<T & { token: string }> {
    const t = await this.issue(from);
    let result: T;
    try {
      result = await fn(t);
    } catch (e) {
      // The refusal is what the caller needs to hear, even if the clean-up fails (the token then expires).
      await Promise.resolve(this.backend.tokens.delete(t.hash)).catch(() => undefined);
      throw e;
    }
    this.metrics.tokensIssued.inc();
    return { token: t.token, ...result };
  }

  /** The hash of a participant's token (`known` if the caller hashed it already); watch and malformed tokens are refused. */
  private participant(token: string | undefined, known?: string): string {
    if (Engine.isWatchToken(token)) throw refuse('watch_only');
    if (!Engine.wellFormed(token)) throw refuse('unauthorized');
    return known ?? this.backend.hasher.hash(token);
  }

  /** The row of a live token; an unknown or expired one is refused. */
  private async live(row: TokenRow | undefined): Promise<TokenRow> {
    const now = this.backend.clock.now();
    if (!row || row.expiresAt <= now) throw refuse('unauthorized');
    if (this.dueForTouch(row, now)) await this.backend.tokens.touch(row.hash, now + this.config.tokenTtlS * 1000);
    return row;
  }

  /** Sliding expiry, written at most once a minute (or per half TTL when shorter) to keep the hot path read-only. */
  private dueForTouch(row: TokenRow, now: number): boolean {
    const ttl = this.config.tokenTtlS * 1000;
    return now + ttl - row.expiresAt > Math.min(60_000, ttl / 2);
  }

  /** A cached row that needs neither a refusal nor a touch (either is decided on a fresh read). */
  private current(row: TokenRow | undefined): boolean {
    const now = this.backend.clock.now();
    return row !== undefined && row.expiresAt > now && !this.dueForTouch(row, now);
  }

  private async auth(token: string | undefined, known?: string): Promise<TokenRow> {
    return this.live(await this.backend.tokens.get(this.participant(token, known)));
  }

  /** A live token and the room it is in, if any, read together (or as `read` already found them). */
  private async tokenAndRoom(token: string | undefined, known?: string, read?: { found: Found | undefined }): Promise<{ row: TokenRow; room: RoomState | undefined }> {
    const hash = this.participant(token, known);
    const found = read ? read.found : await this.backend.tokens.withRoom(hash);
    return { row: await this.live(found?.row), room: found?.room };
  }

  private async memberOf(token: string | undefined, known?: string, read?: { found: Found | undefined }) {
    const { row, room } = await this.tokenAndRoom(token, known, read);
    const me = room?.members.find((m) => m.hash === row.hash);
    if (!room || !me) throw refuse('not_in_room');
    return { room, me, partner: room.members.find((m) => m !== me), row };
  }

  // ── rooms and codes ─────────────────────────────────────────────────────

  async setup(kind: RoomKind, headless?: boolean, from?: string) {
    this.refuseWhileDraining();
    return this.withNewToken(from, ({ token }) => this.open(token, kind, headless, from));
  }

  /** A standard room makes its creator host and hands out an invite; a listener room makes its creator joiner and hands out a listener code. */
  async open(token: string | undefined, kind: RoomKind, headless?: boolean, from?: string): Promise<Opened> {
    this.refuseWhileDraining();
    const row = await this.auth(token);
    if (row.roomId !== null) throw refuse('already_in_room');
    if (row.roomsCreated >= MAX_ROOMS_PER_TOKEN) throw refuse('room_limit');
    const now = this.backend.clock.now();
    const isListener = kind === 'listener';
    const room = await this.backend.rooms.create(
      { kind, headless: headless ?? isListener, creator: row.hash, members: [], paused: null, alarms: 0 },
      now,
      this.quota(from, this.config.maxRoomsPerAddress),
    );
    if (!room) throw refuse('too_many_rooms');
    const code = `${isListener ? 'listen' : 'invite'}_${randomBytes(16).toString('hex')}`;
    const ttl = (isListener ? this.config.listenerTtlS : this.config.inviteTtlS) * 1000;
    await this.backend.codes.add(this.backend.hasher.hash(code), room.id, isListener ? 'listen' : 'invite', now + ttl);
    const me = await this.addMember(room.id, row.hash, isListener ? 'joiner' : 'host');
    this.metrics.roomsOpened.inc();
    return { code, role: me!.role, agentId: me!.agentId };
  }

  /** An invite makes you joiner; a listener code makes you host. */
  async join(token: string | undefined, code: string): Promise<Joined> {
    this.refuseWhileDraining();
    const row = await this.auth(token);
    if (row.roomId !== null) throw refuse('already_in_room');
    const claimed = await this.claimCode(code);
    return this.enterRoom(row.hash, claimed.roomId, claimed.kind);
  }

  async registerAndJoin(code: string, from?: string): Promise<Joined & { token: string }> {
    this.refuseWhileDraining();
    if (!CODE_RE.test(code)) throw refuse('invalid_code');
    // The token first: a caller refused a token must not burn the code it was given.
    return this.withNewToken(from, async ({ hash }) => {
      const claimed = await this.claimCode(code);
      return this.enterRoom(hash, claimed.roomId, claimed.kind);
    });
  }

  private async claimCode(code: string) {
    if (!CODE_RE.test(code)) throw refuse('invalid_code');
    const found = await this.backend.codes.take(this.backend.hasher.hash(code), this.backend.clock.now());
    if (!found) throw refuse('invalid_code');
    return found;
  }

  private async enterRoom(hash: string, roomId: number, kind: 'invite' | 'listen'): Promise<Joined> {
    const role: Role = kind === 'invite' ? 'joiner' : 'host';
    const entered = await this.backend.rooms.update(roomId, (room) => {
      if (room.members.length !== 1) return undefined;
      const me = this.newMember(room, hash, role);
      room.members.push(me);
      const others = room.members.filter((m) => m !== me);
      const watched = others.filter((m) => this.watchersOf(room.watch, [m.hash]).length > 0).map((m) => m.agentId);
      return { me, room: { headless: room.headless, others: others.map((m) => m.hash), count: room.members.length, watch: room.watch, watched } };
    });
    if (!entered) throw refuse('invalid_code');
    const { me, room } = entered;
    await this.backend.tokens.setRoom(hash, roomId);
    for (const other of room.others) {
      const e = await this.push(other, { kind: 'partner_joined', agent: me.agentId, connected: room.count });
      await this.toWatchers(room.watch, [other], e);
    }
    // Whoever joins a watched room is told, as the partner already in it was.
    for (const agent of room.watched) await this.push(hash, { kind: 'watcher_joined', agent });
    this.metrics.joins.inc();
    const partner = (await this.backend.rooms.get(roomId))?.members.find((m) => m !== me && m.hash !== hash);
    return { role, headless: room.headless, connected: room.count, agentId: me.agentId, partner: partner?.agentId ?? null };
  }

  private newMember(room: RoomState, hash: string, role: Role): MemberState {
    let agentId: string;
    do agentId = `Agent-${randomBytes(2).toString('hex')}`;
    while (room.members.some((m) => m.agentId === agentId));
    return { hash, agentId, role, lastSeen: this.backend.clock.now(), lastSignal: null, waiting: false };
  }

  private async addMember(roomId: number, hash: string, role: Role): Promise<MemberState | undefined> {
    const me = await this.backend.rooms.update(roomId, (room) => {
      const m = this.newMember(room, hash, role);
      room.members.push(m);
      return m;
    });
    await this.backend.tokens.setRoom(hash, roomId);
    return me;
  }

  /** Only the room's creator may change its rules. */
  async setHeadless(token: string | undefined, rule: Deferred<boolean>): Promise<{ headless: boolean }> {
    const { room, me } = await this.memberOf(token);
    if (me.hash !== room.creator) throw refuse('not_creator');
    const headless = typeof rule === 'boolean' ? rule : await rule();
    const changed = await this.backend.rooms.update(room.id, (r) => {
      r.headless = headless;
      return { others: r.members.filter((m) => m.hash !== me.hash).map((m) => m.hash), watch: r.watch };
    });
    for (const o of changed?.others ?? []) await this.toWatchers(changed?.watch, [o], await this.push(o, { kind: 'rule_changed', agent: me.agentId, headless }));
    return { headless };
  }

  // ── messages ────────────────────────────────────────────────────────────

  async send(token: string | undefined, body: Deferred<string>, opts: { idempotencyKey?: string; fresh?: boolean } = {}): Promise<{ id: string }> {
    this.refuseWhileDraining();
    const hash = this.participant(token);
    // The token, its room and the partner's inbox size, in one step (one round trip on Redis, or
    // none when the backend answers from this token's last send: see TokenStore.forSend).
    let read = await this.backend.tokens.forSend(hash, opts.fresh);
    if (read.cached && !this.current(read.found?.row)) read = await this.backend.tokens.forSend(hash, true);
    const { room, me, partner } = await this.memberOf(token, hash, read);
    const raw = typeof body === 'string' ? body : await body();
    // A refusal judged on a cached read is made again on a fresh one, so that it is exact.
    const again = () => this.send(token, raw, { ...opts, fresh: true });
    const receipts = this.backend.receipts;
    const retried = opts.idempotencyKey && (await receipts.recall(me.hash, opts.idempotencyKey));
    if (retried) return { id: retried };
    if (read.cached && (room.paused === 'loop' || !partner)) return again();
    if (room.paused === 'loop') throw refuse('loop_paused');
    if (!partner) throw refuse('partner_not_connected', undefined, 5);
    const parsed = parseSignal(raw);
    // Neutralised once, here: every door then shows the same safe text (see text-safety.ts).
    const text = safeText(parsed.text);
    const signal = parsed.signal;
    if (text.trim() === '') throw refuse('empty_message');
    const bytes = storedBytes(text);
    const { queueMaxMessages: maxMessages, queueMaxBytes: maxBytes, queueMaxTotalBytes: maxTotalBytes } = this.config;
    const queued = read.partner?.hash === partner.hash ? read.partner.queued : await this.backend.inboxes.size(partner.hash);
    if (queued) {
      if (queued.count >= maxMessages || queued.bytes + bytes > maxBytes) throw refuse('inbox_full', undefined, 5);
      // Every inbox is capped, but many inboxes could still fill memory; concurrent sends may pass it by one message each.
      if (queued.total + bytes > maxTotalBytes) throw refuse('broker_full', undefined, BROKER_FULL_RETRY_S);
    }
    // Not read (a cached read): the send's own step checks the caps, and that the token is still in the room.
    const guard = queued ? undefined : { sender: me.hash, roomId: room.id, maxMessages, maxBytes, maxTotalBytes };

    const sig = signal ?? 'OVER';
    const message = event({ kind: 'message', from: me.agentId, signal: sig, text });
    let held: Waiter | undefined;
    // The detector, the turn and the message with its receipt in one step (one round trip on a
    // networked backend): an alarm leaves the room as it was, and queues nothing.
    const { alarm, turn, head, refused } = await this.backend.detectors.observeTurn(
      room.id,
      me.role === 'host' ? 0 : 1,
      text,
      signal,
      (r) => {
        const self = r.members.find((m) => m.hash === me.hash);
        const other = r.members.find((m) => m.hash !== me.hash);
        if (!self || !other) return undefined;
        if (r.paused === 'loop') return 'loop' as const;
        if (r.paused === 'standby') r.paused = null;
        self.lastSignal = sig;
        self.lastSeen = this.backend.clock.now();
        const bothStandby = sig === 'STANDBY' && other.lastSignal === 'STANDBY';
        if (bothStandby) r.paused = 'standby';
        return { to: other, bothStandby };
      },
      (t) => {
        if (!t || t === 'loop') return undefined;
        held = this.waiters.get(t.to.hash);
        const item = { event: message, bytes, from: me.hash, toAgent: t.to.agentId, expiresAt: this.expiry() };
        return { owner: t.to.hash, item, receiptTtlMs: this.receiptTtl(), lease: held !== undefined, guard };
      },
    );
    if (alarm) throw await this.raiseAlarm(room.id, alarm);
    if (refused === 'inbox_full') throw refuse('inbox_full', undefined, 5);
    if (refused === 'broker_full') throw refuse('broker_full', undefined, BROKER_FULL_RETRY_S);
    if (read.cached && (refused === 'stale' || turn === 'loop' || !turn)) return again();
    if (turn === 'loop') throw refuse('loop_paused');
    if (!turn) throw refuse('partner_not_connected', undefined, 5);
    this.queued(turn.to.hash, held, head);
    if (opts.idempotencyKey) await receipts.remember(me.hash, opts.idempotencyKey, message.id, this.receiptTtl());
    this.metrics.messages.inc();
    this.metrics.messageBytes.inc(Buffer.byteLength(raw));
    const both = [me.hash, turn.to.hash];
    await this.toWatchers(room.watch, both, message);
    if (turn.bothStandby) {
      this.metrics.standbyPauses.inc();
      await this.push(turn.to.hash, { kind: 'standby_pause' });
      await this.toWatchers(room.watch, both, await this.push(me.hash, { kind: 'standby_pause' }));
    }
    return { id: message.id };
  }

  /** First alarm pauses the room; a second one in the same session severs it. */
  private async raiseAlarm(roomId: number, alarm: LoopAlarm): Promise<ParleyError> {
    const outcome = await this.backend.rooms.update(roomId, (r) => {
      r.alarms += 1;
      if (r.alarms === 1) r.paused = 'loop';
      const members = r.members.map((m) => m.hash);
      if (r.alarms > 1) r.members = [];
      return { severed: r.alarms > 1, members, watch: r.watch };
    });
    if (!outcome) return refuse('not_in_room');
    this.metrics.loopAlarms.inc();
    const { members, watch } = outcome;
    if (!outcome.severed) {
      for (const m of members) await this.push(m, { kind: 'loop_alarm', severed: false, reason: alarm.reason });
      await this.toWatchers(watch, members, event({ kind: 'loop_alarm', severed: false, reason: alarm.reason }));
      return refuse('loop_paused');
    }
    for (const m of members) {
      await this.backend.tokens.setRoom(m, null);
      await this.push(m, { kind: 'loop_alarm', severed: true, reason: alarm.reason }, FINAL_TTL_MS);
      await this.backend.tokens.delete(m);
    }
    await this.toWatchers(watch, members, event({ kind: 'loop_alarm', severed: true, reason: alarm.reason }), FINAL_TTL_MS);
    await this.closeRoom(roomId);
    this.metrics.severed.inc();
    return refuse('loop_severed');
  }

  /** After a loop alarm, on a human's word. */
  async resume(token: string | undefined): Promise<void> {
    const { room, me } = await this.memberOf(token);
    await this.resumeRoom(room.id, me.agentId);
  }

  private async resumeRoom(roomId: number, agentId: string): Promise<void> {
    const resumed = await this.backend.rooms.update(roomId, (r) => {
      if (r.paused !== 'loop') return undefined;
      r.paused = null;
      return { members: r.members.map((m) => m.hash), watch: r.watch };
    });
    if (!resumed) throw refuse('not_paused');
    await this.backend.detectors.reset(roomId);
    for (const m of resumed.members) await this.push(m, { kind: 'resumed', agent: agentId });
    await this.toWatchers(resumed.watch, resumed.members, event({ kind: 'resumed', agent: agentId }));
  }

  /**
   * The next event for this token: at once if one is queued, else when one arrives, else null at
   * the timeout. A closing event is handed out even after the token lost its room or was revoked.
   */
  async next(token: string | undefined, opts: NextOptions): Promise<Lease | null> {
    const hash = Engine.wellFormed(token) ? this.backend.hasher.hash(token) : undefined;
    const since = this.wakeSeq;
    // The acknowledgement, then the head of the inbox or else the token and its room, in one step.
    const read = hash ? await this.backend.tokens.leaseOrRoom(hash, this.ackOf(opts)) : { head: undefined, found: undefined };
    if (read.head) return this.leaseOf(hash!, read.head, opts.acking ?? false);
    const { room, me } = await this.memberOf(token, hash, read);
    return this.hold(me.hash, room.id, opts, true, since);
  }

  /**
   * Holds a wait for `owner`'s inbox (a member's, or a watcher's feed: no presence to record).
   * `since`: the wake count when this wait looked at its inbox (see missedWake).
   */
  private async hold(owner: string, roomId: number, opts: NextOptions, member: boolean, since: number): Promise<Lease | null> {
    if (this.isDraining) throw refuse('draining', undefined, 5);
    if (this.waiters.has(owner)) throw refuse('wait_pending');
    if (opts.signal?.aborted) return null;

    let waiter!: Waiter;
    const result = new Promise<Lease | null>((resolve) => {
      const timer = setTimeout(() => this.release(owner, waiter, null), opts.timeoutMs);
      waiter = { resolve, timer, acking: opts.acking ?? false, roomId, member, done: false };
    });
    this.waiters.set(owner, waiter);
    this.metrics.waiters.inc();
    if (member) this.markWaiting(roomId, owner, true);
    opts.signal?.addEventListener('abort', () => this.release(owner, waiter, null), { once: true });
    // Something may have arrived while this wait was being set up.
    if (this.missedWake(owner, since)) this.offer(owner, waiter);
    return result;
  }

  /** What a wait acknowledges first, if anything (`?ack=` with an id). */
  private ackOf(opts: NextOptions): { id: string; receiptTtlMs: number } | undefined {
    return opts.ack ? { id: opts.ack, receiptTtlMs: this.receiptTtl() } : undefined;
  }

  /** The fate to record for a partner message's sender (broker notices have none). */
  private receipt(item: InboxItem, fate: Fate): Receipt | undefined {
    return item.from ? { sender: item.from, fate, ttlMs: this.receiptTtl() } : undefined;
  }

  private leaseOf(owner: string, item: InboxItem, acking: boolean): Lease {
    let settled = false;
    return {
      event: item.event,
      settle: (delivered) => {
        if (settled) return;
        settled = true;
        void this.settle(owner, item, delivered, acking).catch(() => undefined);
      },
    };
  }

  private async settle(owner: string, item: InboxItem, delivered: boolean, acking: boolean): Promise<void> {
    const { inboxes, receipts } = this.backend;
    if (delivered) {
      if (item.from) this.metrics.delivered.inc();
      // An acknowledging client keeps the event in flight until it says it processed it.
      if (!acking) await inboxes.ack(owner, item.event.id, this.receipt(item, 'delivered'));
      else if (item.from) await receipts.setFate(item.event.id, item.from, 'delivered', this.receiptTtl());
      return;
    }
    this.metrics.redelivered.inc();
    // Back to the head: nothing is lost to a dropped connection.
    await inboxes.nack(owner, item.event.id, this.backend.clock.now() + REQUEUE_GRACE_MS);
    this.wake(owner);
  }

  /**
   * Queues `item` for `owner`. A wait held here is handed the head in the same step; only
   * otherwise does the bus carry a wake (to the broker that holds the wait, if any). On Redis that
   * saves the lease's round trip and a PUBLISH with its echo, per message.
   */
  private async deliver(owner: string, item: InboxItem, receiptTtlMs?: number): Promise<void> {
    const w = this.waiters.get(owner);
    this.queued(owner, w, await this.backend.inboxes.push(owner, item, receiptTtlMs, w !== undefined));
  }

  /** After a push for `owner` (leased for `w`, the wait held here when it was made, if any): who hears of it. */
  private queued(owner: string, w: Waiter | undefined, head: InboxItem | undefined): void {
    if (!w) return this.backend.bus.wake(owner);
    if (head && !w.done) this.release(owner, w, this.leaseOf(owner, head, w.acking));
    else this.wake(owner); // that wait ended meanwhile: the leased head goes to whichever wait comes next
  }

  /** A wait held here is offered the head here; otherwise the bus carries the wake. */
  private wake(owner: string): void {
    const w = this.waiters.get(owner);
    if (w) this.offer(owner, w);
    else this.backend.bus.wake(owner);
  }

  /** Hands the head of `owner`'s inbox to the wait held here for it, if there is one. */
  private wakeLocal(owner: string): void {
    const w = this.waiters.get(owner);
    if (w) this.offer(owner, w);
    else if (this.shared) this.unheld(owner);
  }

  /** Notes a wake that found no wait held here: a wait being set up for `owner` must then look again. */
  private unheld(owner: string): void {
    if (this.unheldWakes.size >= UNHELD_WAKES_MAX) {
      this.unheldWakes.clear();
      this.unheldFloor = this.wakeSeq; // what was forgotten counts as a wake for every wait being set up
    }
    this.unheldWakes.set(owner, ++this.wakeSeq);
  }

  /**
   * Whether a wake for `owner` may have come between its wait's look at the inbox (`since`) and
   * now, when the wait is registered. Every push is followed by a wake, so if none came, the inbox
   * is as that look found it (empty) and the second look is skipped: on Redis that is a round
   * trip per message. A wake that comes later finds the wait registered. In one process the
   * look costs nothing, so it is always taken.
   */
  private missedWake(owner: string, since: number): boolean {
    if (!this.shared) return true;
    return this.unheldFloor > since || (this.unheldWakes.get(owner) ?? 0) > since;
  }

  private offer(owner: string, w: Waiter): void {
    const got = this.backend.inboxes.lease(owner);
    const hand = (item: InboxItem | undefined) => {
      if (item && !w.done) this.release(owner, w, this.leaseOf(owner, item, w.acking));
    };
    if (got instanceof Promise) void got.then(hand, () => undefined);
    else hand(got);
  }

  private release(owner: string, w: Waiter, lease: Lease | null): void {
    if (w.done) return;
    w.done = true;
    this.waiters.delete(owner);
    clearTimeout(w.timer);
    this.metrics.waiters.dec();
    if (w.member) this.markWaiting(w.roomId, owner, false);
    w.resolve(lease);
  }

  /**
   * Whether a member holds a wait, for presence. On a shared backend each write is two round trips
   * and every message ends one wait and starts the next, so writes are coalesced: what is written
   * is the state at each flush (PRESENCE_FLUSH_MS), and a wait re-armed in between costs nothing.
   */
  private markWaiting(roomId: number, owner: string, waiting: boolean): void {
    if (this.presenceFlushMs === 0) return void this.setWaiting(roomId, owner, waiting);
    const p = this.presenceWrites.get(owner);
    if (p) Object.assign(p, { roomId, waiting });
    else this.presenceWrites.set(owner, { roomId, waiting, written: undefined });
    this.presenceTimer ??= setTimeout(() => this.flushPresence(), this.presenceFlushMs).unref();
  }

  private flushPresence(): void {
    this.presenceTimer = undefined;
    for (const [owner, p] of this.presenceWrites) {
      if (p.written !== p.waiting) {
        p.written = p.waiting;
        void this.setWaiting(p.roomId, owner, p.waiting);
      } else if (!p.waiting) this.presenceWrites.delete(owner); // written and no longer waiting: nothing left to say
    }
  }

  /** Presence only: a backend that cannot record it must not fail the wait. Synchronous where the backend is: no promise per wait. */
  private setWaiting(roomId: number, owner: string, waiting: boolean): void {
    try {
      const done = this.backend.rooms.update(roomId, (r) => {
        const m = r.members.find((x) => x.hash === owner);
        if (!m) return;
        m.waiting = waiting;
        m.lastSeen = this.backend.clock.now();
      });
      if (done instanceof Promise) done.catch(() => undefined);
    } catch {
      // presence stays as it was
    }
  }

  async status(token: string | undefined): Promise<Status> {
    const { row, room } = await this.tokenAndRoom(token);
    const me = room?.members.find((m) => m.hash === row.hash);
    if (!room || !me) return { inRoom: false, role: null, agentId: null, partner: null, paused: null, headless: null };
    await this.backend.rooms.update(room.id, (r) => {
      const m = r.members.find((x) => x.hash === row.hash);
      if (m) m.lastSeen = this.backend.clock.now();
    });
    const p = room.members.find((m) => m !== me);
    const now = this.backend.clock.now();
    const partner = p ? { agentId: p.agentId, presence: this.presence(p, now), lastSeenMs: p.waiting ? 0 : now - p.lastSeen } : null;
    return { inRoom: true, role: me.role, agentId: me.agentId, partner, paused: room.paused, headless: room.headless };
  }

  private side(m: MemberState, now: number): Side {
    return { agentId: m.agentId, role: m.role, presence: this.presence(m, now), lastSeenMs: m.waiting ? 0 : now - m.lastSeen };
  }

  /** Holding a wait; seen within one wait slice and a margin; asleep (token valid, not polling). */
  private presence(m: MemberState, now: number): Presence {
    if (m.waiting) return 'waiting';
    return now - m.lastSeen <= (this.config.waitTimeoutS + 15) * 1000 ? 'recent' : 'asleep';
  }

  async fate(token: string | undefined, messageId: string): Promise<MessageFate> {
    const row = await this.auth(token);
    const f = await this.backend.receipts.fate(messageId);
    if (!f || f.sender !== row.hash) throw refuse('unknown_message');
    return f.fate;
  }

  /** The room's creator leaving closes it; the other side leaving leaves the creator alone in it. Idempotent. */
  async leave(token: string | undefined): Promise<void> {
    const row = await this.auth(token);
    if (row.roomId !== null) await this.depart(row.roomId, row.hash, 'left');
  }

  private async depart(roomId: number, hash: string, why: 'left' | 'expired'): Promise<void> {
    const out = await this.backend.rooms.update(roomId, (r) => {
      const me = r.members.find((m) => m.hash === hash);
      if (!me) return undefined;
      const partner = r.members.find((m) => m !== me);
      const closes = r.creator === hash;
      r.members = r.members.filter((m) => m !== me && !(closes && m === partner));
      // The leaver's watchers (and the partner's, when the room closes) see this last event, then nothing more.
      const watch = r.watch;
      if (watch) r.watch = watch.filter((g) => r.members.some((m) => m.hash === g.of));
      return { me, partner, closes, empty: r.members.length === 0, watch };
    });
    await this.backend.tokens.setRoom(hash, null);
    if (!out) return;
    const { me, partner, closes } = out;
    // What the leaver had not read is dropped, and its senders are told.
    for (const item of await this.backend.inboxes.clear(hash)) await this.undelivered(item, 'room_closed');
    // Whoever leaves knows it already; only a wait it still holds (or an expiry) needs telling.
    const mine = why === 'left' ? 'you_left' : 'you_expired';
    if (why === 'expired' || me.waiting) await this.push(hash, { kind: 'room_closed', why: mine }, FINAL_TTL_MS);
    // A watcher is told whose part ended (the agent itself knows it is "you").
    await this.toWatchers(out.watch, [hash], event({ kind: 'room_closed', why: mine, agent: me.agentId }), FINAL_TTL_MS);
    if (partner) {
      let told: RoomEvent;
      if (closes) {
        await this.backend.tokens.setRoom(partner.hash, null);
        // After the partner's pending messages: the last words of the leaver still arrive first.
        told = await this.push(partner.hash, { kind: 'room_closed', why: why === 'left' ? 'closed' : 'expired', agent: me.agentId, creatorRole: me.role }, FINAL_TTL_MS);
      } else {
        told = await this.push(partner.hash, { kind: 'partner_left', agent: me.agentId, why });
      }
      await this.toWatchers(out.watch, [partner.hash], told, closes ? FINAL_TTL_MS : undefined);
    }
    if (out.empty) await this.closeRoom(roomId);
  }

  private async closeRoom(roomId: number): Promise<void> {
    await this.backend.rooms.delete(roomId);
    await this.backend.detectors.delete(roomId);
    this.metrics.roomsClosed.inc();
  }

  // ── watchers ────────────────────────────────────────────────────────────
  //
  // A watch link lets a participant's human follow the room live. Its one-time code and the
  // watcher token it becomes are grants in the room's state (hashes, atomic with the room); a
  // token row maps each hash to its room so it can be found. A watcher's feed is an inbox like
  // any other (memory, bounded, expiring), woken through the bus: it works across brokers on a
  // shared backend. Watchers never speak: every participant call refuses their token.

  async watchLink(token: string | undefined): Promise<{ code: string; expiresInS: number }> {
    this.refuseWhileDraining();
    const { room, me } = await this.memberOf(token);
    const code = `watch_${randomBytes(16).toString('hex')}`;
    const hash = this.backend.hasher.hash(code);
    const now = this.backend.clock.now();
    const expiresAt = now + WATCH_CODE_TTL_S * 1000;
    const added = await this.backend.rooms.update(room.id, (r) => {
      const live = (r.watch ?? []).filter((g) => g.expiresAt > now);
      if (live.length >= MAX_WATCH_GRANTS) return false;
      r.watch = [...live, { hash, kind: 'code', of: me.hash, expiresAt }];
      return true;
    });
    if (added === undefined) throw refuse('not_in_room');
    if (!added) throw refuse('watch_limit');
    await this.backend.tokens.add(hash, expiresAt);
    await this.backend.tokens.setRoom(hash, room.id);
    return { code, expiresInS: WATCH_CODE_TTL_S };
  }

  async redeemWatch(code: string): Promise<{ token: string; agentId: string }> {
    this.refuseWhileDraining();
    if (!WATCH_CODE_RE.test(code)) throw refuse('invalid_code');
    const codeHash = this.backend.hasher.hash(code);
    const now = this.backend.clock.now();
    const row = await this.backend.tokens.get(codeHash);
    if (!row || row.roomId === null || row.expiresAt <= now) throw refuse('invalid_code');
    const token = `wat_${randomBytes(16).toString('hex')}`;
    const hash = this.backend.hasher.hash(token);
    const expiresAt = now + this.config.tokenTtlS * 1000;
    // Burned inside the room's atomic update: of two openings at once, one wins.
    const got = await this.backend.rooms.update(row.roomId, (r) => {
      const i = (r.watch ?? []).findIndex((g) => g.kind === 'code' && g.hash === codeHash && g.expiresAt > now);
      if (i < 0) return undefined;
      const [grant] = r.watch!.splice(i, 1);
      const agent = r.members.find((m) => m.hash === grant.of);
      if (!agent) return undefined;
      r.watch!.push({ hash, kind: 'watcher', of: grant.of, expiresAt });
      return { agentId: agent.agentId, partner: r.members.find((m) => m !== agent)?.hash };
    });
    await this.backend.tokens.delete(codeHash);
    if (!got) throw refuse('invalid_code');
    await this.backend.tokens.add(hash, expiresAt);
    await this.backend.tokens.setRoom(hash, row.roomId);
    if (got.partner) await this.push(got.partner, { kind: 'watcher_joined', agent: got.agentId });
    return { token, agentId: got.agentId };
  }

  private async watcherOf(token: string | undefined) {
    if (!Engine.isWatchToken(token)) throw refuse('unauthorized');
    const hash = this.backend.hasher.hash(token);
    const found = await this.backend.tokens.withRoom(hash);
    if (!found || found.row.expiresAt <= this.backend.clock.now()) throw refuse('unauthorized');
    const room = found.room;
    const grant = room?.watch?.find((g) => g.hash === hash && g.kind === 'watcher');
    const agent = grant && room?.members.find((m) => m.hash === grant.of);
    if (!room || !agent) throw refuse('not_in_room');
    return { room, agent, hash };
  }

  async watchNext(token: string | undefined, opts: NextOptions): Promise<Lease | null> {
    const hash = Engine.isWatchToken(token) ? this.backend.hasher.hash(token) : undefined;
    const since = this.wakeSeq;
    // What was fanned out before the room closed is still handed out, as for a member (a feed has
    // no token row, so only the head of the read counts).
    const head = hash && (await this.backend.tokens.leaseOrRoom(hash, this.ackOf(opts))).head;
    if (head) return this.leaseOf(hash, head, opts.acking ?? false);
    const { room } = await this.watcherOf(token);
    return this.hold(hash!, room.id, opts, false, since);
  }

  async watchStatus(token: string | undefined): Promise<WatchStatus> {
    const { room, agent } = await this.watcherOf(token);
    const now = this.backend.clock.now();
    const partner = room.members.find((m) => m !== agent);
    return { agent: this.side(agent, now), partner: partner ? this.side(partner, now) : null, paused: room.paused, headless: room.headless };
  }

  async watchResume(token: string | undefined): Promise<void> {
    const { room, agent } = await this.watcherOf(token);
    await this.resumeRoom(room.id, agent.agentId);
  }

  async watchEnd(token: string | undefined): Promise<void> {
    const { room, agent } = await this.watcherOf(token);
    await this.depart(room.id, agent.hash, 'left');
  }

  /** Live watcher grants on any of `owners`. */
  private watchersOf(grants: WatchGrant[] | undefined, owners: string[]): WatchGrant[] {
    if (!grants?.length) return [];
    const now = this.backend.clock.now();
    return grants.filter((g) => g.kind === 'watcher' && g.expiresAt > now && owners.includes(g.of));
  }

  /**
   * Copies an event into the feeds of those watching `owners`. A feed is capped as an inbox is:
   * a watcher who stops reading misses events; the participants never wait for a watcher.
   */
  private async toWatchers(grants: WatchGrant[] | undefined, owners: string[], e: RoomEvent, ttlMs?: number): Promise<void> {
    for (const g of this.watchersOf(grants, owners)) {
      const size = await this.backend.inboxes.size(g.hash);
      const bytes = e.kind === 'message' ? storedBytes(e.text) : 256;
      if (size.count >= this.config.queueMaxMessages || size.bytes + bytes > this.config.queueMaxBytes) continue;
      await this.deliver(g.hash, { event: e, bytes, expiresAt: this.expiry(ttlMs) });
    }
  }

  // ── delivery ────────────────────────────────────────────────────────────

  private expiry(ttlMs = this.config.messageTtlS * 1000): number {
    return this.backend.clock.now() + ttlMs;
  }

  private receiptTtl(): number {
    return this.config.messageTtlS * 1000 + FINAL_TTL_MS;
  }

  /** Queues a broker event for `owner` and wakes its wait. */
  private async push(owner: string, body: RoomEventBody, ttlMs?: number): Promise<RoomEvent> {
    const e = event(body);
    await this.deliver(owner, { event: e, bytes: 256, expiresAt: this.expiry(ttlMs) });
    return e;
  }

  /** An unread message expired: its sender is told, never left guessing. */
  private async expired(_owner: string, item: InboxItem): Promise<void> {
    if (!item.from) return;
    this.metrics.expired.inc();
    await this.undelivered(item, 'expired');
  }

  private async undelivered(item: InboxItem, why: 'expired' | 'room_closed'): Promise<void> {
    if (!item.from || item.event.kind !== 'message') return;
    await this.backend.receipts.setFate(item.event.id, item.from, why === 'expired' ? 'expired' : 'dropped', this.receiptTtl());
    const sender = await this.backend.tokens.get(item.from);
    if (!sender) return;
    await this.push(item.from, { kind: 'undelivered', to: item.toAgent ?? 'your partner', messageId: item.event.id, afterS: this.config.messageTtlS, why });
  }

  // ── housekeeping ────────────────────────────────────────────────────────

  /** Expired tokens and codes, found through their expiry indexes (never a scan of all rooms). */
  async sweep(now = this.backend.clock.now()): Promise<void> {
    for (const hash of await this.backend.tokens.expired(now)) {
      const row = await this.backend.tokens.get(hash);
      if (row?.roomId != null) await this.depart(row.roomId, hash, 'expired');
      await this.backend.tokens.delete(hash);
    }
    for (const roomId of await this.backend.codes.sweep(now)) {
      // A room whose code expired before anyone joined is closed; its creator is told why.
      const alone = await this.backend.rooms.update(roomId, (r) => {
        if (r.members.length !== 1) return undefined;
        const [m] = r.members;
        r.members = [];
        return { hash: m.hash, watch: r.watch };
      });
      if (!alone) continue;
      await this.backend.tokens.setRoom(alone.hash, null);
      await this.toWatchers(alone.watch, [alone.hash], await this.push(alone.hash, { kind: 'room_closed', why: 'code_expired' }, FINAL_TTL_MS), FINAL_TTL_MS);
      await this.closeRoom(roomId);
    }
  }

  /**
   * SIGTERM: refuse new work and answer every wait held here with the restart event. Where sessions
   * do not survive, each sender hears how many of its messages were never read.
   */
  async drain(): Promise<void> {
    this.isDraining = true;
    const survive = this.backend.name !== 'memory';
    const unread = survive ? new Map<string, number>() : await this.backend.inboxes.unreadBySender();
    for (const [owner, w] of [...this.waiters]) {
      const restarting = event({ kind: 'broker_restarting', sessionsSurvive: survive, unread: unread.get(owner) ?? 0 });
      this.release(owner, w, { event: restarting, settle() {} });
    }
    // Nobody waits here any more: say so now, not at a flush this process may not live to see.
    clearTimeout(this.presenceTimer);
    this.flushPresence();
  }

  private refuseWhileDraining(): void {
    if (this.isDraining) throw refuse('draining', undefined, 5);
  }

  close(): void {
    clearInterval(this.sweeper);
    clearTimeout(this.presenceTimer);
    for (const [owner, w] of [...this.waiters]) this.release(owner, w, null);
    void Promise.resolve(this.backend.close()).catch(() => undefined);
  }

  /** Counts for /metrics and the benchmark: never content. */
  stats(): { rooms: number } {
    const n = this.backend.rooms.count();
    if (typeof n === 'number') this.roomCount = n;
    else n.then((c) => (this.roomCount = c), () => undefined); // a shared backend: the last count it gave
    return { rooms: this.roomCount };
  }
  private roomCount = 0;
}
