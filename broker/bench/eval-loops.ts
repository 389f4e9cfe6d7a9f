/**
 * Loop-detector evaluation on labelled corpora (format: ../shared/loop-corpus/README.md).
 *
 *   npm run eval:loops -- <corpus.jsonl>...             replay through a real broker over HTTP
 *   npm run eval:loops -- <corpus.jsonl>... --offline   feed the detector directly (fast, for tuning)
 *   … --no-formulas                                     without the formula word lists (offline)
 *   … --trace A-003                                     per-turn scores of one transcript (offline)
 *   … --leave-out kinds|languages                       held-out figures (offline, see below)
 *
 * Broker replay: per transcript a fresh room (host = A, joiner = B); the sender POSTs the
 * turn's full text to /send, the receiver collects it with /wait. The alarm turn is the first
 * /send answered 429 `loop_paused` (the broker refuses the triggering message).
 *
 * Held-out figures. The rules were written looking at every kind, so no split of these corpora
 * is a clean test of the rules themselves; what can be held out is the choice of knobs and the
 * language lists. `--leave-out kinds`: for each kind, the knobs are chosen from KNOB_GRID on all
 * the other transcripts, and that kind is scored with them. `--leave-out languages`: the same per
 * language (guessed from the text), and the held-out language is also run without the formula
 * word lists, so the detector has never seen a word of it.
 */
import { readFileSync } from 'node:fs';
import { createLoopDetector, type LoopDetectorOptions, type MessageScore } from '../src/loop-detector.js';

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

/** Knob values tried by the leave-out modes (the defaults are one point of this grid). */
export const KNOB_GRID: Partial<LoopDetectorOptions>[] = [];
for (const window of [5, 6, 7])
  for (const threshold of [3.5, 4, 4.5])
    for (const dryScore of [0.6, 0.7, 0.8])
      for (const factRate of [0.25, 0.3, 0.4]) for (const movingNews of [1, 2]) KNOB_GRID.push({ window, threshold, dryScore, factRate, movingNews });

const MARKER = /\[(OVER|STANDBY)\]\s*$/;

function signalOf(text: string): 'OVER' | 'STANDBY' | null {
  const m = MARKER.exec(text);
  return m ? (m[1] as 'OVER' | 'STANDBY') : null;
}

function replayOffline(t: Transcript, options: Partial<LoopDetectorOptions> = {}): number | null {
  const d = createLoopDetector(options);
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

/** The transcript's language, guessed from its script or, for Latin script, its commonest short words (code and identifiers left out). */
const languages = new WeakMap<Transcript, string>();
export function languageOf(t: Transcript): string {
  let lang = languages.get(t);
  if (!lang) languages.set(t, (lang = guessLanguage(t)));
  return lang;
}

function guessLanguage(t: Transcript): string {
  const text = t.turns
    .map((x) => x.text)
    .join('\n')
    .replace(/```[\s\S]*?```|`[^`]*`|\[(OVER|STANDBY)\]/g, ' ');
  const scripts: [string, RegExp][] = [
    ['ko', /\p{Script=Hangul}/gu],
    ['ja', /[\p{Script=Hiragana}\p{Script=Katakana}]/gu],
    ['zh', /\p{Script=Han}/gu],
    ['ar', /\p{Script=Arabic}/gu],
    ['hi', /\p{Script=Devanagari}/gu],
    ['th', /\p{Script=Thai}/gu],
    ['ru', /\p{Script=Cyrillic}/gu],
    ['el', /\p{Script=Greek}/gu],
    ['he', /\p{Script=Hebrew}/gu],
  ];
  const latin = (text.match(/\p{Script=Latin}/gu) ?? []).length;
  for (const [lang, re] of scripts) if ((text.match(re) ?? []).length > latin / 4) return lang === 'zh' && /[\p{Script=Hiragana}\p{Script=Katakana}]/u.test(text) ? 'ja' : lang;
  const words = text.toLowerCase().match(/\p{L}+/gu) ?? [];
  const marks: Record<string, string[]> = {
    en: ['the', 'and', 'is', 'to', 'it', 'of', 'you'],
    es: ['el', 'la', 'que', 'los', 'con', 'para', 'es'],
    pt: ['não', 'que', 'os', 'com', 'uma', 'para', 'é'],
    fr: ['le', 'les', 'est', 'et', 'des', 'pour', 'pas'],
    de: ['der', 'die', 'und', 'ist', 'nicht', 'das', 'mit'],
    it: ['il', 'che', 'è', 'non', 'per', 'della', 'gli'],
    tr: ['ve', 'bir', 'bu', 'için', 'da', 'de', 'değil'],
    pl: ['nie', 'się', 'jest', 'na', 'to', 'że', 'w'],
    id: ['yang', 'dan', 'sudah', 'di', 'ini', 'tidak', 'saya'],
    sw: ['na', 'kwa', 'ya', 'ni', 'wa', 'sana', 'kwenye'],
    vi: ['và', 'là', 'không', 'của', 'đã', 'được', 'có'],
  };
  let best = 'en';
  let most = 0;
  for (const [lang, list] of Object.entries(marks)) {
    const n = words.filter((w) => list.includes(w)).length;
    if (n > most) [best, most] = [lang, n];
  }
  return best;
}

/** Higher is better: loops caught within 8 turns, then any catch, minus false alarms (which cost most), minus slowness. */
function merit(outcomes: Outcome[]): number {
  const f = score(outcomes);
  const fast = outcomes.filter((o) => o.t.label === 'loop' && o.alarm !== null && o.alarm >= o.t.loop_from! && o.alarm - o.t.loop_from! <= 8).length;
  return fast + 0.5 * (f.caught - fast) - 3 * f.falseAlarms - 2 * f.early - 0.001 * (Number.isNaN(f.medianDelay) ? 0 : f.medianDelay * f.caught);
}

/** For each group: knobs chosen on every other transcript, then the group scored with them. */
function leaveOut(corpus: Transcript[], groupOf: (t: Transcript) => string | null, heldOptions: Partial<LoopDetectorOptions>): { held: Outcome[]; lines: string[] } {
  const grid = KNOB_GRID.map((knobs) => ({ knobs, alarms: new Map(corpus.map((t) => [t, replayOffline(t, knobs)])) }));
  const group = new Map(corpus.map((t) => [t, groupOf(t)]));
  const groups = [...new Set(group.values())].filter((g): g is string => g !== null).sort();
  const held: Outcome[] = [];
  const lines: string[] = [];
  for (const g of groups) {
    let best = grid[0];
    let bestMerit = -Infinity;
    for (const point of grid) {
      const m = merit(corpus.filter((t) => group.get(t) !== g).map((t) => ({ t, alarm: point.alarms.get(t)! })));
      if (m > bestMerit) [best, bestMerit] = [point, m];
    }
    const outcomes = corpus.filter((t) => group.get(t) === g).map((t) => ({ t, alarm: replayOffline(t, { ...best.knobs, ...heldOptions }) }));
    held.push(...outcomes);
    lines.push(`  ${g.padEnd(34)} ${line(score(outcomes))}   knobs ${JSON.stringify(best.knobs)}`);
  }
  return { held, lines };
}

function readCorpus(file: string): Transcript[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

async function main() {
  const args = process.argv.slice(2);
  const valueOf = (flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
  const files = args.filter((a, i) => !a.startsWith('--') && !['--trace', '--leave-out'].includes(args[i - 1]));
  if (!files.length) {
    console.error('usage: npm run eval:loops -- <corpus.jsonl>... [--offline] [--no-formulas] [--trace <id>] [--leave-out kinds|languages]');
    process.exit(2);
  }
  const corpus = files.flatMap(readCorpus);
  const options: Partial<LoopDetectorOptions> = args.includes('--no-formulas') ? { formulas: false } : {};
  const traceId = valueOf('--trace');
  if (traceId) {
    const t = corpus.find((x) => x.id === traceId);
    if (!t) throw new Error(`no transcript ${traceId}`);
    console.log(`${t.id} ${t.label} ${t.kind} loop_from=${t.loop_from} language=${languageOf(t)}`);
    let i = 0;
    const alarm = replayOffline(t, {
      ...options,
      trace: (s: MessageScore) => {
        const preview = t.turns[i].text.replace(/\s+/g, ' ').slice(0, 70);
        console.log(
          `${String(i++).padStart(2)} ${'AB'[s.sender]} tok=${String(s.tokens).padStart(3)} facts=${String(s.newFacts).padStart(3)} words=${String(s.newWords).padStart(3)} ` +
            `share=${s.newShare.toFixed(2)} ${s.social ? 'S' : ' '} score=${s.score.toFixed(2)} sum=${s.windowSum.toFixed(2)}  ${preview}`,
        );
      },
    });
    console.log(`alarm at ${alarm}`);
    return;
  }

  const leave = valueOf('--leave-out');
  if (leave) {
    if (leave !== 'kinds' && leave !== 'languages') throw new Error('--leave-out takes kinds or languages');
    const { held, lines } =
      leave === 'kinds'
        ? leaveOut(corpus, (t) => t.kind, options)
        : leaveOut(corpus, (t) => (languageOf(t) === 'en' ? null : languageOf(t)), { ...options, formulas: false });
    console.log(`Leave-${leave}-out on ${files.join(', ')} (${corpus.length} transcripts, ${KNOB_GRID.length} knob settings)`);
    if (leave === 'languages') console.log('each non-English language held out in turn, and run without the formula word lists');
    console.log(lines.join('\n'));
    console.log(`\nHELD-OUT ${leave.toUpperCase()}: ${line(score(held))}`);
    return;
  }

  const offline = args.includes('--offline') || options.formulas === false;
  const outcomes: Outcome[] = [];
  if (offline) {
    for (const t of corpus) outcomes.push({ t, alarm: replayOffline(t, options) });
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

  const how = offline ? `detector only, --offline${options.formulas === false ? ', no formula lists' : ''}` : 'replayed through a real broker over HTTP';
  console.log(`Loop detector on ${files.join(', ')} (${corpus.length} transcripts, ${how})\n`);
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
  for (const k of [...new Set(outcomes.map((o) => o.t.kind))].sort()) console.log(`  ${k.padEnd(28)} ${line(score(outcomes.filter((o) => o.t.kind === k)))}`);
  console.log('\nper language (guessed):');
  const langs = new Map(outcomes.map((o) => [o.t, languageOf(o.t)]));
  for (const l of [...new Set(langs.values())].sort()) console.log(`  ${l.padEnd(4)} ${line(score(outcomes.filter((o) => langs.get(o.t) === l)))}`);
  console.log(`\nSUMMARY: ${line(score(outcomes))}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
