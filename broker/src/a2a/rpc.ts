/**
 * The JSON-RPC binding of a published agent (POST /a2a/<id>). Routed by method name: the v1.0
 * names (SendMessage, …) answer in v1.0 shapes, the v0.3 names (message/send, …) in v0.3 shapes.
 * An A2A-Version header is honoured: a version other than 1.x or 0.3 is refused (-32009), and a
 * method from the other version than the one named is not found. Errors follow the spec's codes,
 * always as HTTP 200 with a JSON-RPC error body, except a missing access key (401).
 */
import type { ServerResponse } from 'node:http';
import { A2aError, errors, openSse, type Operations } from './operations.js';
import type { Publication } from './publications.js';
import type { Version } from './wire.js';

type Handler = (ops: Operations, p: Publication, params: unknown, v: Version, ctx: { res: ServerResponse; signal: AbortSignal; id: RpcId }) => Promise<unknown> | unknown;
type RpcId = string | number | null;

/** `undefined` as a result means the handler answered itself (a stream). */
const STREAMED = Symbol('streamed');

const sse = (ctx: { res: ServerResponse; id: RpcId }) => () => openSse(ctx.res, (result) => ({ jsonrpc: '2.0', id: ctx.id, result }));

const V1: Record<string, Handler> = {
  SendMessage: (ops, p, params, v, ctx) => ops.sendMessage(p, params, v, ctx.signal),
  SendStreamingMessage: async (ops, p, params, v, ctx) => (await ops.streamMessage(p, params, v, sse(ctx)), STREAMED),
  GetTask: (ops, p, params, v) => ops.getTask(p, params, v),
  ListTasks: (ops, p, params) => ops.listTasks(p, params),
  CancelTask: (ops, p, params, v) => ops.cancelTask(p, params, v),
  SubscribeToTask: (ops, p, params, v, ctx) => (ops.subscribe(p, params, v, sse(ctx)), STREAMED),
  GetExtendedAgentCard: () => {
    throw errors.noExtendedCard();
  },
  CreateTaskPushNotificationConfig: push,
  GetTaskPushNotificationConfig: push,
  ListTaskPushNotificationConfigs: push,
  DeleteTaskPushNotificationConfig: push,
};

const V03: Record<string, Handler> = {
  'message/send': V1.SendMessage,
  'message/stream': V1.SendStreamingMessage,
  'tasks/get': V1.GetTask,
  'tasks/cancel': V1.CancelTask,
  'tasks/resubscribe': V1.SubscribeToTask,
  'tasks/pushNotificationConfig/set': push,
  'tasks/pushNotificationConfig/get': push,
  'tasks/pushNotificationConfig/list': push,
  'tasks/pushNotificationConfig/delete': push,
  'agent/getAuthenticatedExtendedCard': V1.GetExtendedAgentCard,
};

function push(): never {
  throw errors.pushUnsupported();
}

/** The version an A2A-Version header names: absent means "route by method name alone". */
export function requestedVersion(header: string | string[] | undefined): Version | undefined {
  const raw = (Array.isArray(header) ? header[0] : header)?.trim();
  if (!raw) return undefined;
  if (/^1(\.\d+)?$/.test(raw)) return '1.0';
  if (/^0\.3(\.\d+)?$/.test(raw)) return '0.3';
  throw errors.version(raw);
}

function rpcError(res: ServerResponse, id: RpcId, e: A2aError, status = 200): void {
  const body = JSON.stringify({ jsonrpc: '2.0', id, error: { code: e.rpc, message: e.message } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store' });
  res.end(body);
}

/** One JSON-RPC request, already authenticated against the publication. */
export async function handleRpc(ops: Operations, p: Publication, text: string, versionHeader: string | string[] | undefined, res: ServerResponse): Promise<void> {
  let id: RpcId = null;
  try {
    let req: unknown;
    try {
      req = JSON.parse(text);
    } catch {
      throw errors.parse('Body must be a JSON-RPC 2.0 request');
    }
    if (Array.isArray(req)) throw errors.invalidRequest('Batch requests are not supported: send one request per call');
    if (typeof req !== 'object' || req === null) throw errors.invalidRequest('Body must be a JSON-RPC 2.0 request object');
    const r = req as Record<string, unknown>;
    if (typeof r.id === 'string' || typeof r.id === 'number') id = r.id;
    if (r.jsonrpc !== '2.0') throw errors.invalidRequest('jsonrpc must be "2.0"');
    if (typeof r.method !== 'string') throw errors.invalidRequest('method must be a string');
    if (id === null) throw errors.invalidRequest('id must be a string or a number (notifications are not supported)');
    const asked = requestedVersion(versionHeader);
    const v: Version | undefined = r.method in V1 ? '1.0' : r.method in V03 ? '0.3' : undefined;
    if (!v) throw errors.methodNotFound(`Method "${r.method.slice(0, 60)}" not found`);
    if (asked && asked !== v) throw errors.methodNotFound(`Method "${r.method}" is not an A2A ${asked} method`);
    const handler = (v === '1.0' ? V1 : V03)[r.method];
    const gone = new AbortController();
    res.once('close', () => gone.abort());
    const result = await handler(ops, p, r.params, v, { res, signal: gone.signal, id });
    if (result === STREAMED || res.headersSent) return;
    const body = JSON.stringify({ jsonrpc: '2.0', id, result });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store' });
    res.end(body);
  } catch (e) {
    if (!(e instanceof A2aError)) throw e;
    if (res.headersSent) return void res.end();
    rpcError(res, id, e);
  }
}

/** Unauthenticated: HTTP 401 with a JSON-RPC body, so JSON-RPC clients can still read why. */
export function rpcUnauthorized(res: ServerResponse): void {
  const body = JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Missing or wrong access key: send Authorization: Bearer <the key the publisher gave you>' } });
  res.writeHead(401, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'www-authenticate': 'Bearer' });
  res.end(body);
}
