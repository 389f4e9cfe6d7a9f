/**
 * The "null relay": the least a long-poll relay can do with Parley's request shapes, as the
 * benchmark's yardstick. A bare node:http server that pairs two bearer tokens, forwards POST
 * /send bodies into the partner's queue or pending GET /wait, and forgets a side on POST /leave;
 * no framing, no store, no limits, no loop detection. Each held wait has its own timeout timer,
 * as any long-poll needs.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

interface Side {
  partner: Side | null;
  queue: string[];
  waiter: { res: ServerResponse; timer: NodeJS.Timeout } | null;
}

const MAX_WAIT_S = 300; // as the bench sets WAIT_TIMEOUT_S for Parley: idle polls outlast the idle phase

export function createNullRelay(): Server {
  const sides = new Map<string, Side>();
  const invites = new Map<string, Side>();
  const newToken = () => `tok_${randomBytes(16).toString('hex')}`;

  const reply = (res: ServerResponse, status: number, body: string, type = 'application/json') => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const sideOf = (req: IncomingMessage) => sides.get((req.headers.authorization ?? '').slice(7));
  const deliver = (to: Side, body: string) => {
    const w = to.waiter;
    if (!w) return void to.queue.push(body);
    to.waiter = null;
    clearTimeout(w.timer);
    reply(w.res, 200, body, 'text/plain');
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = req.url ?? '/';
      const path = url.split('?', 1)[0];
      if (req.method === 'POST' && path === '/setup') {
        const token = newToken();
        const code = `invite_${randomBytes(16).toString('hex')}`;
        const side: Side = { partner: null, queue: [], waiter: null };
        sides.set(token, side);
        invites.set(code, side);
        return reply(res, 200, JSON.stringify({ token, code, role: 'host' }));
      }
      if (req.method === 'POST' && path.startsWith('/register-and-join/')) {
        const code = path.slice('/register-and-join/'.length);
        const host = invites.get(code);
        if (!host) return reply(res, 404, '{"error":"Invalid or expired code","code":"invalid_code"}');
        invites.delete(code);
        const token = newToken();
        const side: Side = { partner: host, queue: [], waiter: null };
        host.partner = side;
        sides.set(token, side);
        // Parley tells the host its partner arrived; the yardstick does the same so clients are shared.
        deliver(host, 'MESSAGE_RECEIVED\n[SYSTEM]: joined');
        return reply(res, 200, JSON.stringify({ token, role: 'joiner', headless: false, rules: '', status: '(2/2 connected)' }));
      }
      const me = sideOf(req);
      if (!me) return reply(res, 401, '{"error":"Invalid or expired token","code":"unauthorized"}');
      if (req.method === 'POST' && path === '/send') {
        if (!me.partner) return reply(res, 503, '{"error":"Partner not connected","code":"partner_not_connected"}');
        deliver(me.partner, Buffer.concat(chunks).toString());
        return reply(res, 200, 'DELIVERED', 'text/plain');
      }
      if (req.method === 'POST' && path === '/leave') {
        // As Parley's: the side is gone, its held wait is answered, its partner is left alone.
        sides.delete((req.headers.authorization ?? '').slice(7));
        if (me.partner) me.partner.partner = null;
        if (me.waiter) deliver(me, 'left');
        return reply(res, 200, '{"status":"left"}');
      }
      if (req.method === 'GET' && path === '/wait') {
        if (me.waiter) return reply(res, 409, '{"error":"Wait already pending","code":"wait_pending"}');
        const head = me.queue.shift();
        if (head !== undefined) return reply(res, 200, head, 'text/plain');
        const s = Math.min(Number(new URL(url, 'http://x').searchParams.get('timeout') ?? MAX_WAIT_S) || MAX_WAIT_S, MAX_WAIT_S);
        const timer = setTimeout(() => {
          me.waiter = null;
          reply(res, 200, `TIMEOUT: No event received within ${s}s`, 'text/plain');
        }, s * 1000);
        me.waiter = { res, timer };
        // A client that goes away leaves no waiter behind.
        res.once('close', () => {
          if (me.waiter?.res !== res) return;
          clearTimeout(timer);
          me.waiter = null;
        });
        return;
      }
      reply(res, 404, '{"error":"Not found","code":"not_found"}');
    });
  });
  // Same keep-alive settings as the broker, so neither side pays for reconnects the other avoids.
  server.keepAliveTimeout = 75_000;
  server.headersTimeout = 80_000;
  return server;
}
