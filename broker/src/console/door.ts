/**
 * The console door: serves the web console (built from broker/console/ into broker/console/dist/)
 * at /console, same origin as the API the page calls. Every answer carries a strict
 * Content-Security-Policy: only this origin's script and style, no inline script, no framing, so
 * partner text can never run even if it slipped into markup.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Door, DoorContext } from '../doors.js';
import { jsonText } from '../http/status.js';

/** The same from broker/src/console/ (tests) and broker/dist/console/ (npm start, the image). */
const PAGE_DIR = fileURLToPath(new URL('../../console/dist/', import.meta.url));

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=()',
};

const FILES: Record<string, { file: string; type: string }> = {
  '/console': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/console/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
  '/console/icon.svg': { file: 'icon.svg', type: 'image/svg+xml' },
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

export function consoleDoor(ctx: DoorContext, dir = PAGE_DIR): Door {
  const { metrics, log } = ctx;
  // Read once, on first use: the files are small and never change while the broker runs.
  const cache = new Map<string, Asset | null>();
  const asset = (path: string): Asset | null => {
    if (!cache.has(path)) {
      const f = FILES[path];
      let a: Asset | null = null;
      try {
        const body = readFileSync(dir + f.file);
        a = { body, type: f.type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
      } catch {
        log.warn({ file: f.file }, 'console page not built: run npm run build');
      }
      cache.set(path, a);
    }
    return cache.get(path)!;
  };

  const reply = (res: ServerResponse, status: number, headers: Record<string, string>, body?: Buffer | string) => {
    res.writeHead(status, { ...SECURITY_HEADERS, ...headers });
    res.end(body);
    metrics.response('/console', status);
  };
  const refuse = (res: ServerResponse, status: number, error: string, code: string, headers: Record<string, string> = {}) => {
    const body = jsonText({ error, code });
    reply(res, status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store', ...headers }, body);
  };

  return {
    name: 'console',
    claims: (path) => path === '/console' || path.startsWith('/console/'),
    handle(req: IncomingMessage, res: ServerResponse) {
      const path = (req.url ?? '').split('?')[0];
      if (!Object.hasOwn(FILES, path)) return refuse(res, 404, 'Not found', 'not_found');
      if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, 'Method not allowed', 'method_not_allowed', { allow: 'GET, HEAD' });
      const a = asset(path);
      if (!a) return refuse(res, 404, 'The console is not built on this broker (npm run build)', 'not_found');
      const headers = { 'content-type': a.type, etag: a.etag, 'cache-control': 'no-cache' };
      if (req.headers['if-none-match'] === a.etag) return reply(res, 304, headers);
      reply(res, 200, { ...headers, 'content-length': String(a.body.length) }, req.method === 'HEAD' ? undefined : a.body);
    },
  };
}
