/**
 * Outbound HTTP for dialing A2A agents, hardened against SSRF: only http(s); the address every
 * connection goes to is checked after DNS resolution (and pinned for that connection, so a
 * rebinding DNS answer cannot swap it), on every redirect hop; loopback, private, link-local
 * (cloud metadata at 169.254.169.254), carrier-grade NAT, multicast and reserved ranges are
 * refused unless listed in A2A_DIAL_ALLOW. Timeouts and a size cap on every answer; no
 * credentials but the one header the caller passes, and that one never crosses to another origin.
 */
import { lookup as dnsLookup } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

export class DialRefused extends Error {}

export interface SafeFetchOptions {
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  /** Sent only to the origin of the first URL: dropped on a redirect elsewhere. */
  authorization?: string;
  body?: string;
  timeoutMs: number;
  maxBytes: number;
  /** CIDRs / addresses dialing may reach even though they are not public (A2A_DIAL_ALLOW). */
  allow: string[];
  maxRedirects?: number;
}

export interface SafeResponse {
  status: number;
  url: string;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** Whether an address may be dialed: public unicast, or listed in the allow list. */
export function addressAllowed(address: string, allow: string[]): boolean {
  let ip: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    ip = ipaddr.parse(address);
  } catch {
    return false;
  }
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) ip = (ip as ipaddr.IPv6).toIPv4Address();
  for (const entry of allow) {
    try {
      const [range, bits] = entry.includes('/') ? ipaddr.parseCIDR(entry) : [ipaddr.parse(entry), entry.includes(':') ? 128 : 32];
      if (range.kind() === ip.kind() && ip.match(range as never, bits)) return true;
    } catch {
      // validated at start; an entry that does not parse allows nothing
    }
  }
  return ip.range() === 'unicast';
}

/** A DNS lookup that refuses a name resolving to any address outside the allowed ranges. */
function guardedLookup(allow: string[]): LookupFunction {
  return ((hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    dnsLookup(hostname, { all: true }, (err, addresses) => {
      if (err) return callback(err);
      const refused = addresses.find((a) => !addressAllowed(a.address, allow));
      if (refused || addresses.length === 0) return callback(new DialRefused(`${hostname} resolves to an address the broker does not dial (private, loopback, link-local or reserved)`));
      if (options.all) return callback(null, addresses);
      callback(null, addresses[0].address, addresses[0].family);
    });
  }) as LookupFunction;
}

function checkUrl(raw: string, allow: string[]): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new DialRefused('Not a valid URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new DialRefused('Only http and https URLs are dialed');
  if (url.username || url.password) throw new DialRefused('URLs with credentials are not dialed');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  // An IP literal is connected to without a lookup, so it is checked here.
  if (ipaddr.isValid(host) && !addressAllowed(host, allow)) throw new DialRefused(`${host} is an address the broker does not dial (private, loopback, link-local or reserved)`);
  return url;
}

/** One request, following up to `maxRedirects` redirects, each hop re-checked. */
export async function safeFetch(raw: string, opts: SafeFetchOptions): Promise<SafeResponse> {
  let url = checkUrl(raw, opts.allow);
  const origin = url.origin;
  const deadline = Date.now() + opts.timeoutMs;
  let method = opts.method ?? 'GET';
  let body = opts.body;
  for (let hop = 0; ; hop++) {
    const res = await once(url, method, body, { ...opts.headers, ...(opts.authorization && url.origin === origin ? { authorization: opts.authorization } : {}) }, deadline, opts);
    if ([301, 302, 303, 307, 308].includes(res.status) && res.headers.location) {
      if (hop >= (opts.maxRedirects ?? 3)) throw new DialRefused('Too many redirects');
      url = checkUrl(new URL(res.headers.location, url).toString(), opts.allow);
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
        method = 'GET';
        body = undefined;
      }
      continue;
    }
    return res;
  }
}

function once(url: URL, method: string, body: string | undefined, headers: Record<string, string>, deadline: number, opts: SafeFetchOptions): Promise<SafeResponse> {
  const timeout = deadline - Date.now();
  if (timeout <= 0) return Promise.reject(new DialRefused('Timed out'));
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(
      url,
      {
        method,
        headers: { 'user-agent': 'parley-broker', ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) },
        // A fresh connection per request, so every connection goes through the guarded lookup.
        agent: false,
        lookup: guardedLookup(opts.allow),
        timeout,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > opts.maxBytes) {
            req.destroy(new DialRefused(`Answer larger than ${opts.maxBytes} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, url: url.toString(), headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    const timer = setTimeout(() => req.destroy(new DialRefused('Timed out')), timeout);
    req.on('close', () => clearTimeout(timer));
    req.on('timeout', () => req.destroy(new DialRefused('Timed out')));
    req.on('error', (e) => reject(e instanceof DialRefused ? e : new DialRefused(`Could not reach ${url.host}: ${(e as NodeJS.ErrnoException).code ?? 'network error'}`)));
    req.end(body);
  });
}
