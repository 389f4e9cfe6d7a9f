/** The operations door: liveness, readiness and Prometheus counts. Exempt from rate limits; answers no room question. */
import type { Door, DoorContext } from '../doors.js';
import { jsonText } from './status.js';

const PATHS = new Set(['/health', '/ready', '/metrics']);

export function opsDoor(ctx: DoorContext, ready: () => Promise<boolean>): Door {
  const { metrics } = ctx;
  return {
    name: 'ops',
    claims: (path) => PATHS.has(path),
    async handle(req, res) {
      const path = (req.url ?? '').split('?')[0];
      let status = 200;
      let type = 'application/json';
      let body: string;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        status = 405;
        res.setHeader('allow', 'GET, HEAD');
        body = jsonText({ error: 'Method not allowed', code: 'method_not_allowed' });
      } else if (path === '/health') {
        body = jsonText({ ok: true });
      } else if (path === '/ready') {
        const ok = !ctx.rooms.draining && (await ready().catch(() => false));
        status = ok ? 200 : 503;
        body = jsonText({ ready: ok });
      } else {
        type = metrics.registry.contentType;
        body = await metrics.registry.metrics();
      }
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
      metrics.response(path, status);
    },
  };
}
