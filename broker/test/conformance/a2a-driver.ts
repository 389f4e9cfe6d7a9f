/**
 * The A2A door as a conformance driver: the participant is @a2a-js/sdk 1.3.0's client in the
 * caller's seat of a listener that another door's participant published (POST /a2a/publish).
 * An A2A client cannot open a room or redeem a code: it calls a published agent, and its first
 * message takes the seat. So this driver only redeems, and what it redeems is the publisher's
 * ticket (agent URL and access key); `A2A_CALLER` says what that rules out, and why.
 *
 * What the caller is shown is what the SDK client reads: the agent messages in its tasks' history
 * (partner text with metadata.parleySignal, broker notices with metadata.parleyNotice), the room
 * in GetTask's metadata.parleyRoom, refusals as REJECTED tasks. `next()` polls GetTask, as a
 * caller without a stream does.
 */
import { Role, TaskState, type Message, type Task } from '@a2a-js/sdk';
import type { Client } from '@a2a-js/sdk/client';
import type { EventKind } from '../../src/engine/events.js';
import { sdkClient, sendParams, userMessage, withKey } from '../a2a-helpers.js';
import type { Driver, Outcome, Participant, RedeemerLimits, SeenEvent } from './driver.js';

export const A2A_CALLER: RedeemerLimits = {
  room: 'listener',
  redeems: 'ticket',
  unseen: {
    standby_pause:
      'a STANDBY pause needs the caller on STANDBY, which completes its task, so no task is open to carry the notice; the caller reads the pause in GetTask (metadata.parleyRoom)',
  },
  notApplicable: {
    codes: 'an A2A caller redeems no code: it calls an agent URL with a key. Its refusals (a wrong key: 401; a second caller while the seat is taken: REJECTED "busy"; an ended publication: 404) are checked in a2a-inbound.test.ts',
    creatorClosesAfterStandby:
      "the listener's [STANDBY] completes the caller's task, so no task is open to carry the closing notice; A2A has no channel to a caller between tasks. The caller's next message is REJECTED with that notice and GetTask shows inRoom false (the OVER variant runs)",
  },
};

/** Broker notices that end the conversation but are not room events of their own (the door's codes). */
const NOTICE_KIND: Record<string, EventKind> = { idle: 'room_closed', unpublished: 'room_closed', draining: 'broker_restarting', loop_severed: 'loop_alarm' };

const OPENING = 'Calling in with a question for the listener';

const textOf = (m: Message | undefined) => (m?.parts ?? []).map((p) => (p.content?.$case === 'text' ? p.content.value : '')).join('\n');
const TERMINAL = new Set([TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_CANCELED, TaskState.TASK_STATE_REJECTED]);

function caller(a2a: Client, key: string | null): Participant {
  const auth = withKey(key);
  let contextId = '';
  const tasks: string[] = []; // the conversation's tasks, in the order they opened
  const read = new Set<string>(); // tasks that are terminal and fully read
  const seen = new Set<string>(); // message ids already taken as events
  const queue: SeenEvent[] = [];

  const outcome = (t: Task): Outcome => {
    if (t.status?.state !== TaskState.TASK_STATE_REJECTED) return { ok: true };
    return { ok: false, code: String(t.status.message?.metadata?.parleyNotice ?? 'unrecognised') };
  };
  const message = async (m: Message): Promise<Task> => {
    const r = await a2a.sendMessage(sendParams(m, { returnImmediately: true }), auth);
    if (!('status' in r)) throw new Error('the agent answered with a bare message, not a task');
    contextId ||= r.contextId;
    return r;
  };
  const poll = async () => {
    for (const id of tasks) {
      if (read.has(id)) continue;
      const t = await a2a.getTask({ tenant: '', id }, auth);
      for (const m of t.history) {
        if (m.role !== Role.ROLE_AGENT || seen.has(m.messageId)) continue;
        seen.add(m.messageId);
        const notice = m.metadata?.parleyNotice as string | undefined;
        const raw = textOf(m);
        if (notice) queue.push({ kind: NOTICE_KIND[notice] ?? (notice as EventKind), raw });
        else queue.push({ kind: 'message', raw, text: raw, signal: m.metadata?.parleySignal });
      }
      if (TERMINAL.has(t.status!.state)) read.add(id);
    }
  };
  const openTask = async (): Promise<Task | undefined> => {
    const last = tasks.at(-1);
    if (!last) return undefined;
    const t = await a2a.getTask({ tenant: '', id: last, historyLength: 0 }, auth);
    return TERMINAL.has(t.status!.state) ? undefined : t;
  };

  return {
    async send(text) {
      const t = await message(userMessage(text, { contextId }));
      const o = outcome(t);
      if (o.ok && !tasks.includes(t.id)) tasks.push(t.id);
      return o;
    },
    async next(timeoutMs = 2000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        if (!queue.length) await poll();
        if (queue.length) return queue.shift()!;
        if (Date.now() >= until) return null;
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async status() {
      const last = tasks.at(-1);
      if (!last) return { inRoom: false, paused: null, partner: false };
      const room = (await a2a.getTask({ tenant: '', id: last, historyLength: 0 }, auth)).metadata?.parleyRoom;
      if (!room) throw new Error('GetTask carried no metadata.parleyRoom');
      return room;
    },
    async resume() {
      // A room action, not a message: metadata.parleyCommand (its text is not relayed).
      return outcome(await message({ ...userMessage('resume', { contextId }), metadata: { parleyCommand: 'resume' } }));
    },
    async leave() {
      // The caller hangs up by canceling its open task.
      const t = await openTask();
      if (!t) throw new Error('no open task to cancel: an A2A caller hangs up by canceling its open task');
      await a2a.cancelTask({ tenant: '', id: t.id, metadata: undefined }, auth);
    },
    async close() {
      const t = await openTask().catch(() => undefined);
      if (t) await a2a.cancelTask({ tenant: '', id: t.id, metadata: undefined }, auth).catch(() => undefined);
    },
  };
}

export function a2aDriver(transport: 'JSONRPC' | 'HTTP+JSON' = 'JSONRPC'): Driver {
  return {
    name: `a2a (${transport})`,
    open() {
      throw new Error('an A2A client cannot open a room: it can only call a published listener (see A2A_CALLER)');
    },
    async join(ticket) {
      const { url, key } = JSON.parse(ticket) as { url: string; key: string | null };
      const p = caller(await sdkClient(url, transport), key);
      // The first message is the join: it takes the listener's seat.
      const o = await p.send(`${OPENING} [OVER]`);
      return o.ok ? { participant: p, opening: OPENING } : { refused: o.code };
    },
  };
}
