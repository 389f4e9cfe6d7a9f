/**
 * Who is asking: the client address, and the bucket it is rate-limited in.
 * X-Forwarded-For counts only when the direct peer is a trusted proxy (Caddy on the compose
 * network), so a client cannot pick its own bucket by sending the header itself.
 */
import type { IncomingMessage } from 'node:http';
import ipaddr from 'ipaddr.js';
import proxyaddr from 'proxy-addr';

export function clientAddressResolver(trustedProxies: string[]) {
  const trust = proxyaddr.compile(trustedProxies);
  return (req: IncomingMessage): string => proxyaddr(req, trust);
}

/** IPv4 addresses share a /24 bucket and IPv6 a /64: one host cannot dodge a limit by hopping addresses. */
export function addressBucket(address: string): string {
  if (!ipaddr.isValid(address)) return address;
  let ip = ipaddr.parse(address);
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) ip = (ip as ipaddr.IPv6).toIPv4Address();
  if (ip.kind() === 'ipv4') {
    const o = (ip as ipaddr.IPv4).octets;
    return `${o[0]}.${o[1]}.${o[2]}.0/24`;
  }
  const p = (ip as ipaddr.IPv6).parts;
  return `${p.slice(0, 4).map((x) => x.toString(16)).join(':')}::/64`;
}

/** How many of something each address bucket holds, against a cap: a counter per bucket, never a scan. */
export class BucketCounts {
  private readonly counts = new Map<string, number>();

  /** Counts one more for `bucket`, unless it already holds `max`. */
  take(bucket: string, max: number): boolean {
    const n = this.counts.get(bucket) ?? 0;
    if (n >= max) return false;
    this.counts.set(bucket, n + 1);
    return true;
  }

  give(bucket: string): void {
    const n = (this.counts.get(bucket) ?? 1) - 1;
    if (n > 0) this.counts.set(bucket, n);
    else this.counts.delete(bucket);
  }
}
