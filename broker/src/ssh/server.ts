/**
 * The SSH broker: an ssh2 server whose sessions are clients of the HTTP broker's API. The user
 * name is the credential (`new` or a token), so every user name is let through with the `none`
 * method — `ssh -p 2222 new@HOST` works without a prompt — and the session itself checks it.
 * Anything but one session per connection (port forwarding, agent forwarding, sftp, a second
 * channel) is refused.
 *
 * Connections are accepted here, before ssh2 sees them, so that none can hold a slot for free:
 * each address bucket (an IPv4 /24, an IPv6 /64) has its own cap besides the global one, and a
 * connection that has not started its session (exec or shell) within the login timeout is
 * destroyed, whichever step it stalls at: the ident, the key exchange, the login, the channel.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
import type { DestinationStream } from 'pino';
import ssh2, { type Connection, type ServerChannel } from 'ssh2';
import { addressBucket } from '../client-address.js';
import { createLogger } from '../log.js';
import { loadSshConfig } from './config.js';
import { loadOrCreateHostKey } from './host-key.js';
import { Session } from './session.js';
import { Terminal } from './terminal.js';

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
  /** Connections that have not started their session yet, by "address|port": their login timers. */
  const loggingIn = new Map<string, { socket: Socket; timer: NodeJS.Timeout }>();
  const perBucket = new Map<string, number>();
  let open = 0;

  const server = new ssh2.Server({ hostKeys: [hostKey.key], ident: 'Parley' }, (client, info) => {
    connections.add(client);
    const address = info.ip;
    const login = `${info.ip}|${info.port}`;
    let username = '';
    let sessionOpened = false;
    client.on('authentication', (ctx) => {
      username = ctx.username;
      ctx.accept();
    });
    client.on('session', (accept, reject) => {
      if (sessionOpened) return reject();
      sessionOpened = true;
      const channelRequests = accept();
      let pty = false;
      let started = false;
      const start = (channel: ServerChannel, command: string) => {
        const pending = loggingIn.get(login);
        if (pending) clearTimeout(pending.timer);
        loggingIn.delete(login);
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
      // One command per session: a second exec or shell is refused.
      channelRequests.on('shell', (acceptShell, rejectShell) => (started ? rejectShell?.() : ((started = true), start(acceptShell(), ''))));
      channelRequests.on('exec', (acceptExec, rejectExec, { command }) => (started ? rejectExec?.() : ((started = true), start(acceptExec(), command))));
      // sftp and other subsystems will never become a session: refuse and hang up rather than wait.
      channelRequests.on('subsystem', (_accept, rejectIt) => {
        rejectIt?.();
        client.end();
      });
      channelRequests.on('sftp', (_accept, rejectIt) => {
        rejectIt?.();
        client.end();
      });
    });
    client.on('tcpip', (_accept, reject) => reject());
    client.on('openssh.streamlocal', (_accept, reject) => reject());
    client.on('request', (_accept, reject) => reject?.());
    // Resets and protocol errors from a client are its own business; never a crash.
    client.on('error', (err) => log.debug({ err: { type: err.name, message: err.message } }, 'ssh client error'));
    client.on('close', () => connections.delete(client));
  });

  const tcp = createServer((socket) => {
    const bucket = addressBucket(socket.remoteAddress ?? '');
    const mine = perBucket.get(bucket) ?? 0;
    if (open >= cfg.maxConnections || mine >= cfg.maxPerAddress) return void socket.destroy();
    open++;
    perBucket.set(bucket, mine + 1);
    const login = `${socket.remoteAddress}|${socket.remotePort}`;
    // destroy(), not end(): a client that stalls may never close its side.
    loggingIn.set(login, { socket, timer: setTimeout(() => socket.destroy(), cfg.loginTimeoutMs) });
    socket.once('close', () => {
      open--;
      const left = (perBucket.get(bucket) ?? 1) - 1;
      if (left > 0) perBucket.set(bucket, left);
      else perBucket.delete(bucket);
      const pending = loggingIn.get(login);
      if (pending?.socket === socket) {
        clearTimeout(pending.timer);
        loggingIn.delete(login);
      }
    });
    server.injectSocket(socket);
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(cfg.port, cfg.host, () => resolve());
  });
  // A failed accept (out of file descriptors, say) costs that one connection, never the process.
  tcp.on('error', (err) => log.error({ err: { type: err.name, message: err.message } }, 'ssh listener error'));
  const { port } = tcp.address() as AddressInfo;
  log.info({ port, fingerprint: hostKey.fingerprint }, 'ssh broker listening');

  const close = async () => {
    const closed = new Promise<void>((resolve) => tcp.close(() => resolve()));
    await Promise.all([...sessions].map((s) => (s.stop(), s.done)));
    for (const c of connections) c.end();
    for (const { socket } of loggingIn.values()) socket.destroy();
    await closed;
  };
  return { port, hostKeyFingerprint: hostKey.fingerprint, close };
}

