/**
 * `npm run bench`: Parley against a "null relay" (a bare node:http forwarder, see null-relay.ts),
 * in one run, on loopback. Each relay runs in its own server process and is driven by its own
 * load-client process, so sockets, open-file limits, RSS and CPU time are all per process.
 * Runs of the two relays are interleaved and each figure is the best of a few runs, so the
 * ratios are taken under the same conditions on a small, shared machine.
 *
 * Measures: relay latency p50/p99 (one room), msgs/s for 32 rooms ping-ponging, the same with
 * 5,000 idle rooms each holding two long-polls (10,000 sockets, held by a third process), and RSS
 * per idle room. The idle loss is measured against each relay's twin: a process of its own that
 * does all its target does but keeps no idle room (BENCH_AA=1: the targets keep none either).
 * Where Debian's redis-server is installed, a third target runs Parley on the Redis backend
 * (its own redis-server, no persistence) through the same phases: throughput against the memory
 * backend, and memory per idle room counted in the broker and in Redis. Then the MCP door
 * (/mcp, see mcp-load.ts) against the HTTP door, in a Parley process of their own, and the SDK's own
 * floor: an echo tool on the bare SDK (mcp-floor.ts), driven by the same SDK client.
 * Prints a markdown table for the README (also written to /tmp/readme-bench.md). Exits 0
 * whatever the figures; only a crash fails it.
 */
import { type ChildProcess, execFileSync, fork, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ServerStats } from './bench-server.js';

const ROOMS = 32;
const IDLE_ROOMS = 5_000;
const RUN_MS = 3_000;
const REPS = 5;
// With idle rooms each run is paired with its twin's; more pairs make their median steadier.
const IDLE_REPS = 7;
const LATENCY_SAMPLES = 3_000;
const MCP_LATENCY_SAMPLES = 1_000;
// Longer than the whole idle phase, so nothing answers the held polls before the bench is done.
const IDLE_HOLD_S = 300;
// Idle rooms are opened this many at a time, each target's then its twin's (see main).
const IDLE_ROUND = 500;
// BENCH_AA=1 checks the idle measure itself: the targets' agents end their rooms as the twins' do,
// so target and twin differ in nothing and the idle loss should read zero, give or take the noise.
const AA = process.env.BENCH_AA === '1';
const README_FILE = '/tmp/readme-bench.md';
// BENCH_PROFILE_DIR=dir: also write there a CPU profile of each server during one extra throughput run per phase.
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR;

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
// The processes under test run tsc's output, as `npm start` does: tsx's on-the-fly transform
// keeps function names with a helper that costs memory and CPU on every closure it creates.
// Under node_modules/ so the compiled files resolve their packages and git ignores them.
const BUILD_DIR = here('../../node_modules/.cache/parley-bench');
const BENCH_PROCESSES = ['bench-server.ts', 'load-client.ts'];

function compile(): void {
  rmSync(BUILD_DIR, { recursive: true, force: true });
  const tsc = here('../../node_modules/typescript/bin/tsc');
  const flags = ['--outDir', BUILD_DIR, '--rootDir', here('..'), '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2022', '--strict', '--esModuleInterop', '--skipLibCheck'];
  try {
    execFileSync(process.execPath, [tsc, ...flags, ...BENCH_PROCESSES.map(here)], { stdio: 'pipe' });
  } catch (e) {
    // tsc still emits on type errors; only a missing output is fatal.
    const out = String((e as { stdout?: Buffer }).stdout ?? '');
    if (!BENCH_PROCESSES.every((f) => existsSync(built(f)))) throw new Error(`tsc could not build the bench:\n${out}`);
    log(`(tsc reported type errors; running what it emitted)\n${out.trim().split('\n').slice(0, 5).join('\n')}`);
  }
  // Node reads files under node_modules/ as CommonJS unless told otherwise; tsc emitted ES modules.
  writeFileSync(`${BUILD_DIR}/package.json`, '{"type":"module"}\n');
}
const built = (f: string) => `${BUILD_DIR}/bench/${f.replace(/\.ts$/, '.js')}`;

/** A child process answering {id, cmd, args} with {id, result|error} over IPC. */
class Worker {
  private nextId = 1;
  private readonly calls = new Map<number, { resolve(v: any): void; reject(e: Error): void }>();
  readonly hello: Promise<any>;

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    this.hello = new Promise((resolve, reject) => {
      proc.once('message', resolve);
      proc.once('exit', (code) => reject(new Error(`${name} exited (${code}) before it was ready`)));
    });
    proc.on('message', (m: { id?: number; result?: unknown; error?: string }) => {
      const c = m.id === undefined ? undefined : this.calls.get(m.id);
      if (!c) return;
      this.calls.delete(m.id!);
      if (m.error) c.reject(new Error(`${name}: ${m.error}`));
      else c.resolve(m.result);
    });
    proc.on('exit', (code, signal) => {
      for (const c of this.calls.values()) c.reject(new Error(`${name} exited (${code ?? signal})`));
      this.calls.clear();
    });
  }

  call<T>(cmd: string, args?: unknown): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      this.proc.send({ id, cmd, args });
    });
  }
}

const node = (script: string, args: string[], execArgv: string[] = []) =>
  fork(built(script), args, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });

type Kind = 'parley' | 'parley-redis' | 'null' | 'mcp-floor';

interface Target {
  name: string;
  kind: Kind;
  acking: boolean;
  /**
   * The same relay in a process of its own that lives the target's life (every warm-up, latency and
   * throughput run right after the target's, idle when it is idle) but never gets the idle rooms.
   */
  twin?: Target;
  server: Worker;
  client: Worker;
  /** The load client's command line (URL and flags), for the idle rooms' own process. */
  clientArgs: string[];
  /** A process of its own holding the idle rooms' polls (see idleAgents). */
  idler?: Worker;
  latencyMs: number[];
  base: Run[];
  idle: Run[];
  rssBefore?: ServerStats;
  rssIdle?: ServerStats;
  /** Redis's own memory before and with the idle rooms (Redis target only). */
  redisBefore?: number;
  redisIdle?: number;
}

/** A throwaway redis-server on a free loopback port, or undefined where none is installed. */
async function startRedis(): Promise<{ url: string; used(): Promise<number>; stop(): void } | undefined> {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  // ioredis keeps retrying until the server is up; wait for it, but not forever.
  const client = new Redis(url);
  client.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server did not come up')), 10_000);
    client.once('ready', () => (clearTimeout(timer), resolve()));
  });
  const used = async () => Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1]);
  return { url, used, stop: () => (client.disconnect(), proc.kill('SIGKILL')) };
}

interface Run {
  msgsPerS: number;
  serverCpuUsPerMsg: number;
  clientCpuShare: number;
}

async function startTarget(name: string, kind: Kind, redisUrl?: string, acking = false): Promise<Target> {
  // --expose-gc so memory is read after a full collection; own process so RSS and fds are its own.
  const server = new Worker(`${name} server`, node('bench-server.ts', redisUrl ? [kind, redisUrl] : [kind], ['--expose-gc']));
  const { port } = await server.hello;
  const clientArgs = [`http://127.0.0.1:${port}`, ...(acking ? ['ack'] : [])];
  const client = new Worker(`${name} client`, node('load-client.ts', clientArgs));
  await client.hello;
  return { name, kind, acking, server, client, clientArgs, latencyMs: [], base: [], idle: [] };
}

/**
 * The idle rooms' agents: a process of their own, as they would be on other machines. Held by the
 * load client itself, 10,000 pending requests slowed the client and with it the runs (the null
 * relay, limited by its client, lost 6 % to them); their sockets still load this machine's kernel.
 */
async function idleAgents(t: Target): Promise<Worker> {
  const idler = new Worker(`${t.name} idle agents`, node('load-client.ts', t.clientArgs));
  await idler.hello;
  return idler;
}

async function throughputRun(t: Target, profileAs?: string, cmd: 'throughput' | 'mcpThroughput' | 'mcpFloorThroughput' = 'throughput'): Promise<Run> {
  // No forced GC around runs: its CPU time would be charged to the run's messages.
  const before = await t.server.call<ServerStats>('stats', { gc: false });
  if (profileAs) await t.server.call('profileStart');
  const r = await t.client.call<{ messages: number; elapsedMs: number; clientCpuUs: number }>(cmd, { rooms: ROOMS, durationMs: RUN_MS });
  if (profileAs) log(`  profile: ${await t.server.call<string>('profileStop', { file: `${PROFILE_DIR}/${profileAs}.cpuprofile` })}`);
  const after = await t.server.call<ServerStats>('stats', { gc: false });
  return {
    msgsPerS: r.messages / (r.elapsedMs / 1000),
    serverCpuUsPerMsg: (after.cpuUs - before.cpuUs) / r.messages,
    clientCpuShare: r.clientCpuUs / (r.elapsedMs * 1000),
  };
}

/** One throughput run of `t`, kept in its figures for `phase` and logged. */
async function recordRun(t: Target, phase: 'base' | 'idle', i: number): Promise<void> {
  const run = await throughputRun(t);
  t[phase].push(run);
  log(`  ${t.name.padEnd(10)} run ${i + 1}: ${fmt(run.msgsPerS, 0)} msgs/s, server ${fmt(run.serverCpuUsPerMsg, 1)} µs CPU/msg, client busy ${fmt(run.clientCpuShare * 100, 0)} %`);
}

/** With BENCH_PROFILE_DIR, one extra run per target under the profiler, kept out of the figures (the profiler slows the server). */
async function profileRuns(targets: Target[], phase: 'base' | 'idle'): Promise<void> {
  if (PROFILE_DIR) for (const t of targets) await throughputRun(t, `${t.name.replace(/\W+/g, '-')}-${phase}`);
}

/** A target and its twin, which does all the target does, right after it. */
const lives = (t: Target) => (t.twin ? [t, t.twin] : [t]);

/** Interleaved reps: both relays see the same background load from the shared machine. */
async function interleave(targets: Target[]): Promise<void> {
  for (let i = 0; i < REPS; i++) for (const t of targets) for (const u of lives(t)) await recordRun(u, 'base', i);
  await profileRuns(targets, 'base');
}

/**
 * The idle runs: each target's run next to its twin's (alternating which goes first, so neither
 * always runs on the other's heels), so each pair sees the same moment of this shared machine.
 */
async function interleavePairs(group: Target[]): Promise<void> {
  for (let i = 0; i < IDLE_REPS; i++)
    for (const t of group) {
      const pair = !t.twin ? [t] : i % 2 === 0 ? [t, t.twin] : [t.twin, t];
      for (const u of pair) await recordRun(u, 'idle', i);
    }
  await profileRuns(group.flatMap(lives), 'idle');
}

async function waitForConnections(t: Target, atLeast: number): Promise<ServerStats> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const s = await t.server.call<ServerStats>('stats');
    if (s.connections >= atLeast) return s;
    if (Date.now() > deadline) throw new Error(`${t.name}: only ${s.connections} connections open, expected ${atLeast}`);
    await sleep(250);
  }
}

// ── report helpers ────────────────────────────────────────────────────────

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stdout.write(`${s}\n`);
const fmt = (n: number, digits: number) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
// Background load on a shared machine only ever slows a run down, so the best run is the cleanest reading.
const best = (runs: Run[]) => runs.reduce((a, b) => (b.msgsPerS > a.msgsPerS ? b : a));
const leastCpu = (runs: Run[]) => Math.min(...runs.map((r) => r.serverCpuUsPerMsg));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
/** Throughput lost to the idle rooms in each pair of runs (target against its twin, run side by side). */
const pairLosses = (t: Target) => t.idle.map((r, i) => 1 - r.msgsPerS / t.twin!.idle[i].msgsPerS);
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL');
const perIdleRoom = (t: Target) => (t.rssIdle!.rss - t.rssBefore!.rss) / IDLE_ROOMS;

async function main(): Promise<void> {
  const started = Date.now();
  log(`# Parley relay benchmark (node ${process.version}, loopback, each relay in its own process)\n`);
  log('Compiling the broker and the bench processes with tsc…');
  compile();
  const parley = await startTarget('parley', 'parley');
  const nul = await startTarget('null relay', 'null');
  // The same broker with clients that acknowledge every event (at-least-once delivery), as the skill does.
  const acking = await startTarget('acking', 'parley', undefined, true);
  const redis = await startRedis();
  const onRedis = redis ? await startTarget('on Redis', 'parley-redis', redis.url) : undefined;
  if (!redis) log('(no redis-server installed: the Redis backend is not measured)');
  const targets = onRedis ? [nul, parley, acking, onRedis] : [nul, parley, acking];
  // Twins from the start, so that a twin's process is as old as its target's and has done the same
  // work: a process that has sat idle for minutes, or served other doors, runs slower for a while
  // after (measured: 10 % with no idle room at all), which a fresh twin would charge to the idle rooms.
  for (const t of [nul, parley, acking]) t.twin = await startTarget(`${t.name} twin`, t.kind, undefined, t.acking);
  const mcp = { latencyMs: [] as number[], mcp: [] as Run[], http: [] as Run[], floor: [] as Run[] };
  try {
    log('Warm-up…');
    for (const t of targets) for (const u of lives(t)) await u.client.call('throughput', { rooms: ROOMS, durationMs: 1_000 });

    log('Latency, one room (send start → partner\'s held /wait answered)…');
    for (const t of targets)
      for (const u of lives(t)) {
        const { samplesMs } = await u.client.call<{ samplesMs: number[] }>('latency', { warmup: 300, samples: LATENCY_SAMPLES, maxMs: 15_000 });
        u.latencyMs = samplesMs.sort((a, b) => a - b);
        log(`  ${u.name.padEnd(10)} p50 ${fmt(percentile(u.latencyMs, 0.5), 3)} ms, p99 ${fmt(percentile(u.latencyMs, 0.99), 3)} ms (${samplesMs.length} samples)`);
      }

    log(`Throughput, ${ROOMS} rooms ping-ponging, ${REPS} × ${RUN_MS / 1000} s each, interleaved…`);
    await interleave(targets);

    // A Parley process of their own, so the Parley target and its twin keep the same history.
    log('MCP door (/mcp) against the HTTP door, one Parley process of their own…');
    const doors = await startTarget('doors', 'parley');
    await doors.client.call('throughput', { rooms: ROOMS, durationMs: 1_000 });
    await doors.client.call('mcpThroughput', { rooms: ROOMS, durationMs: 1_000 });
    mcp.latencyMs = (await doors.client.call<{ samplesMs: number[] }>('mcpLatency', { warmup: 100, samples: MCP_LATENCY_SAMPLES, maxMs: 15_000 })).samplesMs.sort((a, b) => a - b);
    log(`  mcp        p50 ${fmt(percentile(mcp.latencyMs, 0.5), 3)} ms, p99 ${fmt(percentile(mcp.latencyMs, 0.99), 3)} ms (${mcp.latencyMs.length} samples)`);
    const floor = await startTarget('mcp floor', 'mcp-floor');
    await floor.client.call('mcpFloorThroughput', { rooms: ROOMS, durationMs: 1_000 });
    for (let i = 0; i < REPS; i++) {
      for (const [runs, t, cmd, name] of [[mcp.http, doors, 'throughput', 'http door'], [mcp.mcp, doors, 'mcpThroughput', 'mcp door'], [mcp.floor, floor, 'mcpFloorThroughput', 'sdk floor']] as const) {
        const run = await throughputRun(t, undefined, cmd);
        runs.push(run);
        log(`  ${name.padEnd(10)} run ${i + 1}: ${fmt(run.msgsPerS, 0)} msgs/s, server ${fmt(run.serverCpuUsPerMsg, 1)} µs CPU/msg, client busy ${fmt(run.clientCpuShare * 100, 0)} %`);
      }
    }
    for (const t of [floor, doors]) {
      t.client.proc.kill();
      await t.server.call('exit').catch(() => undefined);
    }

    // Idle rooms are opened for two targets at a time: 10,000 held sockets per target slow the whole
    // machine, so each comparison is made with the same background (Parley against the null relay;
    // then the acking and Redis targets, each against its own figures without idle rooms).
    for (const group of [[nul, parley], onRedis ? [acking, onRedis] : [acking]]) {
      // The idle runs come minutes after the first ones, and this shared machine's speed drifts by
      // more than the target in that time (both relays alike). So each idle run is paired with a run
      // of the target's twin (same history, no idle rooms) made next to it.
      const twins = group.flatMap((t) => (t.twin ? [t.twin] : []));
      if (AA) log('BENCH_AA=1: the targets\' agents end their rooms too, so the idle losses below should read about zero.');
      log(`Opening ${fmt(IDLE_ROOMS, 0)} idle rooms for ${group.map((t) => t.name).join(' and ')}, both sides holding a /wait (the twins' agents open as many and end them)…`);
      for (const t of group) {
        t.rssBefore = await t.server.call<ServerStats>('stats');
        if (t === onRedis) t.redisBefore = await redis!.used();
        for (const u of lives(t)) u.idler = await idleAgents(u);
      }
      // In rounds, each target's then its twin's, so a twin does its target's work at the same
      // moments: opening rooms makes garbage and leaves the hot path unused, after which a process
      // runs slower for a while. The twin's agents then leave their rooms, so it holds none.
      for (let opened = 0; opened < IDLE_ROOMS; opened += IDLE_ROUND)
        for (const t of group)
          for (const u of lives(t)) {
            await u.idler!.call('idleOpen', { rooms: IDLE_ROUND, holdS: IDLE_HOLD_S, batch: 500 });
            if (u !== t || AA) await u.idler!.call('idleLeave');
          }
      for (const t of group) {
        const { held } = await t.idler!.call<{ held: number }>('idleStatus');
        await waitForConnections(t, held);
        await sleep(1_000); // let the last requests be parsed and parked
        t.rssIdle = await t.server.call<ServerStats>('stats');
        if (t === onRedis) t.redisIdle = await redis!.used();
        const before = t.rssBefore!;
        log(`  ${t.name.padEnd(10)} ${fmt(t.rssIdle.connections, 0)} connections open; RSS ${fmt(before.rss / 2 ** 20, 1)} → ${fmt(t.rssIdle.rss / 2 ** 20, 1)} MiB, heap used ${fmt(before.heapUsed / 2 ** 20, 1)} → ${fmt(t.rssIdle.heapUsed / 2 ** 20, 1)} MiB (of ${fmt(t.rssIdle.heapTotal / 2 ** 20, 1)}), external ${fmt(before.external / 2 ** 20, 1)} → ${fmt(t.rssIdle.external / 2 ** 20, 1)} MiB`);
        if (t.twin) log(`  ${t.twin.name.padEnd(10)} ${fmt((await t.twin.server.call<ServerStats>('stats')).connections, 0)} connections open`);
      }
      log(`Throughput, ${ROOMS} rooms, with the ${fmt(IDLE_ROOMS, 0)} idle rooms present, interleaved with the twins (no idle rooms)…`);
      // One unrecorded run each first, so that each pair starts from the same recent work.
      for (const t of group) for (const u of lives(t)) await u.client.call('throughput', { rooms: ROOMS, durationMs: RUN_MS });
      await interleavePairs(group);
      for (const tw of twins) {
        tw.client.proc.kill();
        tw.idler?.proc.kill();
        await tw.server.call('exit').catch(() => undefined);
      }
      for (const t of group) {
        const { answeredEarly } = await t.idler!.call<{ answeredEarly: number }>('idleStatus');
        const { connections } = await t.server.call<ServerStats>('stats');
        if (!AA && (answeredEarly > 0 || connections < 2 * IDLE_ROOMS))
          log(`  WARNING ${t.name}: ${answeredEarly} idle polls answered early, ${connections} connections still open`);
        await t.idler!.call('idleClose');
        t.idler!.proc.kill();
      }
      await sleep(2_000); // the closed sockets drain before the next group opens its own
    }
  } finally {
    for (const t of targets.flatMap(lives)) {
      t.client.proc.kill();
      t.idler?.proc.kill();
      // Twins whose group is done have exited already; a send to them would throw.
      if (t.server.proc.connected) await t.server.call('exit').catch(() => undefined);
    }
    redis?.stop();
  }

  // ── figures ─────────────────────────────────────────────────────────────
  const p = { base: best(parley.base), idle: best(parley.idle) };
  const n = { base: best(nul.base), idle: best(nul.idle) };
  const cpu = {
    p: { base: leastCpu(parley.base), idle: leastCpu(parley.idle) },
    n: { base: leastCpu(nul.base), idle: leastCpu(nul.idle) },
  };
  const tputRatio = p.base.msgsPerS / n.base.msgsPerS;
  // Against the twin (same moment, no idle rooms): the median over the pairs of runs is the target's
  // figure; best against best is shown too. Against the earlier runs: machine drift included.
  const idleCost = median(pairLosses(parley));
  const nullIdleCost = median(pairLosses(nul));
  const bestCost = 1 - p.idle.msgsPerS / best(parley.twin!.idle).msgsPerS;
  const nullBestCost = 1 - n.idle.msgsPerS / best(nul.twin!.idle).msgsPerS;
  const range = (t: Target) => `${pct(Math.min(...pairLosses(t)))} to ${pct(Math.max(...pairLosses(t)))}`;
  const driftCost = 1 - p.idle.msgsPerS / p.base.msgsPerS;
  const nullDriftCost = 1 - n.idle.msgsPerS / n.base.msgsPerS;
  const memRatio = perIdleRoom(parley) / perIdleRoom(nul);
  const kib = (b: number) => `${fmt(b / 1024, 1)} KiB`;
  const ms = (t: Target, q: number) => `${fmt(percentile(t.latencyMs, q), 2)} ms`;
  const x = (a: number, b: number) => `${fmt(a / b, 2)} ×`;
  const pct = (f: number) => `${fmt(f * 100, 1)} %`;

  const table = [
    '| Measure | Parley | Null relay | Parley / null | Target | Result |',
    '|---|---:|---:|---:|---|:---:|',
    `| Relay latency p50, 1 room | ${ms(parley, 0.5)} | ${ms(nul, 0.5)} | ${x(percentile(parley.latencyMs, 0.5), percentile(nul.latencyMs, 0.5))} | | |`,
    `| Relay latency p99, 1 room | ${ms(parley, 0.99)} | ${ms(nul, 0.99)} | ${x(percentile(parley.latencyMs, 0.99), percentile(nul.latencyMs, 0.99))} | | |`,
    `| Throughput, ${ROOMS} rooms | ${fmt(p.base.msgsPerS, 0)} msgs/s | ${fmt(n.base.msgsPerS, 0)} msgs/s | ${x(p.base.msgsPerS, n.base.msgsPerS)} | ≥ 0.6 × null | ${verdict(tputRatio >= 0.6)} |`,
    `| Throughput, ${ROOMS} rooms + ${fmt(IDLE_ROOMS, 0)} idle rooms (${fmt(2 * IDLE_ROOMS, 0)} held polls) | ${fmt(p.idle.msgsPerS, 0)} msgs/s | ${fmt(n.idle.msgsPerS, 0)} msgs/s | ${x(p.idle.msgsPerS, n.idle.msgsPerS)} | | |`,
    `| Same, twin without idle rooms, run alongside | ${fmt(best(parley.twin!.idle).msgsPerS, 0)} msgs/s | ${fmt(best(nul.twin!.idle).msgsPerS, 0)} msgs/s | | | |`,
    `| Throughput lost to the idle rooms (median of ${IDLE_REPS} pairs of runs against the twin) | ${pct(idleCost)} | ${pct(nullIdleCost)} | | ≤ 10 % | ${verdict(idleCost <= 0.1)} |`,
    `| … each pair | ${range(parley)} | ${range(nul)} | | | |`,
    `| … best run against the twin's best | ${pct(bestCost)} | ${pct(nullBestCost)} | | | |`,
    `| … against the same process's runs before the idle rooms (machine drift included) | ${pct(driftCost)} | ${pct(nullDriftCost)} | | | |`,
    `| Server CPU per message, ${ROOMS} rooms | ${fmt(cpu.p.base, 1)} µs | ${fmt(cpu.n.base, 1)} µs | ${x(cpu.p.base, cpu.n.base)} | | |`,
    `| Server CPU per message, ${ROOMS} rooms + idle rooms | ${fmt(cpu.p.idle, 1)} µs | ${fmt(cpu.n.idle, 1)} µs | ${x(cpu.p.idle, cpu.n.idle)} | | |`,
    `| RSS per idle room (2 held polls each) | ${kib(perIdleRoom(parley))} | ${kib(perIdleRoom(nul))} | ${fmt(memRatio, 2)} × | ≤ 1.3 × null | ${verdict(memRatio <= 1.3)} |`,
  ].join('\n');

  // The load client is one node process: when it saturates a core, the null relay's msgs/s is the client's limit, not the relay's.
  const clientNote =
    `Load client busy in the best runs: ${pct(p.base.clientCpuShare)} of a core against Parley, ${pct(n.base.clientCpuShare)} against the null relay` +
    (n.base.clientCpuShare > 0.8
      ? '; the null relay was limited by the load client, so the throughput ratio flatters Parley and server CPU per message is the sharper comparison.'
      : '.');
  const method =
    `Measured with \`npm run bench\` on ${new Date().toISOString().slice(0, 10)} (Node ${process.version}, ${
      (await import('node:os')).cpus().length
    } shared cores, loopback). The bench compares Parley (\`RATE_LIMITS=off LOG_LEVEL=silent\`) with a null relay written inside it: a bare node:http server that pairs two bearer tokens and forwards each \`POST /send\` body into the partner's queue or held \`GET /wait\`, with nothing else (no framing, store, limits or loop detection). ` +
    `Both relays run tsc's output, as \`npm start\` does. Each relay runs in its own process with its own load-generating client process (node:http, keep-alive agent), and the same client code drives both. ` +
    `Latency is one room, from the start of \`/send\` to the end of the partner's already-held \`/wait\` response (${LATENCY_SAMPLES} samples after warm-up). ` +
    `Throughput is ${ROOMS} rooms whose two sides ping-pong continuously for ${RUN_MS / 1000} s; each message is one \`/send\` and one \`/wait\` answer; runs of the two relays are interleaved and the best of ${REPS} is kept, so the ratios come from the same conditions (server CPU per message: the server process's user + system CPU time over a run divided by the messages relayed, lowest of the runs). ` +
    `The idle figures add ${fmt(IDLE_ROOMS, 0)} paired rooms whose both sides hold a \`/wait\` (${fmt(2 * IDLE_ROOMS, 0)} open sockets, held by a process of their own, as agents on other machines would hold them, not by the load client), then repeat the throughput runs, interleaved with the runs of a twin: the same relay in a process of its own, started with it, that has done everything the target did, right after it (warm-up, latency and throughput runs, and sitting idle while other relays ran), except for keeping the idle rooms: the idle rooms are opened in rounds of ${IDLE_ROUND}, each target's then its twin's, and the twin's agents leave theirs at the end of each round; then target and twin each make one unrecorded run, and each of ${IDLE_REPS} runs is paired with a twin's run made next to it, and the throughput lost is the median over the pairs, since this shared machine's speed drifts between the first runs and the idle ones and even from one run to the next (the best run against the twin's best, and the loss against the first runs, are shown too). RSS per idle room is the server process's RSS after a forced GC with the idle rooms open, minus its RSS just before opening them, divided by ${fmt(IDLE_ROOMS, 0)}. ` +
    `${clientNote} Absolute numbers depend on the machine; the ratios are the point.`;

  let redisTable = '';
  if (onRedis) {
    const r = { base: best(onRedis.base), idle: best(onRedis.idle) };
    const brokerPerRoom = perIdleRoom(onRedis);
    const redisPerRoom = (onRedis.redisIdle! - onRedis.redisBefore!) / IDLE_ROOMS;
    const ratio = r.base.msgsPerS / p.base.msgsPerS;
    redisTable = [
      '| Redis backend (one broker) | On Redis | Memory backend | Redis / memory | Target | Result |',
      '|---|---:|---:|---:|---|:---:|',
      `| Throughput, ${ROOMS} rooms | ${fmt(r.base.msgsPerS, 0)} msgs/s | ${fmt(p.base.msgsPerS, 0)} msgs/s | ${fmt(ratio, 2)} × | ≥ 0.4 × memory | ${verdict(ratio >= 0.4)} |`,
      `| Throughput lost to its own idle rooms (against its runs before them) | ${pct(1 - r.idle.msgsPerS / r.base.msgsPerS)} | ${pct(driftCost)} | | | |`,
      `| Broker CPU per message | ${fmt(leastCpu(onRedis.base), 1)} µs | ${fmt(cpu.p.base, 1)} µs | ${x(leastCpu(onRedis.base), cpu.p.base)} | | |`,
      `| Memory per idle room: broker RSS + Redis used_memory | ${kib(brokerPerRoom)} + ${kib(redisPerRoom)} | ${kib(perIdleRoom(parley))} | ${x(brokerPerRoom + redisPerRoom, perIdleRoom(parley))} | | |`,
    ].join('\n');
  }

  const a = { base: best(acking.base), idle: best(acking.idle) };
  const ackTable = [
    '| Acknowledgement | Clients that ack | Clients that do not | Ack / no ack |',
    '|---|---:|---:|---:|',
    `| Throughput, ${ROOMS} rooms | ${fmt(a.base.msgsPerS, 0)} msgs/s | ${fmt(p.base.msgsPerS, 0)} msgs/s | ${x(a.base.msgsPerS, p.base.msgsPerS)} |`,
    `| Throughput lost to its own idle rooms (median of pairs against its twin) | ${pct(median(pairLosses(acking)))} | ${pct(idleCost)} | |`,
    `| Server CPU per message | ${fmt(leastCpu(acking.base), 1)} µs | ${fmt(cpu.p.base, 1)} µs | ${x(leastCpu(acking.base), cpu.p.base)} |`,
    `| RSS per idle room | ${kib(perIdleRoom(acking))} | ${kib(perIdleRoom(parley))} | ${x(perIdleRoom(acking), perIdleRoom(parley))} |`,
    `| Relay latency p50 / p99 | ${ms(acking, 0.5)} / ${ms(acking, 0.99)} | ${ms(parley, 0.5)} / ${ms(parley, 0.99)} | |`,
  ].join('\n');
  const ackMethod = `Acknowledgement: a third process pair runs the same broker with clients that send \`?ack=<last Parley-Event-Id>\` on every \`/wait\` (the idle rooms' held polls included), interleaved with the others; each event stays leased until the next wait names it. Idle rooms are opened two targets at a time (Parley with the null relay, then the acking and Redis targets), so idle losses compare like with like.`;

  const mcpRatio = best(mcp.mcp).msgsPerS / best(mcp.http).msgsPerS;
  const floorRatio = best(mcp.floor).msgsPerS / best(mcp.http).msgsPerS;
  const mcpTable = [
    '| Measure | MCP door (/mcp) | HTTP door | MCP / HTTP | Target | Result |',
    '|---|---:|---:|---:|---|:---:|',
    `| Relay latency p50, 1 room | ${fmt(percentile(mcp.latencyMs, 0.5), 2)} ms | ${ms(parley, 0.5)} | ${x(percentile(mcp.latencyMs, 0.5), percentile(parley.latencyMs, 0.5))} | | |`,
    `| Relay latency p99, 1 room | ${fmt(percentile(mcp.latencyMs, 0.99), 2)} ms | ${ms(parley, 0.99)} | ${x(percentile(mcp.latencyMs, 0.99), percentile(parley.latencyMs, 0.99))} | | |`,
    `| Throughput, ${ROOMS} rooms | ${fmt(best(mcp.mcp).msgsPerS, 0)} msgs/s | ${fmt(best(mcp.http).msgsPerS, 0)} msgs/s | ${fmt(mcpRatio, 2)} × | ≥ 0.5 × HTTP | ${verdict(mcpRatio >= 0.5)} |`,
    `| Server CPU per message, ${ROOMS} rooms | ${fmt(leastCpu(mcp.mcp), 1)} µs | ${fmt(leastCpu(mcp.http), 1)} µs | ${x(leastCpu(mcp.mcp), leastCpu(mcp.http))} | | |`,
    `| Load client CPU share in the best run | ${pct(best(mcp.mcp).clientCpuShare)} | ${pct(best(mcp.http).clientCpuShare)} | | | |`,
    `| SDK floor: an echo tool on the bare SDK, same client, ${ROOMS} sessions | ${fmt(best(mcp.floor).msgsPerS, 0)} calls/s | ${fmt(best(mcp.http).msgsPerS, 0)} msgs/s | ${fmt(floorRatio, 2)} × | | |`,
    `| … its server CPU per call (HTTP door: per message, a /send and a /wait) | ${fmt(leastCpu(mcp.floor), 1)} µs | ${fmt(leastCpu(mcp.http), 1)} µs | ${x(leastCpu(mcp.floor), leastCpu(mcp.http))} | | |`,
    `| MCP door against the SDK floor (throughput) | ${fmt(best(mcp.mcp).msgsPerS, 0)} msgs/s | floor ${fmt(best(mcp.floor).msgsPerS, 0)} calls/s | ${x(best(mcp.mcp).msgsPerS, best(mcp.floor).msgsPerS)} | | |`,
  ].join('\n');
  const mcpMethod =
    `MCP figures: the same Parley process and load-client process; each participant is an MCP session of the official SDK client over Streamable HTTP, and each turn is one \`parley_send\` that also waits for the answer (one tool call per message, where the HTTP door takes a \`/send\` and a \`/wait\`). ` +
    `MCP latency runs from the start of \`parley_send\` to the end of the partner's already-held \`parley_wait\` (${MCP_LATENCY_SAMPLES} samples); the HTTP latency is the one above. Throughput runs of the two doors are interleaved, best of ${REPS}. ` +
    `The SDK floor (broker/bench/mcp-floor.ts) is a server in its own process built as the MCP door is (an McpServer and Streamable HTTP transport per session, answers as SSE), whose one tool takes parley_send's arguments and echoes the text at once: no room, no partner, no Parley code. Driven by the same SDK client, interleaved with the two doors, it is the most any door built on this SDK can relay here; when it is itself below the target, the target is out of reach of the SDK, not of the door.`;

  log('\n## Results\n');
  log(table);
  if (redisTable) log(`\n${redisTable}`);
  log(`\n${ackTable}`);
  log('\n## MCP door\n');
  log(mcpTable);
  log(`\n${clientNote}`);

  log('\n## Loop detector cost\n');
  const detector = await detectorTable();
  log(detector ?? 'broker/bench/detector-bench.ts is not there yet: no detector figures.');

  writeFileSync(README_FILE, `${table}\n\n${method}\n${redisTable ? `\n${redisTable}\n` : ''}\n${ackTable}\n\n${ackMethod}\n\n${mcpTable}\n\n${mcpMethod}\n${detector ? `\n${detector}\n` : ''}`);
  log(`\nTable and method written to ${README_FILE}. Whole bench: ${fmt((Date.now() - started) / 1000, 0)} s.`);
}

/** The detector's own benchmark (another module, maybe not written yet): cost per message by message size. */
async function detectorTable(): Promise<string | undefined> {
  let mod: { benchDetector?: () => Promise<{ bytes: number; usPerMessage: number }[]> };
  try {
    const specifier = './detector-bench.js'; // a variable: the module may not exist when this is type-checked
    mod = await import(specifier);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ERR_MODULE_NOT_FOUND' && err.message.includes('detector-bench')) return undefined;
    throw e;
  }
  if (typeof mod.benchDetector !== 'function') return undefined;
  const rows = await mod.benchDetector();
  return ['| Message size | Detector time per message |', '|---:|---:|', ...rows.map((r) => `| ${fmt(r.bytes, 0)} B | ${fmt(r.usPerMessage, 1)} µs |`)].join('\n');
}

await main();
