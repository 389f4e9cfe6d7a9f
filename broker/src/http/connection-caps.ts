/**
 * Per-address caps on the HTTP broker's connections (HTTP_MAX_PER_ADDRESS, with RATE_LIMITS on),
 * so one client cannot hold every socket the process has.
 *
 * A direct client's TCP connections count per address bucket (IPv4 /24, IPv6 /64, as for the
 * rate limits); one over the cap is answered 429 and closed before a request on it is read.
 * A trusted proxy (Caddy) carries every client over its own connections, so capping those would
 * cap everyone at once: its connections are not counted, and each request it forwards counts
 * instead, while in progress, against the forwarded client's bucket (held waits and slow uploads
 * included). Both are a counter per bucket: nothing is scanned per request.
 */
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import proxyaddr from 'proxy-addr';
import { addressBucket, BucketCounts } from '../client-address.js';
import type { DoorContext } from '../doors.js';
import { REFUSALS } from '../engine/errors.js';
import { jsonText } from './status.js';

/** How long a refused connection may take to read its 429 before it is cut. */
const REFUSED_GRACE_MS = 5_000;
const RETRY_AFTER_S = 5;
const REFUSAL = jsonText({ error: `${REFUSALS.too_many_connections}: close some and retry`, code: 'too_many_connections' });

export function capConnections(server: Server, ctx: DoorContext, handle: RequestListener): RequestListener {
  const { config, metrics } = ctx;
  if (!config.rateLimits) return handle;
  const max = config.httpMaxPerAddress;
  const trusted = proxyaddr.compile(config.trustedProxies);
  const fromProxy = (address: string | undefined) => address !== undefined && trusted(address, 0);
  const sockets = new BucketCounts();
  const requests = new BucketCounts();

  // node:http attaches its parser in its own 'connection' listener: a connection over the cap
  // never reaches it, so nothing it sends is parsed or served.
  const serve = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    if (!fromProxy(socket.remoteAddress)) {
      const bucket = addressBucket(socket.remoteAddress ?? '');
      if (!sockets.take(bucket, max)) return refuseSocket(socket);
      socket.once('close', () => sockets.give(bucket));
    }
    for (const listener of serve) listener.call(server, socket);
  });

  const refuseSocket = (socket: Socket) => {
    metrics.rateLimited.inc({ limit: 'connections' });
    socket.on('error', () => socket.destroy());
    socket.resume(); // whatever it sends is discarded
    socket.end(
      `HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(REFUSAL)}\r\nretry-after: ${RETRY_AFTER_S}\r\nconnection: close\r\n\r\n${REFUSAL}`,
    );
    const cut = setTimeout(() => socket.destroy(), REFUSED_GRACE_MS).unref();
    socket.once('close', () => clearTimeout(cut));
  };

  return (req: IncomingMessage, res: ServerResponse) => {
    if (!fromProxy(req.socket.remoteAddress)) return handle(req, res);
    const bucket = ctx.bucket(req);
    if (!requests.take(bucket, max)) {
      metrics.rateLimited.inc({ limit: 'connections' });
      res.writeHead(429, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(REFUSAL), 'retry-after': String(RETRY_AFTER_S), 'cache-control': 'no-store' });
      return void res.end(REFUSAL);
    }
    res.once('close', () => requests.give(bucket));
    handle(req, res);
  };
}
