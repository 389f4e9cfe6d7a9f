/**
 * The benchmark's load generator, in its own process (one per relay under test) so its
 * sockets and CPU are not the server's. It speaks the wire contract only (/setup,
 * /register-and-join, /send, /wait with a Bearer token), so the very same code drives Parley
 * and the null relay. Commands arrive over IPC as {id, cmd, ...}; answers go back as {id, result}
 * or {id, error}.
 */
import { Agent, type ClientRequest, request } from 'node:http';
import { mcpLoad } from './mcp-load.js';

const base = new URL(process.argv[2]);
// One keep-alive socket per in-flight request, reused across requests: no reconnect per message.
const agent = new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024 });
// Held idle polls get a socket each and keep it; no pooling to wait for.
const idleAgent = new Agent({ keepAlive: false, maxSockets: Infinity });

interface Reply {
  status: number;
  text: string;
  /** Parley-Event-Id, on a /wait answer. */
  eventId?: string;
}

// argv[3] `ack`: an acknowledging client, as the skill is: each /wait names the event it got last.
const ACK = process.argv[3] === 'ack';
const lastEvent = new Map<string, string>();
const waitPath = (token: string, timeoutS: number) => `/wait?timeout=${timeoutS}${ACK ? `&ack=${lastEvent.get(token) ?? ''}` : ''}`;

function call(method: string, path: string, opts: { token?: string; body?: string; type?: string; via?: Agent; onRequest?: (r: ClientRequest) => void } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = {};
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.body !== undefined) {
      headers['content-type'] = opts.type ?? 'text/plain';
      headers['content-length'] = Buffer.byteLength(opts.body);
    }
    const req = request({ host: base.hostname, port: base.port, method, path, headers, agent: opts.via ?? agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, eventId: res.headers['parley-event-id'] as string | undefined }));
      res.on('error', reject);
    });
    req.on('error', reject);
    opts.onRequest?.(req);
    req.end(opts.body);
  });
}

const expectOk = (r: Reply, what: string): Reply => {
  if (r.status !== 200) throw new Error(`${what}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
  return r;
};
const send = async (token: string, text: string) => expectOk(await call('POST', '/send', { token, body: text }), 'send');
const wait = async (token: string, timeoutS: number) => {
  const r = expectOk(await call('GET', waitPath(token, timeoutS), { token }), 'wait');
  if (ACK && r.eventId) lastEvent.set(token, r.eventId);
  return r;
};

interface Room {
  host: string;
  joiner: string;
}

/** A live room with the host's join notice already read, as an agent pair would have it. */
async function pair(): Promise<Room> {
  const setup = JSON.parse(expectOk(await call('POST', '/setup', { body: '{"type":"standard"}', type: 'application/json' }), 'setup').text);
  const joined = JSON.parse(expectOk(await call('POST', `/register-and-join/${setup.code}`), 'register-and-join').text);
  const notice = await wait(setup.token, 5);
  if (!notice.text.includes('MESSAGE_RECEIVED')) throw new Error(`expected the join notice, got ${notice.text.slice(0, 100)}`);
  return { host: setup.token, joiner: joined.token };
}

async function pairs(n: number, concurrency = 64): Promise<Room[]> {
  const out: Room[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, concurrency) }, async () => {
      while (next < n) {
        next++;
        out.push(await pair());
      }
    }),
  );
  return out;
}

// Work-like messages whose identifiers are never repeated: each adds new facts, so no loop
// detector has a reason to pause a room mid-run (a repetitive text would measure the alarm path instead).
let serial = Math.floor(Math.random() * 1e6) * 1e6;
// Decimal, so every id has digits and reads as a new fact to the loop detector: base-36 ids
// without digits (xabc) read as plain words, and a room whose messages then differed only in
// words got paused now and then, which ended the run.
const id = () => `x${serial++}`;
const nextMessage = () =>
  `Checked ${id()}.ts and ${id()}: test ${id()} passes, ${id()} needs ${id()} before ${id()} ships.\nNext I look at ${id()}. [OVER]`;
const STOP = 'bench-stop';
const stopMessage = () => `${STOP} ${id()} ${id()} ${id()} [OVER]`;

function checkMessage(body: string): void {
  // A timeout or a broker notice here (pause, loop alert, expiry) would mean the run measured something else.
  if (body.startsWith('TIMEOUT') || body.includes('[SYSTEM')) throw new Error(`unexpected event on /wait: ${body.slice(0, 160)}`);
}

const cpuUs = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};

// ── phases ────────────────────────────────────────────────────────────────

let latencyRoom: Room | undefined;
let loadRooms: Room[] = [];

/**
 * One room; each message goes to a partner whose /wait is already held (it was re-armed a full
 * round trip earlier). A sample runs from the start of POST /send to the end of the partner's /wait response.
 */
async function latency(args: { warmup: number; samples: number; maxMs: number }): Promise<{ samplesMs: number[] }> {
  latencyRoom ??= await pair();
  const { host, joiner } = latencyRoom;
  const pending = new Map<string, Promise<Reply>>([
    [host, wait(host, 30)],
    [joiner, wait(joiner, 30)],
  ]);
  await new Promise((r) => setTimeout(r, 100)); // both polls held before the first send
  const samplesMs: number[] = [];
  const deadline = performance.now() + args.maxMs;
  let from = host;
  let to = joiner;
  for (let i = 0; i < args.warmup + args.samples && performance.now() < deadline; i++) {
    const t0 = performance.now();
    const [, got] = await Promise.all([send(from, nextMessage()), pending.get(to)!]);
    const t1 = performance.now();
    checkMessage(got.text);
    if (i >= args.warmup) samplesMs.push(t1 - t0);
    pending.set(to, wait(to, 30));
    [from, to] = [to, from];
  }
  // Close the two polls still held: one last message each way.
  await Promise.all([send(host, stopMessage()), send(joiner, stopMessage()), ...pending.values()]);
  return { samplesMs };
}

/** `rooms` pairs ping-pong as fast as they can for `durationMs`; every message is one /send and one /wait answer. */
async function throughput(args: { rooms: number; durationMs: number }): Promise<{ messages: number; elapsedMs: number; clientCpuUs: number }> {
  if (loadRooms.length < args.rooms) loadRooms = loadRooms.concat(await pairs(args.rooms - loadRooms.length));
  let messages = 0;
  const start = performance.now();
  const cpu0 = cpuUs();
  const deadline = start + args.durationMs;
  const side = async (me: string, partner: string, opens: boolean) => {
    let w = wait(me, 30);
    if (opens) await send(me, nextMessage());
    for (;;) {
      const got = (await w).text;
      checkMessage(got);
      messages++;
      if (got.includes(STOP)) return;
      if (performance.now() >= deadline) return void (await send(me, stopMessage()));
      w = wait(me, 30);
      await send(me, nextMessage());
    }
  };
  await Promise.all(loadRooms.slice(0, args.rooms).flatMap((r) => [side(r.host, r.joiner, true), side(r.joiner, r.host, false)]));
  return { messages, elapsedMs: performance.now() - start, clientCpuUs: cpuUs() - cpu0 };
}

const idleRequests: ClientRequest[] = [];
const idleRooms: Room[] = [];
let idleAnswered = 0;

/** `rooms` more rooms whose both sides hold a /wait that nothing will answer during the bench. */
async function idleOpen(args: { rooms: number; holdS: number; batch: number }): Promise<{ held: number }> {
  const rooms = await pairs(args.rooms);
  idleRooms.push(...rooms);
  const tokens = rooms.flatMap((r) => [r.host, r.joiner]);
  for (let i = 0; i < tokens.length; i += args.batch) {
    // Batches, each flushed before the next, so the server's accept backlog never overflows.
    await Promise.all(
      tokens.slice(i, i + args.batch).map(
        (token) =>
          new Promise<void>((flushed, failed) => {
            call('GET', waitPath(token, args.holdS), {
              token,
              via: idleAgent,
              onRequest: (req) => {
                idleRequests.push(req);
                req.once('finish', () => flushed());
              },
            }).then(
              () => void idleAnswered++,
              (e: Error) => (closing ? undefined : failed(e)),
            );
          }),
      ),
    );
  }
  return { held: idleRequests.length };
}

let closing = false;
function idleClose(): { answeredEarly: number } {
  closing = true;
  for (const r of idleRequests.splice(0)) r.destroy();
  return { answeredEarly: idleAnswered };
}

/**
 * Both sides of every idle room leave it, and whatever poll is still held is dropped: a twin's
 * agents open the rooms its target's agents open, as the target's do, and then end them, so the
 * twin has done the same work but holds nothing.
 */
async function idleLeave(): Promise<{ left: number }> {
  const rooms = idleRooms.splice(0);
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < rooms.length) {
        const r = rooms[next++];
        for (const token of [r.host, r.joiner]) expectOk(await call('POST', '/leave', { token }), 'leave');
      }
    }),
  );
  for (const r of idleRequests.splice(0)) r.destroy();
  return { left: rooms.length };
}

const mcp = mcpLoad(base, nextMessage, stopMessage, STOP, cpuUs);

const commands: Record<string, (args: any) => unknown> = {
  latency,
  throughput,
  mcpLatency: mcp.mcpLatency,
  mcpThroughput: mcp.mcpThroughput,
  mcpFloorThroughput: mcp.mcpFloorThroughput,
  idleOpen,
  idleClose,
  idleLeave,
  idleStatus: () => ({ held: idleRequests.length, answeredEarly: idleAnswered }),
};

process.on('message', async (m: { id: number; cmd: string; args?: unknown }) => {
  try {
    process.send!({ id: m.id, result: await commands[m.cmd](m.args ?? {}) });
  } catch (e) {
    process.send!({ id: m.id, error: (e as Error).stack ?? String(e) });
  }
});
process.on('disconnect', () => process.exit(0));
process.send!({ ready: true });
