/**
 * Outbound: a participant brings an external A2A agent into its room (POST /a2a/dial). The broker
 * fetches and checks the agent's card (v1.0 or v0.3, JSON-RPC), redeems the participant's code
 * with a participant token of its own (the agent's proxy), and from then on sends each message
 * the participant says to the agent as SendMessage in one context. The agent's answer comes back
 * as the proxy's message: [OVER] when its task wants input, [STANDBY] when it completed.
 * Failures and cancels come back as the proxy's short [STANDBY] line saying so (the RoomService
 * has no way for a door to raise a broker notice), and never carry the participant's text.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { ParleyError, refuse } from '../engine/errors.js';
import type { RoomService } from '../engine/service.js';
import { DialRefused, safeFetch } from './safe-fetch.js';
import type { Version } from './wire.js';

const CARD_MAX_BYTES = 64 * 1024;
const CARD_TIMEOUT_MS = 10_000;
/** One SendMessage (blocking) may take this long; then the task is polled. */
const CALL_TIMEOUT_MS = 120_000;
const POLL_MS = 2000;
const POLL_MAX = 90;
const PUMP_WAIT_MS = 60_000;
/** Dialed agents held at once, across the broker. */
const MAX_DIALS = 256;

export interface DialedCard {
  name: string;
  endpoint: string;
  version: Version;
}

/** The JSON-RPC endpoint and protocol version a card offers, or why it is refused. */
export function readCard(raw: unknown): DialedCard {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new DialRefused('The agent card is not a JSON object');
  const c = raw as Record<string, unknown>;
  if (typeof c.name !== 'string' || c.name === '') throw new DialRefused('The agent card has no name');
  const name = c.name.slice(0, 100);
  if (Array.isArray(c.supportedInterfaces)) {
    const rpc = c.supportedInterfaces
      .filter((i): i is Record<string, unknown> => typeof i === 'object' && i !== null)
      .filter((i) => String(i.protocolBinding).toUpperCase() === 'JSONRPC' && typeof i.url === 'string');
    const v1 = rpc.find((i) => /^1(\.\d+)?$/.test(String(i.protocolVersion ?? '1.0')));
    if (v1) return { name, endpoint: v1.url as string, version: '1.0' };
    const v03 = rpc.find((i) => /^0\.3/.test(String(i.protocolVersion)));
    if (v03) return { name, endpoint: v03.url as string, version: '0.3' };
    throw new DialRefused('The agent card offers no JSON-RPC interface');
  }
  if (typeof c.url === 'string' && /^0\.3/.test(String(c.protocolVersion ?? '0.3'))) {
    const preferred = String(c.preferredTransport ?? 'JSONRPC').toUpperCase();
    if (preferred === 'JSONRPC') return { name, endpoint: c.url, version: '0.3' };
    const alt = Array.isArray(c.additionalInterfaces)
      ? (c.additionalInterfaces as Record<string, unknown>[]).find((i) => String(i?.transport).toUpperCase() === 'JSONRPC' && typeof i.url === 'string')
      : undefined;
    if (alt) return { name, endpoint: alt.url as string, version: '0.3' };
    throw new DialRefused('The agent card offers no JSON-RPC interface');
  }
  throw new DialRefused('Not an A2A agent card (neither v1.0 supportedInterfaces nor a v0.3 url)');
}

interface Dialed {
  token: string;
  card: DialedCard;
  authorization?: string;
  contextId?: string;
  /** The agent's task while it waits for input: the next message continues it. */
  taskId?: string;
  stop: AbortController;
}

/** What a task-or-message answer means for the room: text and signal, or a failure reason. */
interface Answer {
  text: string;
  signal: 'OVER' | 'STANDBY';
}

export class Dialer {
  private readonly live = new Set<Dialed>();

  constructor(
    private readonly rooms: RoomService,
    private readonly log: Logger,
    private readonly allow: string[],
  ) {}

  async dial(token: string | undefined, body: Record<string, unknown>, from?: string): Promise<{ agentId: string; agent: { name: string; protocolVersion: Version } }> {
    const status = await this.rooms.status(token);
    if (!status.inRoom || status.partner) throw refuse('bad_body', 'Dial from a room you created that nobody has joined yet (POST /setup first), passing its code');
    if (typeof body.cardUrl !== 'string') throw refuse('bad_body', 'cardUrl must be the URL of the agent card');
    if (typeof body.code !== 'string' || !/^(invite|listen)_[0-9a-f]{32}$/.test(body.code)) throw refuse('bad_body', 'code must be the invite or listener code of your room');
    if (body.key !== undefined && (typeof body.key !== 'string' || !/^[\x21-\x7e]{1,512}$/.test(body.key))) throw refuse('bad_body', 'key must be the access key the agent gave you (visible ASCII)');
    if (this.live.size >= MAX_DIALS) throw refuse('broker_full', 'The broker holds too many dialed agents right now: try again later', 60);
    const allow = this.allow;
    let card: DialedCard;
    try {
      const res = await safeFetch(body.cardUrl, { headers: { accept: 'application/json', 'a2a-version': '1.0' }, timeoutMs: CARD_TIMEOUT_MS, maxBytes: CARD_MAX_BYTES, allow });
      if (res.status !== 200) throw new DialRefused(`The agent card answered HTTP ${res.status}`);
      let json: unknown;
      try {
        json = JSON.parse(res.text);
      } catch {
        throw new DialRefused('The agent card is not JSON');
      }
      card = readCard(json);
      // The endpoint is checked now too, so a card cannot point the broker somewhere private.
      new URL(card.endpoint);
    } catch (e) {
      if (e instanceof DialRefused) throw refuse('bad_body', `Cannot dial: ${e.message}`);
      if (e instanceof TypeError) throw refuse('bad_body', 'Cannot dial: the card names an invalid endpoint URL');
      throw e;
    }
    const joined = await this.rooms.registerAndJoin(body.code, from);
    if (joined.partner !== status.agentId) {
      await this.rooms.leave(joined.token).catch(() => undefined);
      throw refuse('invalid_code', 'That code is not your room');
    }
    const d: Dialed = { token: joined.token, card, authorization: body.key ? `Bearer ${body.key}` : undefined, stop: new AbortController() };
    this.live.add(d);
    void this.pump(d);
    return { agentId: joined.agentId, agent: { name: card.name, protocolVersion: card.version } };
  }

  private async pump(d: Dialed): Promise<void> {
    try {
      while (!d.stop.signal.aborted) {
        const lease = await this.rooms.next(d.token, { timeoutMs: PUMP_WAIT_MS, signal: d.stop.signal });
        if (!lease) continue;
        const e = lease.event;
        lease.settle(true);
        if (e.kind === 'message') await this.relay(d, e.text);
        else if (e.kind === 'room_closed' || e.kind === 'partner_left' || e.kind === 'broker_restarting' || (e.kind === 'loop_alarm' && e.severed)) break;
      }
    } catch (e) {
      if (!(e instanceof ParleyError)) this.log.error({ err: { type: (e as Error).name } }, 'a2a dial relay failed');
    }
    this.live.delete(d);
    d.stop.abort();
    await this.rooms.leave(d.token).catch(() => undefined);
  }

  /** One participant message to the agent, and its answer back into the room. */
  private async relay(d: Dialed, text: string): Promise<void> {
    let answer: Answer;
    try {
      answer = await this.ask(d, text);
    } catch (e) {
      const why = e instanceof DialRefused ? e.message : 'the call failed';
      answer = { text: `(The A2A agent could not be reached: ${why}.)`, signal: 'STANDBY' };
    }
    try {
      await this.rooms.send(d.token, `${answer.text} [${answer.signal}]`);
    } catch (e) {
      if (!(e instanceof ParleyError)) throw e;
      // Refused by the room (a loop pause, the participant gone): the answer is dropped, as a send of the participant's would be.
    }
  }

  private async call(d: Dialed, method: string, params: unknown): Promise<unknown> {
    const res = await safeFetch(d.card.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', ...(d.card.version === '1.0' ? { 'a2a-version': '1.0' } : {}) },
      authorization: d.authorization,
      body: JSON.stringify({ jsonrpc: '2.0', id: randomUUID(), method, params }),
      timeoutMs: CALL_TIMEOUT_MS,
      maxBytes: 2 * 1024 * 1024,
      allow: this.allow,
    });
    let json: { result?: unknown; error?: { code?: unknown; message?: unknown } };
    try {
      json = JSON.parse(res.text);
    } catch {
      throw new DialRefused(`the agent answered HTTP ${res.status} without JSON-RPC`);
    }
    if (json.error) throw new DialRefused(`the agent refused (${String(json.error.code)}: ${String(json.error.message ?? '').slice(0, 200)})`);
    if (res.status !== 200 || json.result === undefined) throw new DialRefused(`the agent answered HTTP ${res.status}`);
    return json.result;
  }

  private async ask(d: Dialed, text: string): Promise<Answer> {
    const v = d.card.version;
    const ids = { ...(d.contextId ? { contextId: d.contextId } : {}), ...(d.taskId ? { taskId: d.taskId } : {}) };
    const message =
      v === '1.0'
        ? { messageId: randomUUID(), role: 'ROLE_USER', parts: [{ text }], ...ids }
        : { kind: 'message', messageId: randomUUID(), role: 'user', parts: [{ kind: 'text', text }], ...ids };
    const result = await this.call(d, v === '1.0' ? 'SendMessage' : 'message/send', { message, configuration: v === '1.0' ? { returnImmediately: false } : { blocking: true } });
    let task = unwrap(result, v);
    for (let i = 0; task.kind === 'task' && (task.state === 'working' || task.state === 'submitted') && i < POLL_MAX; i++) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      task = unwrap(await this.call(d, v === '1.0' ? 'GetTask' : 'tasks/get', { id: task.id }), v, true);
    }
    if (task.contextId) d.contextId = task.contextId;
    if (task.kind === 'message') return { text: task.text || '(empty answer)', signal: 'OVER' };
    d.taskId = task.state === 'input-required' || task.state === 'auth-required' ? task.id : undefined;
    switch (task.state) {
      case 'input-required':
        return { text: task.statusText || task.lastAgentText || '(the agent asks for more input)', signal: 'OVER' };
      case 'completed':
        return { text: task.artifactText || task.statusText || task.lastAgentText || '(the agent completed without an answer)', signal: 'STANDBY' };
      case 'canceled':
        return { text: '(The A2A agent canceled the task.)', signal: 'STANDBY' };
      case 'rejected':
        return { text: `(The A2A agent rejected the task${task.statusText ? `: ${task.statusText.slice(0, 500)}` : ''}.)`, signal: 'STANDBY' };
      case 'auth-required':
        return { text: '(The A2A agent asks for authentication the broker cannot give.)', signal: 'STANDBY' };
      case 'working':
      case 'submitted':
        return { text: '(The A2A agent is still working and did not answer in time.)', signal: 'STANDBY' };
      default:
        return { text: `(The A2A agent's task failed${task.statusText ? `: ${task.statusText.slice(0, 500)}` : ''}.)`, signal: 'STANDBY' };
    }
  }

  close(): void {
    for (const d of this.live) d.stop.abort();
  }
}

type Unwrapped =
  | { kind: 'message'; text: string; contextId?: string }
  | { kind: 'task'; id: string; contextId?: string; state: string; statusText: string; artifactText: string; lastAgentText: string };

const partsText = (parts: unknown): string =>
  Array.isArray(parts)
    ? parts
        .map((p) => (typeof p === 'object' && p !== null && typeof (p as { text?: unknown }).text === 'string' ? (p as { text: string }).text : ''))
        .filter(Boolean)
        .join('\n')
    : '';

/** A SendMessage / GetTask result of either version, reduced to what the room needs. */
function unwrap(result: unknown, v: Version, bareTask = false): Unwrapped {
  if (typeof result !== 'object' || result === null) throw new DialRefused('the agent answered with an empty result');
  const r = result as Record<string, any>;
  const msg = v === '1.0' && !bareTask ? r.message : r.kind === 'message' ? r : undefined;
  if (msg) return { kind: 'message', text: partsText(msg.parts), contextId: typeof msg.contextId === 'string' ? msg.contextId : undefined };
  const t = v === '1.0' && !bareTask ? r.task : r;
  if (!t || typeof t.id !== 'string' || typeof t.status !== 'object') throw new DialRefused('the agent answered with neither a task nor a message');
  const state = String(t.status.state ?? '').replace(/^TASK_STATE_/, '').toLowerCase().replace(/_/g, '-');
  const history = Array.isArray(t.history) ? t.history : [];
  const lastAgent = [...history].reverse().find((m: any) => m?.role === 'agent' || m?.role === 'ROLE_AGENT');
  return {
    kind: 'task',
    id: t.id,
    contextId: typeof t.contextId === 'string' ? t.contextId : undefined,
    state,
    statusText: partsText(t.status.message?.parts),
    artifactText: (Array.isArray(t.artifacts) ? t.artifacts : []).map((a: any) => partsText(a?.parts)).filter(Boolean).join('\n'),
    lastAgentText: lastAgent ? partsText(lastAgent.parts) : '',
  };
}
