/**
 * The A2A operations of a published agent, once, for both bindings (JSON-RPC in rpc.ts, HTTP+JSON
 * in rest.ts) and both protocol versions: each takes decoded params and returns a result body or
 * streams events through an `Sse` sink. Refusals are `A2aError`s with the spec's codes.
 */
import type { ServerResponse } from 'node:http';
import { ContextMismatch, NotCancelable, TaskNotFound, TaskTerminal, type Publication, type Publications } from './publications.js';
import { isFinalForNow, isTerminal, settled, type Task, type TaskUpdate } from './tasks.js';
import { ParamsError, parseMessage, parseState, sendResult, streamArtifact, streamStatus, streamTask, taskJson, type Version } from './wire.js';

/** SSE comment lines keep proxies from closing a quiet stream. */
const KEEPALIVE_MS = 15_000;

export class A2aError extends Error {
  constructor(
    readonly rpc: number,
    readonly reason: string,
    readonly http: number,
    message: string,
  ) {
    super(message);
  }
}

export const errors = {
  parse: (m = 'Invalid JSON') => new A2aError(-32700, 'INVALID_PARAMS', 400, m),
  invalidRequest: (m: string) => new A2aError(-32600, 'INVALID_REQUEST', 400, m),
  methodNotFound: (m: string) => new A2aError(-32601, 'METHOD_NOT_FOUND', 404, m),
  invalidParams: (m: string) => new A2aError(-32602, 'INVALID_PARAMS', 400, m),
  taskNotFound: () => new A2aError(-32001, 'TASK_NOT_FOUND', 404, 'Task not found'),
  notCancelable: () => new A2aError(-32002, 'TASK_NOT_CANCELABLE', 409, 'Task cannot be canceled: it is already in a terminal state'),
  pushUnsupported: () => new A2aError(-32003, 'PUSH_NOTIFICATION_NOT_SUPPORTED', 400, 'Push notifications are not supported: stream or poll instead'),
  unsupported: (m: string) => new A2aError(-32004, 'UNSUPPORTED_OPERATION', 400, m),
  contentType: (m: string) => new A2aError(-32005, 'CONTENT_TYPE_NOT_SUPPORTED', 415, m),
  noExtendedCard: () => new A2aError(-32007, 'EXTENDED_AGENT_CARD_NOT_CONFIGURED', 400, 'This agent has no extended card'),
  version: (v: string) => new A2aError(-32009, 'VERSION_NOT_SUPPORTED', 400, `A2A-Version "${v.slice(0, 20)}" is not supported: use 1.0 or 0.3`),
};

/** A server-sent event stream; the binding decides how each body is wrapped. */
export interface Sse {
  send(body: unknown): void;
  end(): void;
  closed: AbortSignal;
}

export function openSse(res: ServerResponse, wrap: (body: unknown) => unknown): Sse {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.flushHeaders();
  const gone = new AbortController();
  const keepalive = setInterval(() => res.write(': keep-alive\n\n'), KEEPALIVE_MS);
  const stop = () => {
    clearInterval(keepalive);
    gone.abort();
  };
  res.once('close', stop);
  return {
    send: (body) => {
      if (!res.writableEnded) res.write(`data: ${JSON.stringify(wrap(body))}\n\n`);
    },
    end: () => {
      stop();
      if (!res.writableEnded) res.end();
    },
    closed: gone.signal,
  };
}

const obj = (params: unknown): Record<string, unknown> => {
  if (params === undefined) return {};
  if (typeof params !== 'object' || params === null || Array.isArray(params)) throw errors.invalidParams('params must be an object');
  return params as Record<string, unknown>;
};

function historyLength(raw: unknown): number | undefined {
  if (raw === undefined || raw === null) return undefined;
  const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw errors.invalidParams('historyLength must be a whole number from 0');
  return n;
}

export class Operations {
  /**
   * `blockMs`: a blocking send answers within this (WAIT_TIMEOUT_S, like a /wait: under the
   * proxy's 180 s and Node fetch's 300 s response-header limits); a task still working then is
   * returned as it stands, and the caller polls GetTask or subscribes.
   */
  constructor(
    private readonly pubs: Publications,
    private readonly blockMs: number,
  ) {}

  private async send(p: Publication, params: unknown): Promise<{ task: Task; config: Record<string, unknown> }> {
    const body = obj(params);
    let m;
    try {
      m = parseMessage(body.message);
    } catch (e) {
      if (e instanceof ParamsError) throw e.code === -32005 ? errors.contentType(e.message) : errors.invalidParams(e.message);
      throw e;
    }
    const config = body.configuration === undefined ? {} : obj(body.configuration);
    try {
      return { task: await this.pubs.send(p, m), config };
    } catch (e) {
      if (e instanceof TaskNotFound) throw errors.taskNotFound();
      if (e instanceof ContextMismatch) throw errors.invalidParams('message.contextId does not match the task named by message.taskId');
      if (e instanceof TaskTerminal) throw errors.unsupported('That task is in a terminal state and takes no more messages: send without taskId to start a new one');
      throw e;
    }
  }

  /** SendMessage / message/send: blocking unless returnImmediately (v1.0) or blocking:false (v0.3). */
  async sendMessage(p: Publication, params: unknown, v: Version, signal: AbortSignal) {
    const { task, config } = await this.send(p, params);
    const hl = historyLength(config.historyLength);
    const immediate = v === '1.0' ? config.returnImmediately === true : config.blocking === false;
    if (!immediate) await settled(task, this.blockMs, signal);
    return sendResult(task, v, hl);
  }

  /** SendStreamingMessage / message/stream: the task, then its updates until it is final for now. */
  async streamMessage(p: Publication, params: unknown, v: Version, open: () => Sse): Promise<void> {
    const { task } = await this.send(p, params);
    this.follow(task, v, open());
  }

  private follow(task: Task, v: Version, sse: Sse): void {
    sse.send(streamTask(task, v));
    if (isFinalForNow(task.state)) return sse.end();
    const onUpdate = (u: TaskUpdate) => {
      if (u.kind === 'artifact') return sse.send(streamArtifact(task, u.artifact, v));
      sse.send(streamStatus(task, v));
      if (isFinalForNow(task.state)) done();
    };
    const done = () => {
      task.listeners.delete(onUpdate);
      sse.end();
    };
    task.listeners.add(onUpdate);
    sse.closed.addEventListener('abort', () => task.listeners.delete(onUpdate), { once: true });
  }

  private task(p: Publication, id: unknown): Task {
    if (typeof id !== 'string' || id === '') throw errors.invalidParams('id must be a task id');
    const t = this.pubs.task(p, id);
    if (!t) throw errors.taskNotFound();
    return t;
  }

  /** GetTask / tasks/get, with the room as the caller's seat sees it in `metadata.parleyRoom`. */
  async getTask(p: Publication, params: unknown, v: Version) {
    const body = obj(params);
    const t = this.task(p, body.id);
    const hl = historyLength(body.historyLength);
    return taskJson(t, v, hl, true, await this.pubs.roomView(p, t));
  }

  /**
   * ListTasks (v1.0 only): newest first, paged by an opaque offset token. Callers of one agent
   * share its key, so tasks are listed only for a contextId the caller names (its own).
   */
  listTasks(p: Publication, params: unknown) {
    const body = obj(params);
    if (typeof body.contextId !== 'string' || body.contextId === '') throw errors.invalidParams('contextId is required: list the tasks of your own context');
    const size = body.pageSize === undefined ? 50 : Number(body.pageSize);
    if (!Number.isInteger(size) || size < 1 || size > 100) throw errors.invalidParams('pageSize must be 1 to 100');
    const offset = body.pageToken === undefined || body.pageToken === '' ? 0 : Number(body.pageToken);
    if (!Number.isInteger(offset) || offset < 0) throw errors.invalidParams('pageToken must come from a previous ListTasks answer');
    const state = body.status === undefined || body.status === 'TASK_STATE_UNSPECIFIED' ? undefined : parseState(body.status);
    if (body.status !== undefined && body.status !== 'TASK_STATE_UNSPECIFIED' && !state) throw errors.invalidParams('status must be a task state such as TASK_STATE_COMPLETED');
    const after = body.statusTimestampAfter === undefined ? undefined : Date.parse(String(body.statusTimestampAfter));
    if (after !== undefined && Number.isNaN(after)) throw errors.invalidParams('statusTimestampAfter must be an ISO 8601 timestamp');
    const hl = historyLength(body.historyLength);
    const includeArtifacts = body.includeArtifacts === true || body.includeArtifacts === 'true';
    const all = [...p.tasks.values()]
      .filter((t) => t.contextId === body.contextId && (state ? t.state === state : true) && (after === undefined || Date.parse(t.timestamp) > after))
      .sort((a, b) => b.updatedMs - a.updatedMs);
    const page = all.slice(offset, offset + size);
    return {
      tasks: page.map((t) => taskJson(t, '1.0', hl, includeArtifacts)),
      nextPageToken: offset + size < all.length ? String(offset + size) : '',
      pageSize: size,
      totalSize: all.length,
    };
  }

  async cancelTask(p: Publication, params: unknown, v: Version) {
    const t = this.task(p, obj(params).id);
    try {
      return taskJson(await this.pubs.cancel(p, t), v);
    } catch (e) {
      if (e instanceof NotCancelable) throw errors.notCancelable();
      throw e;
    }
  }

  /** SubscribeToTask / tasks/resubscribe: the task as it stands, then its updates. */
  subscribe(p: Publication, params: unknown, v: Version, open: () => Sse): void {
    const t = this.task(p, obj(params).id);
    if (isTerminal(t.state)) throw errors.unsupported('That task is in a terminal state: read it with GetTask');
    this.follow(t, v, open());
  }
}
