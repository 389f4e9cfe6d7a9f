/** BusyFirstMap: the token, room and held-wait tables that grow with idle rooms. */
import { describe, expect, it } from 'vitest';
import { BusyFirstMap } from '../src/backend/busy-first-map.js';

describe('BusyFirstMap', () => {
  it('answers as a plain Map would through 20,000 random operations, with its small Map overflowing often', () => {
    const busy = new BusyFirstMap<string, number>(16);
    const plain = new Map<string, number>();
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) >>> 0) % n;
    for (let i = 0; i < 20_000; i++) {
      const key = `k${rand(50)}`;
      const op = rand(4);
      if (op === 0) {
        busy.set(key, i);
        plain.set(key, i);
      } else if (op === 1) expect(busy.delete(key)).toBe(plain.delete(key));
      else if (op === 2) expect(busy.get(key)).toBe(plain.get(key));
      else expect(busy.has(key)).toBe(plain.has(key));
      expect(busy.size).toBe(plain.size);
    }
    expect(new Map(busy.entries())).toEqual(plain);
    expect([...busy.values()].sort()).toEqual([...plain.values()].sort());
  });

  it('keeps a deleted busy key as known-absent, and forgets nothing across many generations', () => {
    const m = new BusyFirstMap<number, string>(3);
    m.set(1, 'a');
    m.delete(1);
    expect(m.has(1)).toBe(false);
    for (let k = 2; k < 10; k++) m.set(k, String(k)); // each set is a few operations: generations pass
    expect(m.size).toBe(8);
    for (let k = 2; k < 10; k++) expect(m.get(k)).toBe(String(k));
    expect(m.get(1)).toBeUndefined();
    m.clear();
    expect([...m]).toEqual([]);
    expect(m.size).toBe(0);
  });

  it('may be changed while iterating (a drain answers every held wait)', () => {
    const m = new BusyFirstMap<number, number>(5);
    for (let k = 0; k < 10; k++) m.set(k, k);
    for (const [k] of m) m.delete(k);
    expect(m.size).toBe(0);
  });
});
