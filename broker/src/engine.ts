/**
 * The room engine: pairing, turns, pauses, loop alarms and delivery, with no transport in it.
 * HTTP is one thin adapter over it; SSH, MCP and A2A talk to it the same way.
 *
 * Messages live only here, in memory, in each member's inbound queue, and only until they
 * are delivered or expire. Every lookup is by key (token hash → room id → room), so no
 * request costs time in the number of rooms; expiry runs on per-item timers and an indexed sweep.
 */
import { randomBytes } from 'node:crypto';
import type { Config } from './config.js';
import { frameAlert, frameMessage, frameNotice, parseSignal, rulesText } from './framing.js';
import { createLoopDetector, type LoopAlarm, type LoopDetector, type Signal } from './loop-detector.js';
import type { Metrics } from './metrics.js';
import { MAX_ROOMS_PER_TOKEN, type RoomKind, type Store } from './store.js';

/** A refusal the adapters turn into their own error shape (HTTP: status + JSON {error, code}). */
export class ParleyError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
    readonly retryAfterS?: number,
  ) {
    super(message);
  }
}

export const unauthorized = () => new ParleyError(401, 'Invalid or expired token', 'unauthorized');
const notInRoom = () => new ParleyError(400, 'Not in a room', 'not_in_room');
// Unknown, used and expired codes all get this same answer, so codes cannot be probed.
const badCode = () => new ParleyError(404, 'Invalid or expired code', 'invalid_code');

const TOKEN_RE = /^tok_[0-9a-f]{32}$/;
const CODE_RE = /^(invite|listen)_[0-9a-f]{32}$/;
const FINAL_NOTICE_TTL_MS = 10 * 60_000;

type Role = 'host' | 'joiner';

interface Item {
  body: string;
  bytes: number;
  /** Set for partner messages, so the sender can be told if it expires unread. */
  from?: string;
  expiresAt: number;
  timer?: NodeJS.Timeout;
}

interface Waiter {
  resolve(d: Delivery | null): void;
  timer: NodeJS.Timeout;
}

interface Member {
  hash: string;
  hashBuf: Buffer;
  agentId: string;
  role: Role;
  queue: Item[];
  queueBytes: number;
  waiter: Waiter | null;
  lastSeen: number;
  lastSignal: Signal;
  /** The room this member is in; null once removed (late settles then drop their item). */
  room: Room | null;
}

interface Room {
  id: number;
  kind: RoomKind;
  headless: boolean;
  creator: string;
  members: Member[];
  paused: null | 'standby' | 'loop';
  alarms: number;
  /** Made on the first message: an idle room costs no detector memory. */
  detector: LoopDetector | null;
}

/** One event handed to a waiter. `settle(false)` means it never fully reached the client: it goes back to the head of the queue. */
export interface Delivery {
  body: string;
  settle(delivered: boolean): void;
}

export interface JoinResult {
  token?: string;
  role: Role;
  headless: boolean;
  rules: string;
  status: string;
}

export interface PingResult {
  room_alive: boolean;
  partner_connected: boolean;
  partner_last_seen_ms: number | null;
}

export class Engine {
  private readonly rooms = new Map<number, Room>();
  /** Last words for tokens that lost their room or were revoked: handed out once by wait(). */
  private readonly finalNotices = new Map<string, { body: string; timer: NodeJS.Timeout }>();
  private readonly sweeper: NodeJS.Timeout;
  private draining = false;

  constructor(
    private readonly store: Store,
    private readonly config: Config,
    private readonly metrics: Metrics,
  ) {
    this.sweeper = setInterval(() => this.sweep(), config.sweepIntervalS * 1000).unref();
  }

  get isDraining(): boolean {
    return this.draining;
  }

  // ── tokens ──────────────────────────────────────────────────────────────

  register(): { token: string } {
    this.refuseWhileDraining();
    const token = `tok_${randomBytes(16).toString('hex')}`;
    this.store.addToken(this.store.hash(token), Date.now() + this.config.tokenTtlS * 1000);
    this.metrics.tokensIssued.inc();
    return { token };
  }

  /** A token of the right shape, or a 401: lets an adapter refuse before reading a body. */
  static wellFormed(token: string | undefined): token is string {
    return token !== undefined && TOKEN_RE.test(token);
  }

  private auth(token: string | undefined, known?: Buffer) {
    if (!Engine.wellFormed(token)) throw unauthorized();
    const hashBuf = known ?? this.store.hash(token);
    const row = this.store.getToken(hashBuf);
    const now = Date.now();
    if (!row || row.expiresAt <= now) throw unauthorized();
    // Sliding expiry, written at most once a minute to keep the hot path read-only.
    const fresh = now + this.config.tokenTtlS * 1000;
    if (fresh - row.expiresAt > 60_000) this.store.touchToken(hashBuf, fresh);
    return { hashBuf, row };
  }

  private memberOf(token: string | undefined, known?: Buffer): { room: Room; me: Member; partner: Member | undefined } {
    const { row } = this.auth(token, known);
    const room = row.roomId === null ? undefined : this.rooms.get(row.roomId);
    const me = room?.members.find((m) => m.hash === row.hash);
    if (!room || !me) throw notInRoom();
    me.lastSeen = Date.now();
    return { room, me, partner: room.members.find((m) => m !== me) };
  }

  // ── rooms and codes ─────────────────────────────────────────────────────

  /** POST /setup: a fresh token that creates a room in one call. */
  setup(type: RoomKind, headless?: boolean): { token: string; code: string; role: Role } {
    const { token } = this.register();
    const { code, role } = this.openRoom(token, type, headless);
    return { token, code, role };
  }

  /** A standard room makes its creator host and hands out an invite; a listener room makes its creator joiner and hands out a listener code. */
  openRoom(token: string | undefined, kind: RoomKind, headless?: boolean): { code: string; role: Role } {
    this.refuseWhileDraining();
    const { hashBuf, row } = this.auth(token);
    if (row.roomId !== null) throw new ParleyError(409, 'Already in a room: leave it first', 'already_in_room');
    if (row.roomsCreated >= MAX_ROOMS_PER_TOKEN)
      throw new ParleyError(403, `Room limit reached: a token creates at most ${MAX_ROOMS_PER_TOKEN} rooms`, 'room_limit');
    const now = Date.now();
    const isListener = kind === 'listener';
    const id = this.store.addRoom(kind, hashBuf, headless ?? isListener, now);
    const code = `${isListener ? 'listen' : 'invite'}_${randomBytes(16).toString('hex')}`;
    const ttl = (isListener ? this.config.listenerTtlS : this.config.inviteTtlS) * 1000;
    this.store.addCode(this.store.hash(code), id, isListener ? 'listen' : 'invite', now + ttl);
    const role: Role = isListener ? 'joiner' : 'host';
    const room: Room = {
      id,
      kind,
      headless: headless ?? isListener,
      creator: row.hash,
      members: [],
      paused: null,
      alarms: 0,
      detector: null,
    };
    this.rooms.set(id, room);
    this.addMember(room, hashBuf, role);
    this.metrics.roomsOpened.inc();
    return { code, role };
  }

  /** POST /join/:code with an existing token. An invite makes you joiner; a listener code makes you host. */
  join(token: string | undefined, code: string): JoinResult {
    this.refuseWhileDraining();
    const { hashBuf, row } = this.auth(token);
    if (row.roomId !== null) throw new ParleyError(409, 'Already in a room: leave it first', 'already_in_room');
    return this.redeem(hashBuf, code);
  }

  /** POST /register-and-join/:code: the code is checked (and burned) before any token is made. */
  registerAndJoin(code: string): JoinResult & { token: string } {
    this.refuseWhileDraining();
    const claimed = this.claimCode(code);
    const { token } = this.register();
    return { token, ...this.enterRoom(this.store.hash(token), claimed.room, claimed.kind) };
  }

  private claimCode(code: string) {
    if (!CODE_RE.test(code)) throw badCode();
    const found = this.store.takeCode(this.store.hash(code), Date.now());
    const room = found && this.rooms.get(found.roomId);
    if (!found || !room || room.members.length !== 1) throw badCode();
    return { room, kind: found.kind };
  }

  private redeem(hashBuf: Buffer, code: string): JoinResult {
    const { room, kind } = this.claimCode(code);
    return this.enterRoom(hashBuf, room, kind);
  }

  private enterRoom(hashBuf: Buffer, room: Room, kind: 'invite' | 'listen'): JoinResult {
    const me = this.addMember(room, hashBuf, kind === 'invite' ? 'joiner' : 'host');
    for (const m of room.members) if (m !== me) this.deliver(m, frameNotice(`${me.agentId} has joined. Session is live!`));
    this.metrics.joins.inc();
    return { role: me.role, headless: room.headless, rules: rulesText(room.headless), status: `(${room.members.length}/2 connected)` };
  }

  private addMember(room: Room, hashBuf: Buffer, role: Role): Member {
    let agentId: string;
    do agentId = `Agent-${randomBytes(2).toString('hex')}`;
    while (room.members.some((m) => m.agentId === agentId));
    const me: Member = {
      hash: hashBuf.toString('hex'),
      hashBuf,
      agentId,
      role,
      queue: [],
      queueBytes: 0,
      waiter: null,
      lastSeen: Date.now(),
      lastSignal: null,
      room,
    };
    room.members.push(me);
    this.store.setTokenRoom(hashBuf, room.id);
    return me;
  }

  /** POST /room-rule/headless: only the room's creator may change it. */
  setHeadless(token: string | undefined, headless: boolean): { ok: true; headless: boolean } {
    const { room, me, partner } = this.memberOf(token);
    if (me.hash !== room.creator) throw new ParleyError(403, 'Only the room creator can change room rules', 'not_creator');
    room.headless = headless;
    this.store.setHeadless(room.id, headless);
    if (partner) this.deliver(partner, frameNotice(`Room rule changed by ${me.agentId}: headless is now ${headless ? 'on' : 'off'}.\n${rulesText(headless)}`));
    return { ok: true, headless };
  }

  // ── messages ────────────────────────────────────────────────────────────

  send(token: string | undefined, raw: string): 'DELIVERED' {
    this.refuseWhileDraining();
    const { room, me, partner } = this.memberOf(token);
    if (room.paused === 'loop') throw this.loopRefusal();
    if (!partner) throw new ParleyError(503, 'Partner not connected', 'partner_not_connected', 5);
    const { text, signal } = parseSignal(raw);
    if (text.trim() === '') throw new ParleyError(400, 'Empty message: send text ending with [OVER] or [STANDBY]', 'empty_message');
    const bytes = Buffer.byteLength(raw);
    if (partner.queue.length >= this.config.queueMaxMessages || partner.queueBytes + bytes > this.config.queueMaxBytes)
      throw new ParleyError(429, "Partner's inbox is full: wait for it to read", 'inbox_full', 5);

    room.detector ??= createLoopDetector();
    const alarm = room.detector.observe(me.role === 'host' ? 0 : 1, text, signal);
    if (alarm) throw this.raiseAlarm(room, alarm);

    if (room.paused === 'standby') room.paused = null;
    this.deliver(partner, frameMessage(me.agentId, text, signal), me.hash);
    this.metrics.messages.inc();
    this.metrics.messageBytes.inc(bytes);
    me.lastSignal = signal ?? 'OVER';
    if (me.lastSignal === 'STANDBY' && partner.lastSignal === 'STANDBY') {
      room.paused = 'standby';
      this.metrics.standbyPauses.inc();
      const notice = frameNotice('Both agents are on STANDBY. The session is paused; a new message from either side resumes it.');
      this.deliver(partner, notice);
      this.deliver(me, notice);
    }
    return 'DELIVERED';
  }

  private loopRefusal(): ParleyError {
    return new ParleyError(
      429,
      'Loop detected: the room is paused. Ask your human; POST /resume continues, a second loop ends the session.',
      'loop_paused',
    );
  }

  /** First alarm pauses the room; a second one in the same session severs it. */
  private raiseAlarm(room: Room, alarm: LoopAlarm): ParleyError {
    room.alarms += 1;
    this.metrics.loopAlarms.inc();
    if (room.alarms === 1) {
      room.paused = 'loop';
      const alert = frameAlert(
        `Loop detected: ${alarm.reason}. The room is paused and new messages are refused. ` +
          'Stop and tell your human. If there is real work left, a participant can resume (POST /resume) on the human\'s word; ' +
          'a second loop ends the session.',
      );
      for (const m of room.members) this.deliver(m, alert);
      return this.loopRefusal();
    }
    const alert = frameAlert(
      `Loop detected again after resuming: ${alarm.reason}. The session is severed and both tokens are revoked. ` +
        'Tell your human; start a new session only if there is real work left.',
    );
    for (const m of [...room.members]) {
      this.removeMember(room, m, alert);
      this.store.deleteToken(m.hashBuf);
    }
    this.metrics.severed.inc();
    return new ParleyError(429, 'Loop detected again: the session is severed and both tokens are revoked.', 'loop_severed');
  }

  /** POST /resume after a loop alarm, on a human's word. */
  resume(token: string | undefined): { ok: true } {
    const { room, me } = this.memberOf(token);
    if (room.paused !== 'loop') throw new ParleyError(409, 'Room is not paused by a loop alarm', 'not_paused');
    room.paused = null;
    room.detector?.reset();
    const notice = frameNotice(`${me.agentId} resumed the session after the loop alarm. A second loop alarm ends the session.`);
    for (const m of room.members) this.deliver(m, notice);
    return { ok: true };
  }

  /**
   * GET /wait. Resolves with the next event, or null at the timeout. The caller must call
   * `cancel()` if its client goes away first, and `settle()` on what it was handed.
   */
  wait(token: string | undefined, timeoutMs: number): { result: Promise<Delivery | null>; cancel(): void } {
    const hashBuf = Engine.wellFormed(token) ? this.store.hash(token) : undefined;
    const final = hashBuf && this.takeFinalNotice(hashBuf.toString('hex'));
    if (final) return { result: Promise.resolve(final), cancel() {} };
    const { me } = this.memberOf(token, hashBuf);
    if (this.draining) throw new ParleyError(503, 'Broker is draining for a restart; try again shortly', 'draining', 5);
    if (me.waiter) throw new ParleyError(409, 'Wait already pending', 'wait_pending');
    const head = me.queue.shift();
    if (head) me.queueBytes -= head.bytes;
    if (head) return { result: Promise.resolve(this.handOut(me, head)), cancel() {} };
    let waiter!: Waiter;
    const result = new Promise<Delivery | null>((resolve) => {
      const timer = setTimeout(() => {
        if (me.waiter === waiter) me.waiter = null;
        me.lastSeen = Date.now();
        resolve(null);
      }, timeoutMs);
      waiter = { resolve, timer };
    });
    me.waiter = waiter;
    this.metrics.waiters.inc();
    result.finally(() => this.metrics.waiters.dec());
    return {
      result,
      cancel: () => {
        if (me.waiter !== waiter) return;
        clearTimeout(waiter.timer);
        me.waiter = null;
        me.lastSeen = Date.now();
        waiter.resolve(null);
      },
    };
  }

  ping(token: string | undefined): PingResult {
    const { row } = this.auth(token);
    const room = row.roomId === null ? undefined : this.rooms.get(row.roomId);
    const me = room?.members.find((m) => m.hash === row.hash);
    if (!room || !me) return { room_alive: false, partner_connected: false, partner_last_seen_ms: null };
    me.lastSeen = Date.now();
    const partner = room.members.find((m) => m !== me);
    return {
      room_alive: true,
      partner_connected: partner !== undefined,
      partner_last_seen_ms: partner ? (partner.waiter ? 0 : Date.now() - partner.lastSeen) : null,
    };
  }

  /** POST /leave. The host leaving closes the room; a joiner leaving leaves the host alone in it. Idempotent. */
  leave(token: string | undefined): { ok: true } {
    const { row } = this.auth(token);
    const room = row.roomId === null ? undefined : this.rooms.get(row.roomId);
    const me = room?.members.find((m) => m.hash === row.hash);
    if (room && me) this.depart(room, me, 'left');
    return { ok: true };
  }

  private depart(room: Room, me: Member, why: 'left' | 'expired'): void {
    const partner = room.members.find((m) => m !== me);
    const closes = me.role === 'host';
    // Whoever leaves knows it already; only a wait it still holds needs an answer.
    this.removeMember(room, me, frameNotice(why === 'left' ? 'You left the room.' : 'Your session expired.'), why === 'expired');
    if (!partner) return;
    if (closes) {
      const text = why === 'left' ? `The host (${me.agentId}) closed the room. The session is over.` : `The host's session (${me.agentId}) expired. The session is over.`;
      this.removeMember(room, partner, frameNotice(text));
    } else {
      this.deliver(partner, frameNotice(why === 'left' ? `${me.agentId} has left the room.` : `${me.agentId}'s session expired.`));
    }
  }

  // ── delivery ────────────────────────────────────────────────────────────

  private deliver(to: Member, body: string, from?: string): void {
    const item: Item = { body, bytes: Buffer.byteLength(body), from, expiresAt: Date.now() + this.config.messageTtlS * 1000 };
    if (this.toWaiter(to, item)) return;
    to.queue.push(item);
    to.queueBytes += item.bytes;
    this.arm(to, item);
  }

  /** Hands the item straight to a wait that is already held, if there is one. */
  private toWaiter(to: Member, item: Item): boolean {
    const w = to.waiter;
    if (!w) return false;
    to.waiter = null;
    clearTimeout(w.timer);
    w.resolve(this.handOut(to, item));
    return true;
  }

  private handOut(to: Member, item: Item): Delivery {
    if (item.timer) clearTimeout(item.timer);
    item.timer = undefined;
    let settled = false;
    return {
      body: item.body,
      settle: (delivered) => {
        if (settled) return;
        settled = true;
        if (delivered) {
          if (item.from) this.metrics.delivered.inc();
          return;
        }
        this.metrics.redelivered.inc();
        // Back to the head, if the member is still in a room: nothing is lost to a dropped connection.
        if (!to.room) return;
        item.expiresAt = Math.max(item.expiresAt, Date.now() + 60_000);
        if (this.toWaiter(to, item)) return;
        to.queue.unshift(item);
        to.queueBytes += item.bytes;
        this.arm(to, item);
      },
    };
  }

  /** A queued item expires after MESSAGE_TTL_S; the sender of an unread message is told, never left guessing. */
  private arm(to: Member, item: Item): void {
    item.timer = setTimeout(() => {
      const i = to.queue.indexOf(item);
      if (i < 0) return;
      to.queue.splice(i, 1);
      to.queueBytes -= item.bytes;
      item.timer = undefined;
      if (!item.from) return;
      this.metrics.expired.inc();
      const sender = to.room?.members.find((m) => m.hash === item.from);
      if (sender) this.deliver(sender, frameNotice(`A message you sent to ${to.agentId} was not collected within ${this.config.messageTtlS}s and was dropped. Check with /ping before resending.`));
    }, Math.max(0, item.expiresAt - Date.now()));
    item.timer.unref();
  }

  private removeMember(room: Room, m: Member, farewell: string, keepForNextWait = true): void {
    for (const item of m.queue) if (item.timer) clearTimeout(item.timer);
    m.queue = [];
    m.queueBytes = 0;
    const w = m.waiter;
    if (w) {
      m.waiter = null;
      clearTimeout(w.timer);
      w.resolve({ body: farewell, settle: () => {} });
    } else if (keepForNextWait) {
      this.setFinalNotice(m.hash, farewell);
    }
    room.members = room.members.filter((x) => x !== m);
    m.room = null;
    this.store.setTokenRoom(m.hashBuf, null);
    if (room.members.length === 0) {
      this.rooms.delete(room.id);
      this.store.deleteRoom(room.id);
      this.metrics.roomsClosed.inc();
    }
  }

  private setFinalNotice(hash: string, body: string): void {
    const old = this.finalNotices.get(hash);
    if (old) clearTimeout(old.timer);
    const timer = setTimeout(() => this.finalNotices.delete(hash), FINAL_NOTICE_TTL_MS).unref();
    this.finalNotices.set(hash, { body, timer });
  }

  private takeFinalNotice(hash: string): Delivery | undefined {
    const f = this.finalNotices.get(hash);
    if (!f) return undefined;
    clearTimeout(f.timer);
    this.finalNotices.delete(hash);
    return { body: f.body, settle: (ok) => ok || this.setFinalNotice(hash, f.body) };
  }

  // ── housekeeping ────────────────────────────────────────────────────────

  /** Expired tokens and codes, found through their expiry indexes (never a scan of all rooms). */
  sweep(now = Date.now()): void {
    for (const hashBuf of this.store.expiredTokens(now)) {
      const row = this.store.getToken(hashBuf);
      const room = row?.roomId != null ? this.rooms.get(row.roomId) : undefined;
      const me = room?.members.find((m) => m.hash === row!.hash);
      if (room && me) this.depart(room, me, 'expired');
      this.store.deleteToken(hashBuf);
    }
    for (const roomId of this.store.sweepCodes(now)) {
      const room = this.rooms.get(roomId);
      // A room whose code expired before anyone joined is closed; its creator is told why.
      if (room && room.members.length === 1)
        this.removeMember(room, room.members[0], frameNotice('Your code expired before anyone joined, so the room is closed. Create a new one if you still need it.'));
    }
  }

  /** SIGTERM: refuse new work and answer every waiter with the draining notice. */
  drain(): void {
    this.draining = true;
    const notice = frameNotice('The broker is restarting. Sessions end with the restart: tell your human, then start a new session once it is back.');
    for (const room of this.rooms.values())
      for (const m of room.members) {
        const w = m.waiter;
        if (!w) continue;
        m.waiter = null;
        clearTimeout(w.timer);
        w.resolve({ body: notice, settle: () => {} });
      }
  }

  private refuseWhileDraining(): void {
    if (this.draining) throw new ParleyError(503, 'Broker is draining for a restart; try again shortly', 'draining', 5);
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const room of this.rooms.values())
      for (const m of room.members) {
        for (const item of m.queue) if (item.timer) clearTimeout(item.timer);
        if (m.waiter) clearTimeout(m.waiter.timer);
      }
    for (const f of this.finalNotices.values()) clearTimeout(f.timer);
  }

  /** Counts for /metrics and the benchmark: never content. */
  stats(): { rooms: number } {
    return { rooms: this.rooms.size };
  }
}
