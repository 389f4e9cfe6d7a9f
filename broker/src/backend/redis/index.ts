/**
 * The shared state backend: every port in Redis (or Valkey), so several brokers serve one set of
 * rooms and a session outlives the broker that served it. Chosen by STATE_URL=redis://…
 *
 * Atomicity, as ports.ts asks: codes are taken with GETDEL; a room changes by compare-and-set
 * (a Lua script swaps the JSON only if nobody changed it since it was read; the engine's callback
 * runs again on a conflict); inbox leases, acks and requeues are Lua scripts on the owner's list
 * and in-flight key. Expiries are sorted sets swept by every broker, the first one to remove an
 * entry acts on it. Held waits stay on their broker and are woken through pub/sub (or directly, when the message is queued by the broker that holds the wait).
 *
 * Privacy: message text sits in Redis only inside queued items, which are deleted on
 * acknowledgement and carry a TTL; detector state is numbers (keyed hashes); no persistence is
 * configured by the shipped compose file (--save '' --appendonly no).
 */
import { Redis } from 'ioredis';
import { keyedHasher, type CodeKind, type Fate, type InboxItem, type InboxStore, type RoomState, type StateBackend, type TokenRow } from '../ports.js';
import { CappedMap } from '../capped-map.js';
import { redisDetectors, type PushCall } from './detectors.js';
import { sealer } from './sealed.js';
import { DETECTOR_APPLY, DETECTOR_TURN, DETECTOR_TURN_PUSH, FOR_SEND, INBOX_SCRIPTS, LEASE_OR_ROOM, PUSH_KEYS, QUOTA_SCRIPTS, ROOM_CAS, TOKEN_AND_ROOM } from './scripts.js';

const P = 'parley:';
/** Key prefixes the scripts append a room id, token hash or event id to (see `k`). */
const prefix = { room: `${P}room:`, inbox: `${P}inbox:`, inflight: `${P}inflight:`, fate: `${P}fate:` };
const k = {
  token: (h: string) => `${P}tok:${h}`,
  tokenExpiry: `${P}tok:exp`,
  code: (h: string) => `${P}code:${h}`,
  codeExpiry: `${P}code:exp`,
  room: (id: number) => `${prefix.room}${id}`,
  roomSeq: `${P}room:seq`,
  rooms: `${P}rooms`,
  inbox: (o: string) => `${prefix.inbox}${o}`,
  inflight: (o: string) => `${prefix.inflight}${o}`,
  inboxBytes: `${P}inbox:bytes`,
  totalBytes: `${P}bytes`,
  inboxExpiry: `${P}inbox:exp`,
  fate: (id: string) => `${prefix.fate}${id}`,
  idem: (s: string, key: string) => `${P}idem:${s}:${key}`,
  session: (h: string) => `${P}sess:${h}`,
  wake: `${P}wake`,
  /** Per-address caps: live tokens and open rooms per address bucket. */
  tokenQuota: `${P}quota:tokens`,
  roomQuota: `${P}quota:rooms`,
};

/** A receipt as stored: the sender's token hash and the fate. */
const fateValue = (sender: string, fate: Fate) => `${sender}|${fate}`;

/** A token's hash fields as a row; undefined when the token is gone. */
function tokenRow(hash: string, f: Record<string, string>): TokenRow | undefined {
  if (!f.e) return undefined;
  return { hash, roomId: f.r ? Number(f.r) : null, roomsCreated: Number(f.c), expiresAt: Number(f.e) };
}

/** [k1, v1, k2, v2…] as [k, v] pairs (HGETALL's reply inside a script). */
function* pairs(flat: string[]): Iterable<[string, string]> {
  for (let i = 0; i + 1 < flat.length; i += 2) yield [flat[i], flat[i + 1]];
}

/** Rooms whose JSON a broker keeps to try its compare-and-set on (see rooms.update); the oldest go first. */
const ROOMS_SEEN_MAX = 1_000;
/** Token rows kept for sends (two per busy room). */
const SEND_ROWS_MAX = 2 * ROOMS_SEEN_MAX;

/** Safety TTL on every key: nothing outlives its longest legitimate life by more than this. */
const SAFETY_MS = 24 * 3600_000;

type Scripted = Redis & {
  casRoom(key: string, old: string, next: string, ttlMs: number): Promise<number>;
  tokenAndRoom(token: string, roomPrefix: string): Promise<[string[], string | null] | null>;
  leaseOrRoom(list: string, inflight: string, token: string, bytesKey: string, totalKey: string, expiryKey: string, ttlMs: number, roomPrefix: string, owner: string, ack: string, fatePrefix: string, fateTtlMs: number | ''): Promise<[string | null, string[]?, (string | null)?]>;
  forSend(token: string, bytesKey: string, totalKey: string, roomPrefix: string, inboxPrefix: string, inflightPrefix: string, me: string): Promise<[string[] | null, string | null, string | null, number, number, number]>;
  /** PUSH_FN's keys and arguments, as pushCall gives them. */
  inboxPush(...keysAndArgs: (string | number)[]): Promise<string | null>;
  inboxLease(list: string, inflight: string, ttlMs: number): Promise<string | null>;
  inboxSize(list: string, inflight: string, bytesKey: string, totalKey: string, owner: string): Promise<[number, number, number]>;
  inboxAck(inflight: string, bytesKey: string, totalKey: string, expiryKey: string, fateKey: string, owner: string, id: string, fate: string, fateTtlMs: number | ''): Promise<number>;
  inboxNack(list: string, inflight: string, expiryKey: string, owner: string, id: string, minExpiresAt: number): Promise<number>;
  inboxClear(list: string, inflight: string, bytesKey: string, totalKey: string, expiryKey: string, owner: string): Promise<string[]>;
  inboxExpireOne(list: string, inflight: string, bytesKey: string, totalKey: string, expiryKey: string, owner: string, id: string, member: string): Promise<string | null>;
  quotaTake(counts: string, bucket: string, max: number): Promise<number>;
  quotaGive(counts: string, bucket: string): Promise<number>;
};

export interface RedisBackendOptions {
  url: string;
  /** Shared by every broker, so all of them hash tokens and codes alike. */
  secret: string;
  /** How often this broker sweeps due inbox expiries. */
  sweepMs?: number;
}

export async function redisBackend(opts: RedisBackendOptions): Promise<StateBackend> {
  // No auto-pipelining: it keeps one batch in flight at a time, so under load each command also
  // waits for the batch before it. With a few scripts per message, plain writes relayed 1.1 to 1.3 ×
  // as many messages per second (paired runs of the two builds on one Redis).
  const r = new Redis(opts.url, { maxRetriesPerRequest: 2, enableOfflineQueue: false, lazyConnect: true }) as Scripted;
  r.on('error', () => undefined); // surfaced through ready() and refused requests, never a crash
  r.defineCommand('casRoom', { numberOfKeys: 1, lua: ROOM_CAS });
  r.defineCommand('tokenAndRoom', { numberOfKeys: 1, lua: TOKEN_AND_ROOM });
  r.defineCommand('leaseOrRoom', { numberOfKeys: 6, lua: LEASE_OR_ROOM });
  r.defineCommand('forSend', { numberOfKeys: 3, lua: FOR_SEND });
  r.defineCommand('detectorApply', { numberOfKeys: 4, lua: DETECTOR_APPLY });
  r.defineCommand('detectorTurn', { numberOfKeys: 5, lua: DETECTOR_TURN });
  r.defineCommand('detectorTurnPush', { numberOfKeys: 5 + PUSH_KEYS + 1, lua: DETECTOR_TURN_PUSH });
  for (const [name, s] of Object.entries({ ...INBOX_SCRIPTS, ...QUOTA_SCRIPTS })) r.defineCommand(name, s);
  await r.connect();
  const sub = r.duplicate();
  sub.on('error', () => undefined);
  await sub.connect();
  await sub.subscribe(k.wake);

  let woken: (owner: string) => void = () => {};
  let expired: (owner: string, item: InboxItem) => void = () => {};
  sub.on('message', (_channel: string, owner: string) => woken(owner));

  const hasher = keyedHasher(Buffer.from(opts.secret));
  const sealed = sealer(opts.secret);
  const now = () => Date.now();
  const parseItem = (s: string): InboxItem => JSON.parse(s);

  // Every broker sweeps due expiries; ZREM inside the script decides who acts on each.
  const sweep = setInterval(async () => {
    try {
      const due = await r.zrangebyscore(k.inboxExpiry, '-inf', now(), 'LIMIT', 0, 200);
      for (const member of due) {
        const bar = member.indexOf('|');
        const owner = member.slice(0, bar);
        const id = member.slice(bar + 1);
        const item = await r.inboxExpireOne(k.inbox(owner), k.inflight(owner), k.inboxBytes, k.totalBytes, k.inboxExpiry, owner, id, member);
        if (item) expired(owner, parseItem(item));
      }
    } catch {
      // Redis unreachable: the next sweep tries again.
    }
  }, opts.sweepMs ?? 500).unref();

  /** A push's keys and arguments in PUSH_FN's order: alone (inboxes.push), or inside a send's turn (detectors). */
  const pushCall: PushCall = (owner, item, receiptTtlMs, lease) => {
    const ttl = Math.max(1, item.expiresAt - now()) + SAFETY_MS;
    const receipt = receiptTtlMs !== undefined && item.from ? receiptTtlMs : '';
    return {
      keys: [k.inbox(owner), k.inboxBytes, k.totalBytes, k.inboxExpiry, k.fate(item.event.id), k.inflight(owner)],
      args: [owner, JSON.stringify(item), item.bytes, item.expiresAt, `${owner}|${item.event.id}`, ttl, fateValue(item.from ?? '', 'queued'), receipt, lease ? SAFETY_MS : ''],
    };
  };

  const inboxes: InboxStore = {
    async push(owner, item, receiptTtlMs, lease) {
      const { keys, args } = pushCall(owner, item, receiptTtlMs, lease);
      const head = await r.inboxPush(...keys, ...args);
      return head ? parseItem(head) : undefined;
    },
    async lease(owner) {
      const s = await r.inboxLease(k.inbox(owner), k.inflight(owner), SAFETY_MS);
      return s ? parseItem(s) : undefined;
    },
    async ack(owner, id, receipt) {
      const fate = receipt ? fateValue(receipt.sender, receipt.fate) : '';
      return (await r.inboxAck(k.inflight(owner), k.inboxBytes, k.totalBytes, k.inboxExpiry, k.fate(id), owner, id, fate, receipt?.ttlMs ?? '')) === 1;
    },
    async nack(owner, id, minExpiresAt) {
      await r.inboxNack(k.inbox(owner), k.inflight(owner), k.inboxExpiry, owner, id, minExpiresAt);
    },
    async clear(owner) {
      return (await r.inboxClear(k.inbox(owner), k.inflight(owner), k.inboxBytes, k.totalBytes, k.inboxExpiry, owner)).map(parseItem);
    },
    async size(owner) {
      const [count, bytes, total] = await r.inboxSize(k.inbox(owner), k.inflight(owner), k.inboxBytes, k.totalBytes, owner);
      return { count, bytes, total };
    },
    // Sessions survive a restart here: nothing is lost, so nothing to report.
    unreadBySender: () => new Map(),
    onExpired(fn) {
      expired = fn;
    },
  };

  const roomTtl = SAFETY_MS * 31;
  /**
   * The JSON of rooms as this broker last read or wrote them. An update first tries its
   * compare-and-set against this copy, which saves a read per turn; a stale copy only costs a
   * failed swap, then a fresh read. Plain reads always go to Redis.
   */
  const seen = new CappedMap<number, string>(ROOMS_SEEN_MAX);
  const saw = (id: number, raw: string) => {
    seen.delete(id);
    seen.set(id, raw);
  };
  /**
   * Token rows as this broker read them for a send, by hash (see tokens.forSend): only hints, as
   * another broker may end the token; each send's script checks it is still in its room.
   */
  const sendRows = new CappedMap<string, TokenRow>(SEND_ROWS_MAX);
  const rememberRow = (row: TokenRow) => {
    sendRows.delete(row.hash);
    sendRows.set(row.hash, row);
  };
  /** A token's row and room from a script's reply (HGETALL's flat list, the room's JSON or null). */
  const parseFound = (h: string, flat: string[], raw: string | null) => {
    const row = tokenRow(h, Object.fromEntries(pairs(flat)));
    if (!row) return undefined;
    const json = row.roomId === null ? null : raw;
    if (json) saw(row.roomId!, json);
    return { row, room: json ? (JSON.parse(json) as RoomState) : undefined };
  };
  return {
    name: 'redis',
    rateLimitStore: r,
    clock: { now },
    hasher,
    tokens: {
      async add(h, at, quota) {
        if (quota && !(await r.quotaTake(k.tokenQuota, quota.bucket, quota.max))) return false;
        await r.multi().hset(k.token(h), { r: '', c: 0, e: at, b: quota?.bucket ?? '' }).pexpireat(k.token(h), at + SAFETY_MS).zadd(k.tokenExpiry, at, h).exec();
        return true;
      },
      async get(h) {
        return tokenRow(h, await r.hgetall(k.token(h)));
      },
      async withRoom(h) {
        const found = await r.tokenAndRoom(k.token(h), prefix.room);
        return found ? parseFound(h, found[0], found[1]) : undefined;
      },
      async forSend(h, fresh) {
        // The row this broker read for the token's last send, with the room as it last saw it: the
        // send's own script then checks the token and the inbox caps (Delivery.guard).
        const row = fresh ? undefined : sendRows.get(h);
        const raw = row && seen.get(row.roomId!);
        if (row && raw) {
          const room = JSON.parse(raw) as RoomState;
          const other = room.members.find((m) => m.hash !== h);
          return { found: { row, room }, partner: other && { hash: other.hash }, cached: true };
        }
        const [flat, json, partner, count, bytes, total] = await r.forSend(k.token(h), k.inboxBytes, k.totalBytes, prefix.room, prefix.inbox, prefix.inflight, h);
        const found = flat ? parseFound(h, flat, json) : undefined;
        if (found?.room && partner) rememberRow(found.row);
        else sendRows.delete(h);
        return { found, partner: partner ? { hash: partner, queued: { count, bytes, total } } : undefined };
      },
      async leaseOrRoom(h, ack) {
        const keys = [k.inbox(h), k.inflight(h), k.token(h), k.inboxBytes, k.totalBytes, k.inboxExpiry] as const;
        const [head, row, room] = await r.leaseOrRoom(...keys, SAFETY_MS, prefix.room, h, ack?.id ?? '', prefix.fate, ack?.receiptTtlMs ?? '');
        if (head) return { head: parseItem(head) };
        return { head: undefined, found: row ? parseFound(h, row, room ?? null) : undefined };
      },
      async touch(h, at) {
        await r.multi().hset(k.token(h), 'e', at).pexpireat(k.token(h), at + SAFETY_MS).zadd(k.tokenExpiry, at, h).exec();
        const row = sendRows.get(h);
        if (row) row.expiresAt = at;
      },
      async setRoom(h, id) {
        sendRows.delete(h);
        // Only an existing token: a revoked one must not come back as a half row.
        if (await r.exists(k.token(h))) await r.hset(k.token(h), 'r', id === null ? '' : String(id));
      },
      async delete(h) {
        sendRows.delete(h);
        const bucket = await r.hget(k.token(h), 'b');
        const [[, deleted]] = (await r.multi().del(k.token(h)).zrem(k.tokenExpiry, h).exec()) as [unknown, number][];
        // Only the broker whose DEL removed it gives the place back (two may sweep one token).
        if (deleted === 1 && bucket) await r.quotaGive(k.tokenQuota, bucket);
      },
      expired: (at) => r.zrangebyscore(k.tokenExpiry, '-inf', at, 'LIMIT', 0, 1000),
    },
    codes: {
      async add(h, roomId, kind, at) {
        await r.multi().set(k.code(h), `${roomId}:${kind}`, 'PXAT', at).zadd(k.codeExpiry, at, `${h}:${roomId}`).exec();
      },
      async take(h) {
        const v = await r.getdel(k.code(h)); // the key's own expiry keeps an old code from answering
        if (!v) return undefined;
        const [roomId, kind] = v.split(':');
        return { roomId: Number(roomId), kind: kind as CodeKind };
      },
      async sweep(at) {
        const due = await r.zrangebyscore(k.codeExpiry, '-inf', at, 'LIMIT', 0, 1000);
        const rooms: number[] = [];
        for (const m of due) if ((await r.zrem(k.codeExpiry, m)) === 1) rooms.push(Number(m.split(':')[1]));
        return rooms;
      },
    },
    rooms: {
      async create(init, _now, quota) {
        if (quota && !(await r.quotaTake(k.roomQuota, quota.bucket, quota.max))) return undefined;
        const id = await r.incr(k.roomSeq);
        const room: RoomState = { ...init, id, bucket: quota?.bucket ?? '' };
        await r.multi().set(k.room(id), JSON.stringify(room), 'PX', roomTtl).sadd(k.rooms, String(id)).hincrby(k.token(init.creator), 'c', 1).exec();
        return room;
      },
      async get(id) {
        const s = await r.get(k.room(id));
        if (!s) return void seen.delete(id);
        saw(id, s);
        return JSON.parse(s) as RoomState;
      },
      async update(id, fn) {
        for (let attempt = 0; attempt < 100; attempt++) {
          const cached = attempt === 0 ? seen.get(id) : undefined;
          const raw = cached ?? (await r.get(k.room(id)));
          if (!raw) return void seen.delete(id);
          const room = JSON.parse(raw) as RoomState;
          const result = fn(room);
          const next = JSON.stringify(room);
          // An unchanged room read just now needs no write; a cached one must still be proven current.
          if ((next === raw && !cached) || (await r.casRoom(k.room(id), raw, next, roomTtl)) === 1) {
            saw(id, next);
            return result;
          }
          seen.delete(id);
        }
        throw new Error('room update kept conflicting');
      },
      async delete(id) {
        seen.delete(id);
        const raw = await r.get(k.room(id));
        // Its detector goes through detectors.delete.
        const [[, deleted]] = (await r.multi().del(k.room(id)).srem(k.rooms, String(id)).exec()) as [unknown, number][];
        const bucket = raw ? (JSON.parse(raw) as RoomState).bucket : '';
        if (deleted === 1 && bucket) await r.quotaGive(k.roomQuota, bucket);
      },
      count: () => r.scard(k.rooms),
    },
    inboxes,
    bus: {
      wake: (owner) => void r.publish(k.wake, owner).catch(() => undefined),
      onWake(fn) {
        woken = fn;
      },
    },
    // Fed on a local copy, replayed on Redis's by version: two brokers feeding one room do not lose a message.
    detectors: redisDetectors(r, P, roomTtl, {
      key: k.room,
      ttlMs: roomTtl,
      cached: (id) => seen.get(id),
      read: (id) => r.get(k.room(id)),
      saw,
      forget: (id) => void seen.delete(id),
    }, { call: pushCall, parse: parseItem, tokenKey: k.token }),
    // Keyed by the hash of the session id (itself a credential), the value sealed.
    sessions: {
      async get(key, ttlMs) {
        const h = hasher.hash(key);
        const [[, v]] = (await r.multi().get(k.session(h)).pexpire(k.session(h), ttlMs).exec()) as [unknown, string | null][];
        return v ? sealed.open(v) : undefined;
      },
      async set(key, value, ttlMs) {
        await r.set(k.session(hasher.hash(key)), sealed.seal(value), 'PX', ttlMs);
      },
      async delete(key) {
        const v = await r.getdel(k.session(hasher.hash(key)));
        return v ? sealed.open(v) : undefined;
      },
    },
    receipts: {
      async setFate(messageId, sender, fate, ttlMs) {
        await r.set(k.fate(messageId), fateValue(sender, fate), 'PX', ttlMs);
      },
      async fate(messageId) {
        const v = await r.get(k.fate(messageId));
        if (!v) return undefined;
        const [sender, fate] = v.split('|');
        return { sender, fate: fate as Fate };
      },
      recall: async (sender, key) => (await r.get(k.idem(sender, key))) ?? undefined,
      async remember(sender, key, id, ttlMs) {
        await r.set(k.idem(sender, key), id, 'PX', ttlMs);
      },
    },
    async ready() {
      if (r.status !== 'ready') return false;
      try {
        return (await r.ping()) === 'PONG';
      } catch {
        return false;
      }
    },
    async close() {
      clearInterval(sweep);
      sub.disconnect();
      r.disconnect();
    },
  };
}
