/**
 * A Map for tables that grow with idle rooms (token rows, rooms, inboxes, held waits) but are
 * used, message after message, for a few busy keys.
 *
 * Why: finding a key in a Map of thousands walks a hash chain whose other entries, and their key
 * strings, lie anywhere in a heap of 100 MB; on this class of VM each such step is a cache and TLB
 * miss. Measured with 5,000 idle rooms (10,000 held waits): `waiters.has()` took 2–8 µs against
 * 0.2 µs without them, and a miss costs most (it compares with every key in its chain).
 *
 * How: keys used lately live in small Maps in front, which stay in cache: `hot` (used in this
 * generation) and `prev` (the last one). A generation ends every `generationOps` operations:
 * what `prev` still holds was not used for a whole generation, and moves to `cold`. A key is in
 * one Map only, and a front Map is the truth for the keys it has, absence included (a deleted
 * busy key stays there as ABSENT, so the next wait of a busy token costs no miss in `cold`).
 */
const ABSENT: unique symbol = Symbol('absent');

export class BusyFirstMap<K, V> {
  private readonly cold = new Map<K, V>();
  private hot = new Map<K, V | typeof ABSENT>();
  private prev = new Map<K, V | typeof ABSENT>();
  private count = 0;
  private ops = 0;

  constructor(private readonly generationOps = 65_536) {}

  get size(): number {
    return this.count;
  }

  get(key: K): V | undefined {
    if (++this.ops >= this.generationOps) this.nextGeneration();
    const h = this.hot.get(key) ?? this.promote(key);
    return h === ABSENT ? undefined : h;
  }

  has(key: K): boolean {
    return this.get(key) !== undefined;
  }

  set(key: K, value: V): this {
    if (this.get(key) === undefined) this.count += 1; // now in `hot`
    this.hot.set(key, value);
    return this;
  }

  delete(key: K): boolean {
    const had = this.get(key) !== undefined; // now in `hot`
    if (had) {
      this.hot.set(key, ABSENT);
      this.count -= 1;
    }
    return had;
  }

  clear(): void {
    this.cold.clear();
    this.hot = new Map();
    this.prev = new Map();
    this.count = 0;
  }

  *entries(): IterableIterator<[K, V]> {
    for (const front of [this.hot, this.prev]) for (const [k, v] of [...front]) if (v !== ABSENT) yield [k, v];
    yield* [...this.cold];
  }

  *values(): IterableIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }

  /** Moves `key`'s entry, or the news that it has none, into `hot`. */
  private promote(key: K): V | typeof ABSENT {
    let v = this.prev.get(key);
    if (v !== undefined) this.prev.delete(key);
    else {
      v = this.cold.get(key) ?? ABSENT;
      if (v !== ABSENT) this.cold.delete(key);
    }
    this.hot.set(key, v);
    return v;
  }

  private nextGeneration(): void {
    this.ops = 0;
    for (const [k, v] of this.prev) if (v !== ABSENT) this.cold.set(k, v);
    this.prev = this.hot;
    this.hot = new Map();
  }
}
