/**
 * A TCP proxy for fault injection between a client and the broker: it forwards both ways and,
 * for a chosen share of responses, cuts the broker→client stream at a random point (after the
 * first byte, after the headers, mid-body, or with a TCP reset), as a flaky network would.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export type Cut = 'first-byte' | 'headers' | 'mid-body' | 'reset';
const CUTS: Cut[] = ['first-byte', 'headers', 'mid-body', 'reset'];

export interface FaultProxy {
  url: string;
  /** How many responses were cut, by kind. */
  cuts: Record<Cut, number>;
  close(): Promise<void>;
}

/** `share`: the fraction of responses cut. A cut ends the connection, so a keep-alive client reconnects. */
export async function faultProxy(target: string, share: number, random: () => number = Math.random): Promise<FaultProxy> {
  const { hostname, port } = new URL(target);
  const cuts: Record<Cut, number> = { 'first-byte': 0, headers: 0, 'mid-body': 0, reset: 0 };
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    let cut: Cut | undefined;
    let seen = Buffer.alloc(0);
    const kill = (kind: Cut) => {
      cuts[kind]++;
      if (kind === 'reset') client.resetAndDestroy();
      else client.destroy();
      upstream.destroy();
    };
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d: Buffer) => {
      // Each response starts a fresh draw (a chunk that starts a status line; responses here are small).
      if (!cut && d.subarray(0, 7).toString() === 'HTTP/1.') cut = random() < share ? CUTS[Math.floor(random() * CUTS.length)] : undefined;
      if (!cut) return void client.write(d);
      seen = Buffer.concat([seen, d]);
      const headerEnd = seen.indexOf('\r\n\r\n');
      if (cut === 'first-byte' || cut === 'reset') {
        client.write(seen.subarray(0, 1));
        return kill(cut);
      }
      if (headerEnd < 0) return; // wait for the headers
      const bodyStart = headerEnd + 4;
      if (cut === 'headers') client.write(seen.subarray(0, bodyStart));
      else client.write(seen.subarray(0, bodyStart + Math.max(1, Math.floor((seen.length - bodyStart) / 2))));
      kill(cut);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cuts,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
