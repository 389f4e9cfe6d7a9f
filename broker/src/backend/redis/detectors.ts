/**
 * Loop detectors in Redis. A detector's memory is two generations of up to a few thousand keyed
 * hashes; writing it whole on every message cost more than the rest of a send. So each room's
 * detector lives in Redis as a version, two sets and a small state, and each broker keeps a
 * copy of the detectors it fed last: a send judges on the local copy, then replays only the keys
 * it remembered on Redis's, if nobody changed it since (else it reloads and judges again).
 */
import type { Redis } from 'ioredis';
import { createLoopDetector, type LoopDetector, type LoopDetectorSnapshot } from '../../loop-detector.js';
import { CappedMap } from '../capped-map.js';
import type { DetectorStore } from '../ports.js';

type WithApply = Redis & {
  detectorApply(version: string, young: string, old: string, state: string, expected: number, stateJson: string, ttlMs: number, ...journal: number[]): Promise<number>;
};

interface Copy {
  version: number;
  detector: LoopDetector;
  journal: number[];
}

/** Copies kept per broker; the oldest is dropped first (it is reloaded if its room speaks again). */
const COPIES_MAX = 10_000;

export function redisDetectors(r: Redis, prefix: string, ttlMs: number): DetectorStore {
  const keys = (roomId: number) => {
    const base = `${prefix}det:{${roomId}}:`; // one hash slot per room, for Redis Cluster
    return [`${base}v`, `${base}y`, `${base}o`, `${base}s`] as const;
  };
  const copies = new CappedMap<number, Copy>(COPIES_MAX);

  const load = async (roomId: number): Promise<Copy> => {
    const [v, y, o, s] = keys(roomId);
    const res = (await r.multi().get(v).smembers(y).smembers(o).get(s).exec()) ?? [];
    const [version, young, old, state] = res.map(([err, value]) => {
      if (err) throw err;
      return value;
    }) as [string | null, string[], string[], string | null];
    const journal: number[] = [];
    const snapshot: LoopDetectorSnapshot | undefined = state ? { ...JSON.parse(state), young: young.map(Number), old: old.map(Number) } : undefined;
    const copy = { version: Number(version ?? 0), detector: createLoopDetector({}, snapshot, journal), journal };
    remember(roomId, copy);
    return copy;
  };
  const remember = (roomId: number, copy: Copy) => {
    copies.delete(roomId); // and set again: the newest
    copies.set(roomId, copy);
  };

  /** Runs `fn` on an up-to-date copy and stores what it changed; retried when another broker got there first. */
  const change = async <T>(roomId: number, fn: (d: LoopDetector) => T): Promise<T> => {
    for (let attempt = 0; attempt < 100; attempt++) {
      const copy = copies.get(roomId) ?? (await load(roomId));
      copy.journal.length = 0;
      const result = fn(copy.detector);
      const version = await (r as WithApply).detectorApply(...keys(roomId), copy.version, JSON.stringify(copy.detector.state()), ttlMs, ...copy.journal);
      if (version >= 0) {
        copy.version = version;
        remember(roomId, copy);
        return result;
      }
      copies.delete(roomId); // judged on a stale copy: reload and judge again
    }
    throw new Error('detector update kept conflicting');
  };

  return {
    observe: (roomId, side, text, signal) => change(roomId, (d) => d.observe(side, text, signal)),
    reset: (roomId) => change(roomId, (d) => d.reset()).then(() => undefined),
    async delete(roomId) {
      copies.delete(roomId);
      await r.del(...keys(roomId));
    },
  };
}
