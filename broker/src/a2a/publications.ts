/**
 * Published listeners: a participant that set up a listener room hands the door its listener
 * code, and the door serves it as an A2A agent. The first A2A caller takes the listener's seat:
 * the door redeems the code (as the room's "host") with a participant token of its own and
 * relays that caller's context to the room through the RoomService, like any other door.
 *
 * One caller at a time: a listener code is one-time, so once the caller's context ends (it
 * cancels, goes idle, or the room ends) the publication ends too; the listener, listening again,
 * re-arms it for the next caller (same URL and key). A second caller while the seat is taken gets
 * a REJECTED task saying so.
 *
 * Privacy: message text lives only in the tasks held here (memory), never in logs or errors.
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { ParleyError, REFUSALS, refuse } from '../engine/errors.js';
import type { RoomEvent } from '../engine/events.js';
import type { RoomService } from '../engine/service.js';
import { parseSignal, renderEvent, type ActionWords } from '../framing.js';
import { addArtifact, addHistory, isTerminal, MAX_TASKS, message, newTask, setState, textSize, type Msg, type Task } from './tasks.js';
import type { CardInfo, IncomingMessage, RoomView } from './wire.js';

/** How long an ended publication's tasks can still be read (GetTask) before they are purged. */
const ENDED_GRACE_MS = 10 * 60_000;
/** Publications held at once, across the broker; with the per-publication text budget, a bound on memory. */
const MAX_PUBLICATIONS = 256;
/** Characters of text one publication's tasks may hold; the oldest finished tasks go first. */
const TEXT_BUDGET = 1024 * 1024;
/** Listener messages held for the caller's next task while no task is open. */
const MAX_BACKLOG = 50;
/** One held wait on the room at a time; short enough to notice a closed door promptly. */
const PUMP_WAIT_MS = 60_000;

/** How a broker notice names actions for an A2A caller. */
export const A2A_WORDS: ActionWords = { resume: 'resume (a message with metadata {"parleyCommand":"resume"}; the listener: POST /resume)', status: 'GetTask' };

/**
 * Partner text as an A2A caller sees it. A2A carries it as plain text in an agent message, as it
 * does broker notices (`[SYSTEM]: …`), so a partner line that would read as a broker line is shown
 * quoted, as the A2A Linker frame quotes every partner line.
 */
export function partnerText(text: string): string {
  return /^\s*\[SYSTEM/im.test(text) ? text.replace(/^(\s*\[SYSTEM)/gim, '│ $1') : text;
}

export interface Seat {
  token: string;
  contextId: string;
  /** The open (non-terminal) task of the context, if any. */
  active: Task | null;
  backlog: Msg[];
  ended: boolean;
  /** Why the conversation ended, for the caller's next message when no task was open to carry it. */
  endedWhy?: { text: string; code: string };
  lastUsedMs: number;
  stop: AbortController;
}

export interface Publication {
  info: CardInfo;
  owner: string;
  listenerAgent: string;
  code: string;
  keyHash: Buffer | null;
  seat: Seat | null;
  claiming: Promise<Seat> | null;
  tasks: Map<string, Task>;
  endedMs: number | null;
}

const hashKey = (key: string) => createHash('sha256').update(key).digest();

export class NotCancelable extends Error {}

export class Publications {
  private readonly byId = new Map<string, Publication>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly rooms: RoomService,
    private readonly log: Logger,
    private readonly idleMs: number,
    sweepMs: number,
  ) {
    this.sweeper = setInterval(() => this.sweep(), sweepMs).unref();
  }

  get(id: string): Publication | undefined {
    return this.byId.get(id);
  }

  /** The publisher's token must be the creator of a listener room that nobody has joined yet. */
  private async listening(token: string | undefined, code: string): Promise<string> {
    const status = await this.rooms.status(token);
    if (!status.inRoom || status.role !== 'joiner' || status.partner) throw refuse('bad_body', 'Publish from a listener room nobody has joined yet (POST /setup {"type":"listener"} or POST /listen first)');
    if (!/^listen_[0-9a-f]{32}$/.test(code)) throw refuse('bad_body', 'listenerCode must be the listener code of your room');
    return status.agentId!;
  }

  async publish(token: string | undefined, code: string, info: Omit<CardInfo, 'id'>): Promise<{ id: string; accessKey: string | null }> {
    const listenerAgent = await this.listening(token, code);
    if (this.byId.size >= MAX_PUBLICATIONS) throw refuse('broker_full', 'The broker holds too many published agents right now: try again later', 60);
    const id = randomBytes(12).toString('hex');
    const accessKey = info.open ? null : `a2k_${randomBytes(24).toString('hex')}`;
    this.byId.set(id, {
      info: { ...info, id },
      owner: this.rooms.rateKey(token!),
      listenerAgent,
      code,
      keyHash: accessKey ? hashKey(accessKey) : null,
      seat: null,
      claiming: null,
      tasks: new Map(),
      endedMs: null,
    });
    return { id, accessKey };
  }

  private owned(token: string | undefined, id: string): Publication {
    const p = this.byId.get(id);
    if (!p || token === undefined || p.owner !== this.rooms.rateKey(token)) throw refuse('not_found', 'No such published agent of yours');
    return p;
  }

  /**
   * The next caller: the publisher, listening again (a fresh listener code), re-arms its ended
   * publication, which keeps its URL, card and key. The last conversation's tasks are dropped.
   */
  async rearm(token: string | undefined, id: string, code: string): Promise<Publication> {
    const listenerAgent = await this.listening(token, code);
    const p = this.owned(token, id);
    if (p.seat && !p.seat.ended) throw refuse('bad_body', 'That agent is in a conversation: wait for it to end, or withdraw it first');
    Object.assign(p, { code, listenerAgent, seat: null, claiming: null, endedMs: null, tasks: new Map() });
    return p;
  }

  /** Ends the publication at once: the caller's context ends, the key stops working. */
  async unpublish(token: string | undefined, id: string): Promise<void> {
    await this.rooms.status(token); // authenticates
    const p = this.owned(token, id);
    await this.end(p);
    this.byId.delete(id);
  }

  /** A new key; the old one stops working at once. */
  async rotateKey(token: string | undefined, id: string): Promise<string> {
    await this.rooms.status(token);
    const p = this.owned(token, id);
    if (p.endedMs !== null) throw refuse('not_found', 'That published agent has ended');
    const key = `a2k_${randomBytes(24).toString('hex')}`;
    p.keyHash = hashKey(key);
    p.info.open = false;
    return key;
  }

  /** Whether this Authorization header opens the publication. */
  authorized(p: Publication, authorization: string | undefined): boolean {
    if (!p.keyHash) return true;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    return !!m && timingSafeEqual(hashKey(m[1]), p.keyHash);
  }

  task(p: Publication, id: unknown): Task | undefined {
    return typeof id === 'string' ? p.tasks.get(id) : undefined;
  }

  /** Any call of the caller's keeps its conversation from being hung up as idle. */
  touch(p: Publication): void {
    if (p.seat) p.seat.lastUsedMs = Date.now();
  }

  /**
   * The caller's message into the room. Returns the task it belongs to: working until the
   * listener answers, or rejected at once when the room refused it (the reason is the status).
   */
  async send(p: Publication, m: IncomingMessage): Promise<Task> {
    let existing: Task | undefined;
    if (m.taskId) {
      existing = p.tasks.get(m.taskId);
      if (!existing) throw new TaskNotFound();
      if (m.contextId && m.contextId !== existing.contextId) throw new ContextMismatch();
      if (isTerminal(existing.state)) throw new TaskTerminal();
    }
    const contextId = existing?.contextId ?? m.contextId ?? randomUUID();
    const rejected = (why: string, code: string) => this.reject(p, contextId, why, code);

    if (p.seat?.endedWhy && p.seat.contextId === contextId) return rejected(p.seat.endedWhy.text, p.seat.endedWhy.code);
    if (p.endedMs !== null) return rejected('This agent is no longer published: its conversation has ended. Ask its owner to publish it again.', 'ended');
    let seat = p.seat;
    if (!seat && m.command) return rejected('There is no conversation to act on yet: send a message first.', 'not_in_room');
    if (!seat) {
      try {
        seat = await (p.claiming ??= this.claim(p, contextId));
      } catch (e) {
        return rejected(e instanceof ParleyError ? e.message : REFUSALS.internal, e instanceof ParleyError ? e.code : 'internal');
      }
    }
    if (seat.contextId !== contextId) return rejected('This agent is in a conversation with another caller; try again later.', 'busy');
    if (seat.ended) return rejected('This conversation has ended.', 'ended');
    if (m.command) return this.command(p, seat, m.command);

    const task = existing ?? seat.active ?? newTask(contextId, 'working');
    try {
      await this.rooms.send(seat.token, m.text);
    } catch (e) {
      if (!(e instanceof ParleyError)) throw e;
      return rejected(e.message, e.code);
    }
    seat.lastUsedMs = Date.now();
    if (!p.tasks.has(task.id)) {
      this.keep(p, task);
      for (const b of seat.backlog.splice(0)) addHistory(task, b);
    }
    addHistory(task, message('user', m.text, task, undefined, m.messageId));
    this.trim(p);
    // A caller's [STANDBY] asks for no reply: nothing is awaited.
    if (parseSignal(m.text).signal === 'STANDBY') {
      seat.active = null;
      setState(task, 'completed');
    } else {
      seat.active = task;
      setState(task, 'working');
    }
    return task;
  }

  /**
   * A room action from the caller (`metadata.parleyCommand`), as a task of its own: COMPLETED with
   * a notice when done, REJECTED with the refusal otherwise. The open task is left as it is.
   */
  private async command(p: Publication, seat: Seat, command: 'resume'): Promise<Task> {
    try {
      if (command === 'resume') await this.rooms.resume(seat.token);
    } catch (e) {
      if (!(e instanceof ParleyError)) throw e;
      return this.reject(p, seat.contextId, e.message, e.code);
    }
    seat.lastUsedMs = Date.now();
    const task = newTask(seat.contextId, 'completed');
    setState(task, 'completed', message('agent', '[SYSTEM]: You resumed the session. A second loop alarm ends the session.', task, 'resumed'));
    this.keep(p, task);
    return task;
  }

  /** The room as the caller's seat sees it (GetTask's metadata.parleyRoom); out of the room once it ended. */
  async roomView(p: Publication, task: Task): Promise<RoomView> {
    const seat = p.seat;
    const out: RoomView = { inRoom: false, partner: false, paused: null };
    if (!seat || seat.ended || seat.contextId !== task.contextId) return out;
    try {
      const s = await this.rooms.status(seat.token);
      return { inRoom: s.inRoom, partner: s.partner !== null, paused: s.paused };
    } catch (e) {
      if (e instanceof ParleyError) return out;
      throw e;
    }
  }

  /** A refused message: the task holds only the reason, never the caller's text (another caller may list it). */
  private reject(p: Publication, contextId: string, why: string, code: string): Task {
    const task = newTask(contextId, 'rejected');
    setState(task, 'rejected', message('agent', why, task, code));
    this.keep(p, task);
    return task;
  }

  private keep(p: Publication, task: Task): void {
    p.tasks.set(task.id, task);
    this.trim(p);
  }

  /** Within MAX_TASKS and TEXT_BUDGET: the oldest finished tasks go first, then old history of open ones. */
  private trim(p: Publication): void {
    let size = 0;
    for (const t of p.tasks.values()) size += textSize(t);
    for (const [id, t] of p.tasks) {
      if (p.tasks.size <= MAX_TASKS && size <= TEXT_BUDGET) return;
      if (!isTerminal(t.state) || t === p.seat?.active) continue;
      size -= textSize(t);
      p.tasks.delete(id);
    }
    for (const t of p.tasks.values()) {
      while (size > TEXT_BUDGET && t.history.length > 1) size -= t.history.shift()!.text.length;
    }
  }

  /** Redeems the listener code and starts relaying the room's events to the caller's tasks. */
  private async claim(p: Publication, contextId: string): Promise<Seat> {
    try {
      let joined;
      try {
        joined = await this.rooms.registerAndJoin(p.code);
      } catch (e) {
        if (e instanceof ParleyError && e.code === 'invalid_code') {
          p.endedMs = Date.now();
          throw refuse('invalid_code', 'This agent is not listening any more (its listener room has ended).');
        }
        throw e;
      }
      // The code must be the publisher's own room: otherwise hang up at once.
      if (joined.partner !== p.listenerAgent) {
        await this.rooms.leave(joined.token).catch(() => undefined);
        p.endedMs = Date.now();
        throw refuse('invalid_code', 'This agent is not listening any more (its listener code was not its own room).');
      }
      const seat: Seat = { token: joined.token, contextId, active: null, backlog: [], ended: false, lastUsedMs: Date.now(), stop: new AbortController() };
      p.seat = seat;
      void this.pump(p, seat);
      return seat;
    } finally {
      p.claiming = null;
    }
  }

  private async pump(p: Publication, seat: Seat): Promise<void> {
    // Each wait acknowledges the event before it: a settled lease is only acknowledged
    // asynchronously, so an unacknowledging loop could be handed the same event twice.
    let ack: string | undefined;
    while (!seat.ended) {
      let lease;
      try {
        lease = await this.rooms.next(seat.token, { timeoutMs: PUMP_WAIT_MS, signal: seat.stop.signal, ack, acking: true });
      } catch (e) {
        // The seat's token lost its room (or was revoked): the conversation is over.
        const why = e instanceof ParleyError ? e.message : REFUSALS.internal;
        if (!(e instanceof ParleyError)) this.log.error({ err: { type: (e as Error).name } }, 'a2a relay failed');
        this.finish(p, seat, why, 'room_closed');
        return;
      }
      if (!lease) continue;
      this.apply(p, seat, lease.event);
      this.trim(p);
      lease.settle(true);
      ack = lease.event.id;
    }
  }

  /** One room event, as the caller's task sees it. */
  private apply(p: Publication, seat: Seat, e: RoomEvent): void {
    const task = seat.active;
    const noticeText = () => renderEvent(e, A2A_WORDS).replace(/^MESSAGE_RECEIVED\n/, '');
    // A notice goes into the task's history too, so a caller reading GetTask misses none.
    const notice = (t: Task) => {
      const m = message('agent', noticeText(), t, e.kind);
      addHistory(t, m);
      return m;
    };
    switch (e.kind) {
      case 'message': {
        const text = partnerText(e.text);
        if (!task) {
          seat.backlog.push({ messageId: randomUUID(), role: 'agent', text, contextId: seat.contextId, taskId: '', signal: e.signal });
          let size = seat.backlog.reduce((n, b) => n + b.text.length, 0);
          while (seat.backlog.length > MAX_BACKLOG || size > TEXT_BUDGET) size -= seat.backlog.shift()!.text.length;
          return;
        }
        const reply: Msg = { ...message('agent', text, task), signal: e.signal };
        addHistory(task, reply);
        if (e.signal === 'STANDBY') {
          addArtifact(task, text);
          seat.active = null;
          setState(task, 'completed');
        } else {
          setState(task, 'input-required', reply);
        }
        return;
      }
      case 'loop_alarm':
        if (e.severed) return this.finish(p, seat, noticeText(), e.kind);
        // Paused: the caller's turn, but its sends are refused until either side resumes.
        if (task) setState(task, 'input-required', notice(task));
        return;
      case 'resumed':
        if (task) {
          const m = notice(task);
          if (task.state === 'input-required') setState(task, 'input-required', m);
        }
        return;
      case 'room_closed':
      case 'partner_left':
      case 'broker_restarting':
        return this.finish(p, seat, noticeText(), e.kind);
      case 'undelivered':
        if (!task) return;
        // Dropped because the room closed: the closing notice follows and ends the task.
        if (e.why === 'room_closed') return void notice(task);
        seat.active = null;
        setState(task, 'failed', notice(task));
        return;
      default:
        // Joins, standby pauses (the caller has no open task then) and rule changes change nothing for it.
        return;
    }
  }

  /** The caller's context is over: its open task fails with the reason, and the publication ends. */
  private finish(p: Publication, seat: Seat, why: string, code: string): void {
    if (seat.ended) return;
    seat.ended = true;
    seat.stop.abort();
    const task = seat.active;
    seat.active = null;
    if (task) {
      const m = message('agent', why, task, code);
      addHistory(task, m);
      setState(task, 'failed', m);
    } else seat.endedWhy = { text: why, code };
    p.endedMs = Date.now();
  }

  /** CancelTask: the caller hangs up. The task is canceled and the door leaves the room. */
  async cancel(p: Publication, task: Task): Promise<Task> {
    if (isTerminal(task.state)) throw new NotCancelable();
    const seat = p.seat;
    if (seat && seat.active === task) seat.active = null;
    setState(task, 'canceled');
    if (seat) await this.hangUp(p, seat);
    return task;
  }

  private async hangUp(p: Publication, seat: Seat, why = 'The caller ended the conversation.', code = 'canceled'): Promise<void> {
    if (!seat.ended) this.finish(p, seat, why, code);
    await this.rooms.leave(seat.token).catch(() => undefined);
  }

  private async end(p: Publication): Promise<void> {
    if (p.seat) await this.hangUp(p, p.seat, 'The publisher withdrew this agent.', 'unpublished');
    p.endedMs ??= Date.now();
  }

  /** Idle conversations are hung up; ended publications are purged after a grace period. */
  sweep(now = Date.now()): void {
    for (const [id, p] of this.byId) {
      if (p.seat && !p.seat.ended && now - p.seat.lastUsedMs > this.idleMs) void this.hangUp(p, p.seat, 'The conversation was idle too long and has ended.', 'idle');
      if (p.endedMs !== null && now - p.endedMs > ENDED_GRACE_MS) this.byId.delete(id);
    }
  }

  /** SIGTERM or stop: every conversation ends (sessions do not survive a memory broker). */
  close(): void {
    clearInterval(this.sweeper);
    for (const p of this.byId.values()) if (p.seat && !p.seat.ended) this.finish(p, p.seat, REFUSALS.draining, 'draining');
    this.byId.clear();
  }
}

export class TaskNotFound extends Error {}
export class TaskTerminal extends Error {}
export class ContextMismatch extends Error {}
