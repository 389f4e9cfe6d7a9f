/**
 * Loop-detector cost: CPU µs per observed message at 100 B, 2 KB and 100 KB, with a running
 * room history (one detector fed a stream of distinct messages, as a busy room would). CPU time
 * of this process, best of 3 runs: wall time on a shared machine measures the neighbours.
 * `npm run bench` imports benchDetector(); run this file directly for the table alone.
 */
import { createLoopDetector } from '../src/loop-detector.js';

// Realistic material: prose, identifiers, paths, numbers, code, a little non-Latin text and emoji.
const WORDS =
  'the deploy migration replica index query timeout retry budget cluster pod service latency p99 rollback schema consumer producer cache lock review test pipeline shard worker queue metric alert config token session'.split(
    ' ',
  );
const SHAPES = [
  (r: () => number) => WORDS[Math.floor(r() * WORDS.length)],
  (r: () => number) => `${Math.floor(r() * 100000)}`,
  (r: () => number) => `\`svc_${Math.floor(r() * 900)}.handler\``,
  (r: () => number) => `/var/log/app-${Math.floor(r() * 50)}.log`,
  (r: () => number) => `${(r() * 100).toFixed(2)}%`,
  () => 'デプロイ完了',
  () => '✅',
  () => '\n```\n$ kubectl get pods -n prod\n```\n',
];

/** Deterministic generator, so runs compare. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function message(bytes: number, r: () => number): string {
  const parts: string[] = [];
  let len = 0;
  while (len < bytes) {
    const p = SHAPES[r() < 0.7 ? 0 : 1 + Math.floor(r() * (SHAPES.length - 1))](r);
    parts.push(p);
    len += Buffer.byteLength(p) + 1;
  }
  return parts.join(' ').slice(0, bytes);
}

async function measure(bytes: number, messages: number): Promise<number> {
  const r = rng(bytes);
  const texts = Array.from({ length: messages }, () => message(bytes, r));
  const warm = createLoopDetector();
  for (const t of texts.slice(0, Math.min(50, messages))) warm.observe(0, t, 'OVER');
  let best = Infinity;
  for (let run = 0; run < 3; run++) {
    const d = createLoopDetector();
    const start = process.cpuUsage();
    for (let i = 0; i < texts.length; i++) d.observe((i % 2) as 0 | 1, texts[i], 'OVER');
    const used = process.cpuUsage(start);
    best = Math.min(best, (used.user + used.system) / texts.length);
  }
  return best;
}

export async function benchDetector(): Promise<{ bytes: number; usPerMessage: number }[]> {
  const out: { bytes: number; usPerMessage: number }[] = [];
  for (const [bytes, n] of [
    [100, 20000],
    [2048, 3000],
    [100 * 1024, 60],
  ] as const) {
    out.push({ bytes, usPerMessage: Math.round((await measure(bytes, n)) * 10) / 10 });
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const { bytes, usPerMessage } of await benchDetector()) console.log(`${String(bytes).padStart(7)} B  ${usPerMessage} µs/message`);
}
