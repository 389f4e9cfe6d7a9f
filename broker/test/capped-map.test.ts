/** CappedMap: the bounded tables behind receipts, idempotency keys and the Redis backend's copies. */
import { describe, expect, it } from 'vitest';
import { CappedMap } from '../src/backend/capped-map.js';

describe('CappedMap', () => {
  it('holds at most its cap and drops the oldest first, through many rounds of eviction', () => {
    const m = new CappedMap<number, number>(100);
    for (let i = 0; i < 10_000; i++) {
      m.set(i, i);
      expect(m.size).toBe(Math.min(i + 1, 100));
    }
    expect([...m.keys()]).toEqual(Array.from({ length: 100 }, (_, i) => 9_900 + i));
  });

  it('setting an existing key drops nothing; deleting and setting again makes it the newest', () => {
    const m = new CappedMap<string, number>(3);
    for (const k of ['a', 'b', 'c']) m.set(k, 1);
    m.set('a', 2); // an update, not an insertion
    expect([...m.entries()]).toEqual([['a', 2], ['b', 1], ['c', 1]]);
    m.delete('a');
    m.set('a', 3); // now the newest: b goes first
    m.set('d', 1);
    expect([...m.keys()]).toEqual(['c', 'a', 'd']);
  });

  it('keeps working once emptied, or when entries leave by other ways', () => {
    const m = new CappedMap<number, number>(2);
    for (let i = 0; i < 5; i++) m.set(i, i);
    m.clear();
    for (let i = 10; i < 15; i++) m.set(i, i);
    expect([...m.keys()]).toEqual([13, 14]);
    m.delete(13);
    m.delete(14);
    m.set(20, 0);
    m.set(21, 0);
    m.set(22, 0);
    expect([...m.keys()]).toEqual([21, 22]);
  });
});
