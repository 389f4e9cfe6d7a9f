/**
 * A2A JSON shapes, both versions: v1.0 (proto JSON: `ROLE_USER`, `TASK_STATE_WORKING`, parts as
 * `{text}`, results wrapped as `{task}` / `{statusUpdate}`) and v0.3 (`kind` discriminators,
 * `input-required`, `final` on status updates). The door keeps one version-neutral model
 * (tasks.ts) and renders it here.
 */
import type { Artifact, Msg, Task, TaskState } from './tasks.js';
import { isFinalForNow } from './tasks.js';

export type Version = '1.0' | '0.3';

const V1_STATE: Record<TaskState, string> = {
  working: 'TASK_STATE_WORKING',
  'input-required': 'TASK_STATE_INPUT_REQUIRED',
  completed: 'TASK_STATE_COMPLETED',
  failed: 'TASK_STATE_FAILED',
  canceled: 'TASK_STATE_CANCELED',
  rejected: 'TASK_STATE_REJECTED',
};

/** v1.0 state names (and v0.3's, as ListTasks filters may come either way) to the model's. */
export function parseState(s: unknown): TaskState | undefined {
  if (typeof s !== 'string') return undefined;
  for (const [k, v] of Object.entries(V1_STATE)) if (s === v || s === k) return k as TaskState;
  return undefined;
}

function msgJson(m: Msg, v: Version) {
  const metadata = m.notice ? { metadata: { parleyNotice: m.notice } } : m.signal ? { metadata: { parleySignal: m.signal } } : {};
  return v === '1.0'
    ? { messageId: m.messageId, contextId: m.contextId, taskId: m.taskId, role: m.role === 'user' ? 'ROLE_USER' : 'ROLE_AGENT', parts: [{ text: m.text, mediaType: 'text/plain' }], ...metadata }
    : { kind: 'message', messageId: m.messageId, contextId: m.contextId, taskId: m.taskId, role: m.role, parts: [{ kind: 'text', text: m.text }], ...metadata };
}

function artifactJson(a: Artifact, v: Version) {
  return { artifactId: a.artifactId, name: a.name, parts: [v === '1.0' ? { text: a.text, mediaType: 'text/plain' } : { kind: 'text', text: a.text }] };
}

function statusJson(t: Task, v: Version) {
  return { state: v === '1.0' ? V1_STATE[t.state] : t.state, ...(t.statusMessage ? { message: msgJson(t.statusMessage, v) } : {}), timestamp: t.timestamp };
}

/** The room as the caller's seat sees it, carried in GetTask's `metadata.parleyRoom`. */
export interface RoomView {
  inRoom: boolean;
  partner: boolean;
  paused: null | 'standby' | 'loop';
}

/** A task; `historyLength` 0 drops the history, n keeps the last n, undefined keeps all. */
export function taskJson(t: Task, v: Version, historyLength?: number, includeArtifacts = true, room?: RoomView) {
  const history = historyLength === undefined ? t.history : historyLength === 0 ? [] : t.history.slice(-historyLength);
  return {
    ...(v === '0.3' ? { kind: 'task' } : {}),
    id: t.id,
    contextId: t.contextId,
    status: statusJson(t, v),
    ...(includeArtifacts && t.artifacts.length ? { artifacts: t.artifacts.map((a) => artifactJson(a, v)) } : {}),
    ...(history.length ? { history: history.map((m) => msgJson(m, v)) } : {}),
    ...(room ? { metadata: { parleyRoom: room } } : {}),
  };
}

/** The result of a send: v1.0 wraps the task, v0.3 returns it bare. */
export function sendResult(t: Task, v: Version, historyLength?: number) {
  return v === '1.0' ? { task: taskJson(t, v, historyLength) } : taskJson(t, v, historyLength);
}

/** One streaming event. */
export function streamTask(t: Task, v: Version) {
  return sendResult(t, v);
}

export function streamStatus(t: Task, v: Version) {
  const body = { taskId: t.id, contextId: t.contextId, status: statusJson(t, v) };
  return v === '1.0' ? { statusUpdate: body } : { kind: 'status-update', ...body, final: isFinalForNow(t.state) };
}

export function streamArtifact(t: Task, a: Artifact, v: Version) {
  const body = { taskId: t.id, contextId: t.contextId, artifact: artifactJson(a, v), lastChunk: true };
  return v === '1.0' ? { artifactUpdate: body } : { kind: 'artifact-update', ...body };
}

export interface IncomingMessage {
  messageId: string;
  text: string;
  contextId?: string;
  taskId?: string;
  /** `metadata.parleyCommand`: a room action instead of a message (its text is not relayed). */
  command?: 'resume';
}

export class ParamsError extends Error {
  constructor(
    message: string,
    readonly code = -32602,
  ) {
    super(message);
  }
}

const ID = /^[\x21-\x7e]{1,128}$/;

/**
 * The caller's message, from either version's shape: text parts only (the room speaks text),
 * joined with newlines. Files and data parts are refused as unsupported content.
 */
export function parseMessage(raw: unknown): IncomingMessage {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ParamsError('params.message must be an object');
  const m = raw as Record<string, unknown>;
  if (typeof m.messageId !== 'string' || !ID.test(m.messageId)) throw new ParamsError('message.messageId must be a string of 1 to 128 visible characters');
  if (m.role !== undefined && !['ROLE_USER', 'user'].includes(m.role as string)) throw new ParamsError('message.role must be ROLE_USER (v1.0) or "user" (v0.3)');
  if (!Array.isArray(m.parts) || m.parts.length === 0) throw new ParamsError('message.parts must be a non-empty array');
  const texts: string[] = [];
  for (const p of m.parts) {
    if (typeof p !== 'object' || p === null) throw new ParamsError('each message part must be an object');
    const part = p as Record<string, unknown>;
    if (typeof part.text === 'string') texts.push(part.text);
    else throw new ParamsError('Only text parts are supported: a Parley room carries text', -32005);
  }
  const opt = (k: 'contextId' | 'taskId') => {
    const val = m[k];
    if (val === undefined || val === null || val === '') return undefined;
    if (typeof val !== 'string' || !ID.test(val)) throw new ParamsError(`message.${k} must be a string of 1 to 128 visible characters`);
    return val;
  };
  let command: IncomingMessage['command'];
  if (m.metadata !== undefined && m.metadata !== null) {
    if (typeof m.metadata !== 'object' || Array.isArray(m.metadata)) throw new ParamsError('message.metadata must be an object');
    const c = (m.metadata as Record<string, unknown>).parleyCommand;
    if (c !== undefined && c !== 'resume') throw new ParamsError('message.metadata.parleyCommand must be "resume"');
    command = c;
  }
  return { messageId: m.messageId, text: texts.join('\n'), contextId: opt('contextId'), taskId: opt('taskId'), ...(command ? { command } : {}) };
}

export interface CardInfo {
  id: string;
  name: string;
  description: string;
  skills: { id: string; name: string; description: string; tags: string[]; examples?: string[] }[];
  open: boolean;
}

const SCHEME_DESCRIPTION = 'The access key the publisher handed you, as Authorization: Bearer <key>';

/** The v1.0 card: JSON-RPC first, then HTTP+JSON, both at the agent's URL. */
export function cardV1(info: CardInfo, agentUrl: string) {
  return {
    name: info.name,
    description: info.description,
    supportedInterfaces: [
      { url: agentUrl, protocolBinding: 'JSONRPC', protocolVersion: '1.0' },
      { url: agentUrl, protocolBinding: 'HTTP+JSON', protocolVersion: '1.0' },
    ],
    provider: { organization: 'Parley', url: agentUrl.replace(/\/a2a\/[^/]+$/, '') },
    version: '1.0.0',
    capabilities: { streaming: true, pushNotifications: false, extendedAgentCard: false },
    ...(info.open
      ? {}
      : {
          securitySchemes: { accessKey: { httpAuthSecurityScheme: { scheme: 'Bearer', description: SCHEME_DESCRIPTION } } },
          securityRequirements: [{ schemes: { accessKey: { list: [] } } }],
        }),
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['text/plain'],
    skills: info.skills.map((s) => ({ ...s, inputModes: ['text/plain'], outputModes: ['text/plain'] })),
  };
}

/** The v0.3 card (agent.json), for clients that predate v1.0. */
export function cardV03(info: CardInfo, agentUrl: string) {
  return {
    protocolVersion: '0.3.0',
    name: info.name,
    description: info.description,
    url: agentUrl,
    preferredTransport: 'JSONRPC',
    additionalInterfaces: [{ url: agentUrl, transport: 'JSONRPC' }],
    provider: { organization: 'Parley', url: agentUrl.replace(/\/a2a\/[^/]+$/, '') },
    version: '1.0.0',
    capabilities: { streaming: true, pushNotifications: false },
    ...(info.open ? {} : { securitySchemes: { accessKey: { type: 'http', scheme: 'bearer', description: SCHEME_DESCRIPTION } }, security: [{ accessKey: [] }] }),
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['text/plain'],
    skills: info.skills,
  };
}
