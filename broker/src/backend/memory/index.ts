/**
 * The default state backend: one process. Tokens, rooms and codes in sql.js (schema-checked, no
 * column can hold text), everything else in Maps. Every port answers synchronously, so each
 * engine step is atomic by construction; expiries run on per-item timers.
 */
import { randomBytes } from 'node:crypto';
import { createLoopDetector, type LoopDetector } from '../../loop-detector.js';
import { BucketCounts } from '../../client-address.js';
import { BusyFirstMap } from '../busy-first-map.js';
import { CappedMap } from '../capped-map.js';
import { keyedHasher, type QueueSize, type Fate, type InboxItem, type InboxStore, type RoomState, type StateBackend } from '../ports.js';
import type { Signal } from '../../engine/events.js';
import { Store } from './sql-store.js';

interface Inbox {
  items: InboxItem[];
  bytes: number;
  /** The item handed out and not yet settled; it stays first in line. */
  inflight: InboxItem | null;
  timers: Map<InboxItem, NodeJS.Timeout>;
}

export async function memoryBackend(opts: { secret?: string } = {}): Promise<StateBackend & { store: Store }> {
  const store = await Store.open();
  // A per-boot key unless a shared secret is given: a dump of one run cannot be replayed on another.
  const key = opts.secret ? Buffer.from(opts.secret) : randomBytes(32);
  const rooms = new BusyFirstMap<number, RoomState>();
  const detectors = new Map<number, LoopDetector>();
  // Inboxes by owner; with acknowledging clients, every idle room keeps one (its last event stays leased).
  const boxes = new BusyFirstMap<string, Inbox>();
  let total = 0;
  let expired: (owner: string, item: InboxItem) => void = () => {};
  let woken: (owner: string) => void = () => {};
  // Receipts are bounded maps in insertion order (oldest dropped first), expired on read: no timer per message.
  const fates = new CappedMap<string, { sender: string; fate: Fate; until: number }>(RECEIPTS_MAX);
  const idem = new CappedMap<string, { id: string; until: number }>(RECEIPTS_MAX);
  const doorSessions = new CappedMap<string, { value: string; until: number }>(RECEIPTS_MAX);
  // Per-address caps: live tokens and open rooms per bucket.
  const tokenBucket = new Map<string, string>();
  const held = { tokens: new BucketCounts(), rooms: new BucketCounts() };

  const box = (owner: string): Inbox => {
    let b = boxes.get(owner);
    if (!b) boxes.set(owner, (b = { items: [], bytes: 0, inflight: null, timers: new Map() }));
    return b;
  };
  const forget = (owner: string, b: Inbox) => {
    if (b.items.length === 0 && !b.inflight) boxes.delete(owner);
  };
  const arm = (owner: string, b: Inbox, item: InboxItem) => {
    const t = setTimeout(() => {
      b.timers.delete(item);
      if (b.inflight === item) b.inflight = null;
      else {
        const i = b.items.indexOf(item);
        if (i < 0) return;
        b.items.splice(i, 1);
      }
      b.bytes -= item.bytes;
      total -= item.bytes;
      forget(owner, b);
      expired(owner, item);
    }, Math.max(0, item.expiresAt - Date.now()));
    t.unref();
    b.timers.set(item, t);
  };
  const drop = (b: Inbox, item: InboxItem) => {
    clearTimeout(b.timers.get(item));
    b.timers.delete(item);
    b.bytes -= item.bytes;
    total -= item.bytes;
  };

  const setFate = (messageId: string, sender: string, fate: Fate, ttlMs: number) => {
    const known = fates.get(messageId);
    if (!known) fates.set(messageId, { sender, fate, until: Date.now() + ttlMs });
    else {
      known.fate = fate;
      known.until = Date.now() + ttlMs;
    }
  };

  const withRoom = (h: string) => {
    const row = store.getToken(h);
    return row && { row, room: row.roomId === null ? undefined : rooms.get(row.roomId) };
  };

  /** Atomic by construction: one process, and no await inside. */
  const updateRoom = <R>(id: number, fn: (room: RoomState) => R): R | undefined => {
    const room = rooms.get(id);
    if (!room) return undefined;
    const headless = room.headless;
    const result = fn(room);
    if (room.headless !== headless) store.setHeadless(id, room.headless); // the schema's mirror of the rule
    return result;
  };
  const observe = (roomId: number, side: 0 | 1, text: string, signal: Signal | null) => {
    let d = detectors.get(roomId);
    // Made on the first message: an idle room costs no detector memory.
    if (!d) detectors.set(roomId, (d = createLoopDetector()));
    return d.observe(side, text, signal);
  };
  const inboxes: InboxStore = {
    push(owner, item, receiptTtlMs, lease) {
      if (receiptTtlMs !== undefined && item.from) setFate(item.event.id, item.from, 'queued', receiptTtlMs);
      const b = box(owner);
      b.items.push(item);
      b.bytes += item.bytes;
      total += item.bytes;
      arm(owner, b, item);
      return lease ? (inboxes.lease(owner) as InboxItem | undefined) : undefined;
    },
    lease(owner) {
      const b = boxes.get(owner);
      if (!b) return undefined;
      if (!b.inflight) b.inflight = b.items.shift() ?? null;
      return b.inflight ?? undefined;
    },
    ack(owner, id, receipt) {
      if (receipt) setFate(id, receipt.sender, receipt.fate, receipt.ttlMs);
      const b = boxes.get(owner);
      if (!b?.inflight || b.inflight.event.id !== id) return false;
      drop(b, b.inflight);
      b.inflight = null;
      forget(owner, b);
      return true;
    },
    nack(owner, id, minExpiresAt) {
      const b = boxes.get(owner);
      const item = b?.inflight;
      if (!b || !item || item.event.id !== id) return;
      b.inflight = null;
      b.items.unshift(item);
      if (item.expiresAt < minExpiresAt) {
        item.expiresAt = minExpiresAt;
        clearTimeout(b.timers.get(item));
        arm(owner, b, item);
      }
    },
    clear(owner) {
      const b = boxes.get(owner);
      if (!b) return [];
      const all = b.inflight ? [b.inflight, ...b.items] : b.items;
      for (const item of all) drop(b, item);
      boxes.delete(owner);
      return all;
    },
    size(owner) {
      const b = boxes.get(owner);
      return b ? { count: b.items.length + (b.inflight ? 1 : 0), bytes: b.bytes, total } : { count: 0, bytes: 0, total };
    },
    unreadBySender() {
      const counts = new Map<string, number>();
      for (const b of boxes.values())
        for (const item of b.inflight ? [b.inflight, ...b.items] : b.items) if (item.from) counts.set(item.from, (counts.get(item.from) ?? 0) + 1);
      return counts;
    },
    onExpired(fn) {
      expired = fn;
    },
  };

  return {
    name: 'memory',
    store,
    clock: { now: Date.now },
    hasher: keyedHasher(key),
    tokens: {
      add(h, at, quota) {
        if (quota && !held.tokens.take(quota.bucket, quota.max)) return false;
        store.addToken(h, at);
        if (quota) tokenBucket.set(h, quota.bucket);
        return true;
      },
      get: (h) => store.getToken(h),
      withRoom: (h) => withRoom(h),
      forSend(h) {
        const found = withRoom(h);
        const other = found?.room?.members.find((m) => m.hash !== h);
        return { found, partner: other && { hash: other.hash, queued: inboxes.size(other.hash) as QueueSize } };
      },
      leaseOrRoom(h, ack) {
        let head = inboxes.lease(h) as InboxItem | undefined;
        if (head && ack && head.event.id === ack.id) {
          inboxes.ack(h, ack.id, head.from ? { sender: head.from, fate: 'acknowledged', ttlMs: ack.receiptTtlMs } : undefined);
          head = inboxes.lease(h) as InboxItem | undefined;
        }
        return head ? { head } : { head: undefined, found: withRoom(h) };
      },
      touch: (h, at) => store.touchToken(h, at),
      setRoom: (h, id) => store.setTokenRoom(h, id),
      delete(h) {
        store.deleteToken(h);
        const bucket = tokenBucket.get(h);
        if (bucket !== undefined) held.tokens.give(bucket);
        tokenBucket.delete(h);
      },
      expired: (now) => store.expiredTokens(now),
    },
    codes: {
      add: (h, id, kind, at) => store.addCode(h, id, kind, at),
      take: (h, now) => store.takeCode(h, now),
      sweep: (now) => store.sweepCodes(now),
    },
    rooms: {
      create(init, now, quota) {
        if (quota && !held.rooms.take(quota.bucket, quota.max)) return undefined;
        const id = store.addRoom(init.kind, init.creator, init.headless, now);
        const room: RoomState = { ...init, id, bucket: quota?.bucket ?? '' };
        rooms.set(id, room);
        return room;
      },
      get: (id) => rooms.get(id),
      update: updateRoom,
      delete(id) {
        const bucket = rooms.get(id)?.bucket;
        if (bucket) held.rooms.give(bucket);
        rooms.delete(id);
        detectors.delete(id);
        store.deleteRoom(id);
      },
      count: () => rooms.size,
    },
    inboxes,
    bus: {
      wake: (owner) => woken(owner),
      onWake(fn) {
        woken = fn;
      },
    },
    detectors: {
      observe,
      observeTurn(roomId, side, text, signal, turn, deliver) {
        const alarm = observe(roomId, side, text, signal);
        if (alarm) return { alarm };
        const taken = updateRoom(roomId, turn);
        const d = taken === undefined ? undefined : deliver?.(taken);
        return { alarm, turn: taken, head: d && (inboxes.push(d.owner, d.item, d.receiptTtlMs, d.lease) as InboxItem | undefined) };
      },
      reset: (roomId) => detectors.get(roomId)?.reset(),
      delete: (roomId) => void detectors.delete(roomId),
    },
    receipts: {
      setFate,
      fate: (messageId) => live(fates, messageId),
      recall: (sender, key) => live(idem, `${sender}:${key}`)?.id,
      remember(sender, key, id, ttlMs) {
        idem.set(`${sender}:${key}`, { id, until: Date.now() + ttlMs });
      },
    },
    sessions: {
      get(key, ttlMs) {
        const r = live(doorSessions, key);
        if (r) r.until = Date.now() + ttlMs;
        return r?.value;
      },
      set(key, value, ttlMs) {
        doorSessions.set(key, { value, until: Date.now() + ttlMs });
      },
      delete(key) {
        const r = live(doorSessions, key);
        doorSessions.delete(key);
        return r?.value;
      },
    },
    ready: () => true,
    close() {
      for (const b of boxes.values()) for (const t of b.timers.values()) clearTimeout(t);
      boxes.clear();
    },
  };
}

const RECEIPTS_MAX = 50_000;

function live<V extends { until: number }>(m: Map<string, V>, key: string): V | undefined {
  const v = m.get(key);
  if (v && v.until <= Date.now()) m.delete(key);
  return v && v.until > Date.now() ? v : undefined;
}
