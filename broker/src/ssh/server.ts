/**
 * The SSH broker: an ssh2 server whose sessions are clients of the HTTP broker's API. The user
 * name is the credential (`new` or a token), so every user name is let through with the `none`
 * method — `ssh -p 2222 new@HOST` works without a prompt — and the session itself checks it.
 * Anything but one session per connection (port forwarding, agent forwarding, sftp, a second
 * channel) is refused.
 */
import type { AddressInfo } from 'node:net';
import type { DestinationStream } from 'pino';
import ssh2, { type Connection, type ServerChannel } from 'ssh2';
import { createLogger } from '../log.js';
import { loadSshConfig } from './config.js';
import { loadOrCreateHostKey } from './host-key.js';
import { Session } from './session.js';
import { Terminal } from './terminal.js';

/** A client that has not opened its session by then is dropped (half-open connections cost sockets). */
const LOGIN_GRACE_MS = 20_000;

export interface RunningSshBroker {
  port: number;
  hostKeyFingerprint: string;
  /** Stop: refuse new connections, end every session (each leaves its room), then close. */
  close(): Promise<void>;
}

export async function startSshBroker(opts: { env?: Record<string, string | undefined>; logStream?: DestinationStream } = {}): Promise<RunningSshBroker> {
  const cfg = loadSshConfig({ ...process.env, ...opts.env });
  const log = createLogger(cfg.logLevel, opts.logStream).child({ component: 'ssh' });
  const hostKey = loadOrCreateHostKey(cfg.hostKeyPath);
  if (hostKey.created) log.info({ fingerprint: hostKey.fingerprint }, 'generated a new SSH host key');

  const sessions = new Set<Session>();
  const connections = new Set<Connection>();
  const server = new ssh2.Server({ hostKeys: [hostKey.key], ident: 'Parley' }, (client, info) => {
    connections.add(client);
    const address = info.ip;
    const grace = setTimeout(() => client.end(), LOGIN_GRACE_MS);
    let username = '';
    let sessionOpened = false;
    client.on('authentication', (ctx) => {
      username = ctx.username;
      ctx.accept();
    });
    client.on('session', (accept, reject) => {
      if (sessionOpened) return reject();
      sessionOpened = true;
      clearTimeout(grace);
      const channelRequests = accept();
      let pty = false;
      const start = (channel: ServerChannel, command: string) => {
        const session = new Session(cfg, new Terminal(channel, pty), channel, log);
        sessions.add(session);
        // The connection ends once the channel is closed on both sides: ending it any sooner makes
        // OpenSSH drop output it has not printed yet.
        channel.on('close', () => {
          session.clientClosed();
          client.end();
        });
        void session.run(username, command, address);
        void session.done.then(() => sessions.delete(session));
      };
      channelRequests.on('pty', (acceptPty) => {
        pty = true;
        acceptPty?.();
      });
      channelRequests.on('window-change', (acceptIt) => acceptIt?.());
      channelRequests.on('shell', (acceptShell) => start(acceptShell(), ''));
      channelRequests.on('exec', (acceptExec, _reject, { command }) => start(acceptExec(), command));
    });
    client.on('tcpip', (_accept, reject) => reject());
    client.on('openssh.streamlocal', (_accept, reject) => reject());
    client.on('request', (_accept, reject) => reject?.());
    // Resets and protocol errors from a client are its own business; never a crash.
    client.on('error', (err) => log.debug({ err: { type: err.name, message: err.message } }, 'ssh client error'));
    client.on('close', () => {
      clearTimeout(grace);
      connections.delete(client);
    });
  });
  server.maxConnections = cfg.maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  log.info({ port, fingerprint: hostKey.fingerprint }, 'ssh broker listening');

  const close = async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    await Promise.all([...sessions].map((s) => (s.stop(), s.done)));
    for (const c of connections) c.end();
    await closed;
  };
  return { port, hostKeyFingerprint: hostKey.fingerprint, close };
}

