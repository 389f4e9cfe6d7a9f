/**
 * A2A task state for the inbound door, in memory only. Version-neutral: wire.ts renders it as
 * v1.0 or v0.3 JSON. Nothing here is ever logged or stored elsewhere; a task lives as long as its
 * conversation plus a grace period, and every list is capped.
 */
import { randomUUID } from 'node:crypto';

export type TaskState = 'working' | 'input-required' | 'completed' | 'failed' | 'canceled' | 'rejected';

/** One message of a task's history. `notice` marks a broker notice (never partner text). */
export interface Msg {
  messageId: string;
  role: 'user' | 'agent';
  text: string;
  contextId: string;
  taskId: string;
  notice?: string;
  /** The listener's walkie-talkie signal, for its messages. */
  signal?: 'OVER' | 'STANDBY';
}

export interface Artifact {
  artifactId: string;
  name: string;
  text: string;
}

export type TaskUpdate = { kind: 'status' } | { kind: 'artifact'; artifact: Artifact };

export interface Task {
  id: string;
  contextId: string;
  state: TaskState;
  statusMessage?: Msg;
  timestamp: string;
  history: Msg[];
  artifacts: Artifact[];
  /** When the task last changed (ms), for ListTasks order and purging. */
  updatedMs: number;
  listeners: Set<(u: TaskUpdate) => void>;
}

/** At most this many messages per task's history (oldest dropped) and tasks per publication. */
export const MAX_HISTORY = 200;
export const MAX_TASKS = 200;

/** Characters of message text a task holds (history and artifacts), for the byte budget. */
export function textSize(t: Task): number {
  let n = 0;
  for (const m of t.history) n += m.text.length;
  for (const a of t.artifacts) n += a.text.length;
  return n;
}

const TERMINAL: ReadonlySet<TaskState> = new Set(['completed', 'failed', 'canceled', 'rejected']);

export const isTerminal = (s: TaskState) => TERMINAL.has(s);
/** Terminal or waiting on the caller: where a blocking send returns and a stream ends. */
export const isFinalForNow = (s: TaskState) => TERMINAL.has(s) || s === 'input-required';

export function newTask(contextId: string, state: TaskState): Task {
  return { id: randomUUID(), contextId, state, timestamp: new Date().toISOString(), history: [], artifacts: [], updatedMs: Date.now(), listeners: new Set() };
}

export function message(role: Msg['role'], text: string, task: Pick<Task, 'id' | 'contextId'>, notice?: string, messageId: string = randomUUID()): Msg {
  return { messageId, role, text, contextId: task.contextId, taskId: task.id, ...(notice ? { notice } : {}) };
}

export function addHistory(task: Task, m: Msg): void {
  task.history.push({ ...m, taskId: task.id, contextId: task.contextId });
  if (task.history.length > MAX_HISTORY) task.history.splice(0, task.history.length - MAX_HISTORY);
}

/** Moves a task to a state and tells whoever is streaming or blocking on it. */
export function setState(task: Task, state: TaskState, statusMessage?: Msg): void {
  task.state = state;
  task.statusMessage = statusMessage;
  task.timestamp = new Date().toISOString();
  task.updatedMs = Date.now();
  for (const l of [...task.listeners]) l({ kind: 'status' });
}

export function addArtifact(task: Task, text: string): void {
  const artifact = { artifactId: randomUUID(), name: 'reply', text };
  task.artifacts.push(artifact);
  task.updatedMs = Date.now();
  for (const l of [...task.listeners]) l({ kind: 'artifact', artifact });
}

/**
 * Resolves once the task is terminal or waiting on the caller, or when `maxMs` passes or the
 * signal aborts (the task is then returned as it stands).
 */
export function settled(task: Task, maxMs: number, signal?: AbortSignal): Promise<void> {
  if (isFinalForNow(task.state)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      task.listeners.delete(onUpdate);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const onUpdate = () => {
      if (isFinalForNow(task.state)) done();
    };
    const timer = setTimeout(done, maxMs);
    task.listeners.add(onUpdate);
    signal?.addEventListener('abort', done, { once: true });
  });
}
