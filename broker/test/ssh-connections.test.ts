/**
 * The SSH broker's connection limits: one address cannot take every slot, and a connection that
 * stalls before its session starts — at the ident, after the login, on an open channel — is
 * closed after SSH_LOGIN_TIMEOUT_S. Raw TCP sockets and a real ssh2 client against the real brokers.
 */
import { connect, type Socket } from 'node:net';
import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import { broker } from './helpers.js';
import { register, sshBroker } from './ssh-client.js';

/** A raw TCP connection that never says anything, and a promise of its close. */
function idleSocket(port: number, from = '127.0.0.1'): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress: from });
    let received = '';
    socket.on('data', (d) => (received += d.toString('latin1')));
    const closed = new Promise<void>((done) => socket.on('close', () => done()));
    socket.on('error', () => undefined);
    socket.once('connect', () => resolve({ socket, received: () => received, closed }));
    socket.once('error', reject);
  });
}

/** A real ssh2 client, logged in; `then` runs once it is ready. Resolves when the server closes the connection. */
function loggedIn(port: number, then: (conn: ssh2.Client) => void): Promise<void> {
  return new Promise((resolve) => {
    const conn = new ssh2.Client();
    conn.on('error', () => undefined);
    conn.on('ready', () => then(conn));
    conn.on('close', () => resolve());
    conn.connect({ sock: connect({ host: '127.0.0.1', port }), username: 'new', hostVerifier: () => true });
  });
}

describe('SSH connection limits', () => {
  it('refuses bad limit settings at start', async () => {
    const b = await broker();
    await expect(sshBroker(b.url, undefined, { SSH_MAX_PER_ADDRESS: '0' })).rejects.toThrow('SSH_MAX_PER_ADDRESS must be between 1 and 100000, got 0');
    await expect(sshBroker(b.url, undefined, { SSH_LOGIN_TIMEOUT_S: 'soon' })).rejects.toThrow('SSH_LOGIN_TIMEOUT_S must be a whole number, got "soon"');
  });

  it('many idle connections from one address take only their own cap: another address still logs in', async () => {
    const b = await broker();
    const { port } = await sshBroker(b.url, undefined, { SSH_MAX_CONNECTIONS: '30', SSH_MAX_PER_ADDRESS: '5' });
    const idle = await Promise.all(Array.from({ length: 40 }, () => idleSocket(port)));
    // The server closes all but five of them at once.
    const open = new Set(idle);
    await new Promise<void>((resolve, reject) => {
      for (const s of idle)
        void s.closed.then(() => {
          open.delete(s);
          if (open.size === 5) resolve();
          if (open.size < 5) reject(new Error('closed more than the cap'));
        });
    });
    expect(await register(port, '127.0.3.9')).toMatch(/^tok_[0-9a-f]{32}$/);
    expect(await register(port, '127.0.4.9')).toMatch(/^tok_[0-9a-f]{32}$/);
    // The five kept are still open: they are only cut by the login timeout.
    expect([...open].every((s) => !s.socket.destroyed)).toBe(true);
    for (const s of idle) s.socket.destroy();
  });

  it('a connection that never sends its SSH ident is closed after the login timeout', async () => {
    const b = await broker();
    const { port } = await sshBroker(b.url, undefined, { SSH_LOGIN_TIMEOUT_S: '1' });
    const s = await idleSocket(port);
    await s.closed;
    expect(s.received()).toMatch(/^SSH-2\.0-Parley/);
  });

  it('a logged-in client that never opens a session is closed after the login timeout', async () => {
    const b = await broker();
    const { port } = await sshBroker(b.url, undefined, { SSH_LOGIN_TIMEOUT_S: '1' });
    await loggedIn(port, () => undefined);
  });

  it('a session channel on which no command ever comes is closed after the login timeout', async () => {
    const b = await broker();
    const { port } = await sshBroker(b.url, undefined, { SSH_LOGIN_TIMEOUT_S: '1' });
    let opened = false;
    await loggedIn(port, (conn) => {
      // ssh2's client always follows a session channel with its request; open a bare one through
      // its protocol layer, as a stalling client would.
      const c = conn as any;
      const local = c._chanMgr.add(() => (opened = true));
      c._protocol.session(local, 2 * 1024 * 1024, 32 * 1024);
    });
    expect(opened).toBe(true);
  });

  it('an sftp request is refused and the connection closed', async () => {
    const b = await broker();
    const { port } = await sshBroker(b.url);
    let refusal: Error | undefined;
    await loggedIn(port, (conn) => conn.sftp((err) => (refusal = err)));
    expect(refusal?.message).toMatch(/Unable to start subsystem: sftp/);
  });
});
