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
import type { DetectorStore, GuardRefusal, InboxItem, RoomState } from '../ports.js';

type WithApply = Redis & {
  detectorApply(version: string, young: string, old: string, state: string, expected: number, stateJson: string, ttlMs: number, ...journal: number[]): Promise<number>;
  /** KEYS: the detector's four, the room   ARGV: version, state JSON, ttlMs, room read, room new, room ttlMs, journal… */
  detectorTurn(...keysAndArgs: (string | number)[]): Promise<number>;
  /** As detectorTurn, with PUSH_FN's keys and the sender's token after the room's, and PUSH_FN's arguments and the guard before the journal. */
  detectorTurnPush(...keysAndArgs: (string | number)[]): Promise<[number, (string | null)?]>;
};

/** A push's keys and arguments, in the order the scripts' PUSH_FN takes them. */
export type PushCall = (owner: string, item: InboxItem, receiptTtlMs?: number, lease?: boolean) => { keys: string[]; args: (string | number)[] };

/** The rooms' compare-and-set copies (see rooms.update in index.ts), which a send's turn swaps. */
export interface RoomCopies {
  key(id: number): string;
  ttlMs: number;
  /** The JSON this broker last saw, if any. */
  cached(id: number): string | undefined;
  /** Fresh from Redis; null when the room is gone. */
  read(id: number): Promise<string | null>;
  saw(id: number, raw: string): void;
  forget(id: number): void;
}

interface Copy {
  version: number;
  detector: LoopDetector;
  journal: number[];
}

/** What DETECTOR_TURN_PUSH's guard answers when it stores nothing. */
const GUARD_REFUSALS: Record<number, GuardRefusal> = { [-3]: 'stale', [-4]: 'inbox_full', [-5]: 'broker_full' };

/** Copies kept per broker; the oldest is dropped first (it is reloaded if its room speaks again). */
const COPIES_MAX = 10_000;

export function redisDetectors(r: Redis, prefix: string, ttlMs: number, rooms: RoomCopies, pushes: { call: PushCall; parse(item: string): InboxItem; tokenKey(hash: string): string }): DetectorStore {
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
      if (await stored(roomId, copy)) return result;
    }
    throw new Error('detector update kept conflicting');
  };
  /** Stores what the copy's journal changed, unless another broker changed the detector first. */
  const stored = async (roomId: number, copy: Copy): Promise<boolean> => {
    const version = await (r as WithApply).detectorApply(...keys(roomId), copy.version, JSON.stringify(copy.detector.state()), ttlMs, ...copy.journal);
    if (version < 0) {
      copies.delete(roomId); // judged on a stale copy: reload and judge again
      return false;
    }
    copy.version = version;
    remember(roomId, copy);
    return true;
  };

  /**
   * Judges on the local copy; an alarm is stored alone (the engine then pauses the room), else
   * the detector's change, the room's turn and the message the turn sends go to Redis as one
   * script: one round trip, and all land or none (then the room is read again, and if the
   * detector changed too, the message is judged again).
   */
  const observeTurn: DetectorStore['observeTurn'] = async (roomId, side, text, signal, turn, deliver) => {
    for (let attempt = 0; attempt < 100; attempt++) {
      const copy = copies.get(roomId) ?? (await load(roomId));
      copy.journal.length = 0;
      const alarm = copy.detector.observe(side, text, signal);
      if (alarm) {
        if (await stored(roomId, copy)) return { alarm };
        continue;
      }
      // Taken now: another send of this room may reuse the copy's journal while this one waits.
      const detectorKeys = [...keys(roomId), rooms.key(roomId)];
      const detector = [copy.version, JSON.stringify(copy.detector.state()), ttlMs];
      const journal = [...copy.journal];
      // Only the room changed (a presence write, say): the judgement still holds, so only the turn is
      // taken again on the room read afresh, and the detector is not reloaded and judged again.
      for (let fresh = false; ; fresh = true) {
        const cached = attempt === 0 && !fresh ? rooms.cached(roomId) : undefined;
        const raw = cached ?? (await rooms.read(roomId));
        if (!raw) {
          copies.delete(roomId); // judged, but nothing stored: the room is gone
          return { alarm: null };
        }
        const room = JSON.parse(raw) as RoomState;
        const result = turn(room);
        const next = JSON.stringify(room);
        // The message this turn sends, if any, is queued by the same script: a round trip less.
        const d = deliver?.(result);
        const push = d && pushes.call(d.owner, d.item, d.receiptTtlMs, d.lease);
        const g = d?.guard;
        const guard = g ? [g.roomId, g.maxMessages, g.maxBytes, g.maxTotalBytes] : ['', '', '', ''];
        const [version, head] = push
          ? await (r as WithApply).detectorTurnPush(...detectorKeys, ...push.keys, pushes.tokenKey(g?.sender ?? d.owner), ...detector, raw, next, rooms.ttlMs, ...push.args, ...guard, ...journal)
          : [await (r as WithApply).detectorTurn(...detectorKeys, ...detector, raw, next, rooms.ttlMs, ...journal)];
        const refused = GUARD_REFUSALS[version];
        if (refused) {
          copies.delete(roomId); // judged, but nothing stored
          return { alarm: null, refused };
        }
        if (version >= 0) {
          copy.version = version;
          remember(roomId, copy);
          rooms.saw(roomId, next);
          return { alarm: null, turn: result, head: head ? pushes.parse(head) : undefined };
        }
        if (version === -2) rooms.forget(roomId);
        if (version === -1 || fresh) break;
      }
      copies.delete(roomId);
    }
    throw new Error('send kept conflicting');
  };

  return {
    observe: (roomId, side, text, signal) => change(roomId, (d) => d.observe(side, text, signal)),
    observeTurn,
    reset: (roomId) => change(roomId, (d) => d.reset()).then(() => undefined),
    async delete(roomId) {
      copies.delete(roomId);
      await r.del(...keys(roomId));
    },
  };
}
