/**
 * The HTTP+JSON binding of a published agent, under /a2a/<id>/: the v1.0 REST paths
 * (message:send, message:stream, tasks/<id>, tasks/<id>:cancel, tasks/<id>:subscribe, tasks),
 * over the same operations as JSON-RPC. Errors are google.rpc.Status bodies with an ErrorInfo
 * reason, which is what v1.0 clients read.
 */
import type { ServerResponse } from 'node:http';
import { A2aError, errors, openSse, type Operations } from './operations.js';
import type { Publication } from './publications.js';
import { requestedVersion } from './rpc.js';

const STATUS_NAME: Record<number, string> = { 400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 404: 'NOT_FOUND', 405: 'INVALID_ARGUMENT', 409: 'FAILED_PRECONDITION', 415: 'INVALID_ARGUMENT' };

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), 'cache-control': 'no-store' });
  res.end(text);
}

function restError(res: ServerResponse, e: A2aError): void {
  const status = e.rpc === -32002 || e.rpc === -32004 || e.rpc === -32003 ? 400 : e.http;
  send(res, status, { error: { code: status, status: STATUS_NAME[status] ?? 'INVALID_ARGUMENT', message: e.message, details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: e.reason, domain: 'a2a-protocol.org' }] } });
}

export function restUnauthorized(res: ServerResponse): void {
  res.setHeader('www-authenticate', 'Bearer');
  send(res, 401, { error: { code: 401, status: 'UNAUTHENTICATED', message: 'Missing or wrong access key: send Authorization: Bearer <the key the publisher gave you>' } });
}

const TASK = /^\/tasks\/([^/:]+)(:cancel|:subscribe)?$/;

export async function handleRest(
  ops: Operations,
  p: Publication,
  method: string,
  path: string,
  query: URLSearchParams,
  text: string,
  versionHeader: string | string[] | undefined,
  res: ServerResponse,
): Promise<void> {
  try {
    if (requestedVersion(versionHeader) === '0.3') throw errors.version('0.3');
    const json = (): unknown => {
      if (text.trim() === '') return {};
      try {
        return JSON.parse(text);
      } catch {
        throw errors.parse('Body must be JSON');
      }
    };
    const gone = new AbortController();
    res.once('close', () => gone.abort());
    const sse = () => openSse(res, (body) => body);
    const q = Object.fromEntries(query);
    const allow = (m: string) => {
      if (method !== m) throw errors.methodNotFound(`Use ${m} for ${path}`);
    };
    if (path === '/message:send') return allow('POST'), send(res, 200, await ops.sendMessage(p, json(), '1.0', gone.signal));
    if (path === '/message:stream') return allow('POST'), await ops.streamMessage(p, json(), '1.0', sse);
    if (path === '/tasks') return allow('GET'), send(res, 200, ops.listTasks(p, q));
    if (path === '/extendedAgentCard') throw errors.noExtendedCard();
    if (/^\/tasks\/[^/]+\/pushNotificationConfigs/.test(path)) throw errors.pushUnsupported();
    const t = TASK.exec(path);
    if (t) {
      const id = decodeURIComponent(t[1]);
      if (!t[2]) return allow('GET'), send(res, 200, await ops.getTask(p, { id, historyLength: q.historyLength }, '1.0'));
      if (t[2] === ':cancel') return allow('POST'), send(res, 200, await ops.cancelTask(p, { id }, '1.0'));
      if (method !== 'POST' && method !== 'GET') throw errors.methodNotFound('Use POST for :subscribe');
      return ops.subscribe(p, { id }, '1.0', sse);
    }
    throw errors.methodNotFound(`No such A2A route: ${path.slice(0, 60)}`);
  } catch (e) {
    if (!(e instanceof A2aError)) throw e;
    if (res.headersSent) return void res.end();
    restError(res, e);
  }
}
