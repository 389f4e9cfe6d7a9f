/**
 * Loop-detector evaluation on a labelled corpus (format: ../shared/loop-corpus/README.md).
 *
 *   npm run eval:loops -- <corpus.jsonl>            replay through a real broker over HTTP
 *   npm run eval:loops -- <corpus.jsonl> --offline  feed the detector directly (fast, for tuning)
 *   … --trace A-003                                 per-turn scores of one transcript (offline)
 *
 * Broker replay: per transcript a fresh room (host = A, joiner = B); the sender POSTs the
 * turn's full text to /send, the receiver collects it with /wait. The alarm turn is the first
 * /send answered 429 `loop_paused` (the broker refuses the triggering message).
 *
 * Leave-kinds-out: the knobs were tuned while looking only at the TUNING_KINDS below; the
 * other kinds were held out, and the report shows them separately.
 */
import { readFileSync } from 'node:fs';
import { createLoopDetector, type MessageScore } from '../src/loop-detector.js';

interface Turn {
  from: 'A' | 'B';
  text: string;
}
interface Transcript {
  id: string;
  label: 'loop' | 'ok';
  kind: string;
  loop_from: number | null;
  turns: Turn[];
}
interface Outcome {
  t: Transcript;
  alarm: number | null;
}

/** Kinds looked at while tuning the knobs; every other kind is held out. */
export const TUNING_KINDS = new Set([
  'gratitude_pingpong',
  'recap_loop',
  'status_poll_loop',
  'signoff_loop',
  'foreign_language_loop',
  'emoji_loop',
  'terse_code_review',
  'rapid_qa',
  'progress_reports',
  'brief_thanks_ending',
  'tricky_ci_polling',
  'tricky_revised_recap',
]);

const MARKER = /\[(OVER|STANDBY)\]\s*$/;

function signalOf(text: string): 'OVER' | 'STANDBY' | null {
  const m = MARKER.exec(text);
  return m ? (m[1] as 'OVER' | 'STANDBY') : null;
}

function replayOffline(t: Transcript, trace?: (s: MessageScore) => void): number | null {
  const d = createLoopDetector({ trace });
  for (let i = 0; i < t.turns.length; i++) {
    const { from, text } = t.turns[i];
    const m = MARKER.exec(text);
    const body = (m ? text.slice(0, m.index) : text).replace(/\s+$/, '');
    if (d.observe(from === 'A' ? 0 : 1, body, signalOf(text))) return i;
  }
  return null;
}

type Call = (method: string, path: string, token?: string, body?: string, type?: string) => Promise<{ status: number; text: string }>;

function httpClient(base: string): Call {
  return async (method, path, token, body, type = 'text/plain') => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = type;
    const res = await fetch(base + path, { method, headers, body });
    return { status: res.status, text: await res.text() };
  };
}

/** Read the receiver's queue until a partner message arrives (broker notices are skipped). */
async function receive(call: Call, token: string): Promise<void> {
  for (let i = 0; i < 10; i++) {
    const r = await call('GET', '/wait?timeout=5', token);
    if (r.status !== 200) throw new Error(`/wait answered ${r.status}: ${r.text}`);
    if (r.text.startsWith('MESSAGE_RECEIVED\n┌─')) return;
    if (r.text.startsWith('TIMEOUT')) throw new Error('message not delivered');
  }
  throw new Error('too many notices');
}

async function replayBroker(call: Call, t: Transcript): Promise<number | null> {
  const setup = await call('POST', '/setup', undefined, JSON.stringify({ type: 'standard' }), 'application/json');
  const { token: a, code } = JSON.parse(setup.text);
  const join = await call('POST', `/register-and-join/${code}`);
  const { token: b } = JSON.parse(join.text);
  const tokens = { A: a as string, B: b as string };
  try {
    for (let i = 0; i < t.turns.length; i++) {
      const { from, text } = t.turns[i];
      const r = await call('POST', '/send', tokens[from], text);
      if (r.status === 429 && JSON.parse(r.text).code === 'loop_paused') return i;
      if (r.status !== 200) throw new Error(`${t.id} turn ${i}: /send answered ${r.status}: ${r.text}`);
      await receive(call, tokens[from === 'A' ? 'B' : 'A']);
    }
    return null;
  } finally {
    await call('POST', '/leave', tokens.B);
    await call('POST', '/leave', tokens.A);
  }
}

const median = (xs: number[]) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((x, y) => x - y);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

export interface Figures {
  loops: number;
  caught: number;
  early: number;
  ok: number;
  falseAlarms: number;
  medianDelay: number;
  maxDelay: number;
}

export function score(outcomes: Outcome[]): Figures {
  const loops = outcomes.filter((o) => o.t.label === 'loop');
  const oks = outcomes.filter((o) => o.t.label === 'ok');
  const delays = loops.filter((o) => o.alarm !== null && o.alarm >= o.t.loop_from!).map((o) => o.alarm! - o.t.loop_from!);
  return {
    loops: loops.length,
    caught: delays.length,
    early: loops.filter((o) => o.alarm !== null && o.alarm < o.t.loop_from!).length,
    ok: oks.length,
    falseAlarms: oks.filter((o) => o.alarm !== null).length,
    medianDelay: median(delays),
    maxDelay: delays.length ? Math.max(...delays) : NaN,
  };
}

const line = (f: Figures) =>
  [
    f.loops ? `recall ${(f.caught / f.loops).toFixed(2)} (${f.caught}/${f.loops}), early ${f.early}` : '',
    f.ok ? `false alarms ${f.falseAlarms}/${f.ok}` : '',
    f.caught ? `turns to alarm median ${f.medianDelay} max ${f.maxDelay}` : '',
  ]
    .filter(Boolean)
    .join(', ');

async function main() {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith('--') && args[args.indexOf(a) - 1] !== '--trace');
  if (!file) {
    console.error('usage: npm run eval:loops -- <corpus.jsonl> [--offline] [--trace <id>]');
    process.exit(2);
  }
  const corpus: Transcript[] = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
  const traceId = args.includes('--trace') ? args[args.indexOf('--trace') + 1] : undefined;
  if (traceId) {
    const t = corpus.find((x) => x.id === traceId);
    if (!t) throw new Error(`no transcript ${traceId}`);
    console.log(`${t.id} ${t.label} ${t.kind} loop_from=${t.loop_from}`);
    let i = 0;
    const alarm = replayOffline(t, (s) => {
      const preview = t.turns[i].text.replace(/\s+/g, ' ').slice(0, 70);
      console.log(
        `${String(i++).padStart(2)} ${'AB'[s.sender]} tok=${String(s.tokens).padStart(3)} facts=${String(s.newFacts).padStart(3)} words=${String(s.newWords).padStart(3)} ` +
          `share=${s.newShare.toFixed(2)} ${s.social ? 'S' : ' '} score=${s.score.toFixed(2)} sum=${s.windowSum.toFixed(2)}  ${preview}`,
      );
    });
    console.log(`alarm at ${alarm}`);
    return;
  }

  const offline = args.includes('--offline');
  const outcomes: Outcome[] = [];
  if (offline) {
    for (const t of corpus) outcomes.push({ t, alarm: replayOffline(t) });
  } else {
    const { startBroker } = await import('../src/server.js');
    const broker = await startBroker({ env: { RATE_LIMITS: 'off', HTTP_PORT: '0', HTTP_HOST: '127.0.0.1', LOG_LEVEL: 'silent' } });
    try {
      const call = httpClient(broker.url);
      for (const t of corpus) outcomes.push({ t, alarm: await replayBroker(call, t) });
    } finally {
      await broker.close();
    }
  }

  console.log(`Loop detector on ${file} (${corpus.length} transcripts, ${offline ? 'detector only, --offline' : 'replayed through a real broker over HTTP'})\n`);
  console.log('per transcript (alarm turn / loop_from):');
  for (const o of outcomes) {
    const verdict =
      o.t.label === 'ok'
        ? o.alarm === null
          ? 'ok'
          : `FALSE ALARM at ${o.alarm}`
        : o.alarm === null
          ? 'MISSED'
          : o.alarm < o.t.loop_from!
            ? `EARLY at ${o.alarm}`
            : `caught +${o.alarm - o.t.loop_from!}`;
    if (verdict !== 'ok') console.log(`  ${o.t.id} ${o.t.kind}: ${verdict}`);
  }
  console.log('\nper kind:');
  const kinds = [...new Set(outcomes.map((o) => o.t.kind))].sort();
  for (const k of kinds) {
    const f = score(outcomes.filter((o) => o.t.kind === k));
    const tag = TUNING_KINDS.has(k) ? 'tuned ' : 'held  ';
    console.log(`  ${tag}${k.padEnd(28)} ${line(f)}`);
  }
  const tuned = score(outcomes.filter((o) => TUNING_KINDS.has(o.t.kind)));
  const held = score(outcomes.filter((o) => !TUNING_KINDS.has(o.t.kind)));
  const all = score(outcomes);
  console.log('\nleave-kinds-out (knobs tuned looking only at the "tuned" kinds):');
  console.log(`  tuned kinds:    ${line(tuned)}`);
  console.log(`  held-out kinds: ${line(held)}`);
  console.log(`\nSUMMARY: ${line(all)}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
