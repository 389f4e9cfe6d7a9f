/**
 * The sql.js store: tokens, rooms and one-time codes, in memory only (gone at restart).
 *
 * Secrets arrive already hashed (HMAC-SHA-256, see the backend's hasher), as hex, and are kept as
 * 32-byte blobs. STRICT tables with CHECKs mean no column can hold free text: there is nowhere a
 * message could be written.
 */
import initSqlJs, { type Database, type Statement } from 'sql.js';
import type { RoomKind } from '../../engine/service.js';
import { BusyFirstMap } from '../busy-first-map.js';
import type { CodeKind, TokenRow } from '../ports.js';

export interface CodeRow {
  roomId: number;
  kind: CodeKind;
}

export const SCHEMA = `
CREATE TABLE rooms (
  id         INTEGER PRIMARY KEY,
  kind       TEXT    NOT NULL CHECK (kind IN ('standard', 'listener')),
  creator    BLOB    NOT NULL CHECK (length(creator) = 32),
  headless   INTEGER NOT NULL CHECK (headless IN (0, 1)),
  created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE tokens (
  hash          BLOB    PRIMARY KEY CHECK (length(hash) = 32),
  room_id       INTEGER REFERENCES rooms(id) ON DELETE SET NULL,
  rooms_created INTEGER NOT NULL DEFAULT 0 CHECK (rooms_created BETWEEN 0 AND 3),
  expires_at    INTEGER NOT NULL
) STRICT;
CREATE TABLE codes (
  hash       BLOB    PRIMARY KEY CHECK (length(hash) = 32),
  room_id    INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
  kind       TEXT    NOT NULL CHECK (kind IN ('invite', 'listen')),
  expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX tokens_by_expiry ON tokens(expires_at);
CREATE INDEX tokens_by_room ON tokens(room_id);
CREATE INDEX codes_by_expiry ON codes(expires_at);
CREATE INDEX codes_by_room ON codes(room_id);
PRAGMA foreign_keys = ON;
`;

export const MAX_ROOMS_PER_TOKEN = 3;

let sqlModule: Awaited<ReturnType<typeof initSqlJs>> | undefined;

export class Store {
  readonly db: Database;
  private readonly q: Record<string, Statement>;
  /**
   * Read-through copy of token rows, by hash: every request authenticates, and a Map lookup
   * costs a fraction of a sql.js round trip. Every write below updates it with the row.
   */
  private readonly tokens = new BusyFirstMap<string, TokenRow>();

  static async open(): Promise<Store> {
    sqlModule ??= await initSqlJs();
    return new Store(new sqlModule.Database());
  }

  private constructor(db: Database) {
    this.db = db;
    // sql.js keeps the database as a file in its in-memory file system; without these, every
    // statement probes for a hot journal (a thrown ENOENT in JS) and writes one.
    db.exec('PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = MEMORY;');
    db.exec(SCHEMA);
    const p = (sql: string) => db.prepare(sql);
    this.q = {
      insertToken: p('INSERT INTO tokens (hash, expires_at) VALUES (?, ?)'),
      getToken: p('SELECT room_id, rooms_created, expires_at FROM tokens WHERE hash = ?'),
      touchToken: p('UPDATE tokens SET expires_at = ? WHERE hash = ?'),
      setTokenRoom: p('UPDATE tokens SET room_id = ? WHERE hash = ?'),
      countRoom: p('UPDATE tokens SET rooms_created = rooms_created + 1 WHERE hash = ?'),
      deleteToken: p('DELETE FROM tokens WHERE hash = ?'),
      expiredTokens: p('SELECT hash FROM tokens WHERE expires_at <= ? LIMIT 1000'),
      insertRoom: p('INSERT INTO rooms (kind, creator, headless, created_at) VALUES (?, ?, ?, ?)'),
      setHeadless: p('UPDATE rooms SET headless = ? WHERE id = ?'),
      deleteRoom: p('DELETE FROM rooms WHERE id = ?'),
      insertCode: p('INSERT INTO codes (hash, room_id, kind, expires_at) VALUES (?, ?, ?, ?)'),
      getCode: p('SELECT room_id, kind FROM codes WHERE hash = ? AND expires_at > ?'),
      deleteCode: p('DELETE FROM codes WHERE hash = ?'),
      expiredCodes: p('SELECT hash, room_id FROM codes WHERE expires_at <= ? LIMIT 1000'),
      lastId: p('SELECT last_insert_rowid()'),
    };
  }

  private one(stmt: Statement, params: (string | number | Uint8Array | null)[]): unknown[] | undefined {
    try {
      stmt.bind(params);
      return stmt.step() ? stmt.get() : undefined;
    } finally {
      stmt.reset();
    }
  }

  private run(stmt: Statement, params: (string | number | Uint8Array | null)[]): void {
    this.one(stmt, params);
  }

  private all(stmt: Statement, params: (string | number | Uint8Array | null)[]): unknown[][] {
    const rows: unknown[][] = [];
    try {
      stmt.bind(params);
      while (stmt.step()) rows.push(stmt.get());
    } finally {
      stmt.reset();
    }
    return rows;
  }

  addToken(key: string, expiresAt: number): void {
    this.run(this.q.insertToken, [blob(key), expiresAt]);
    this.tokens.set(key, { hash: key, roomId: null, roomsCreated: 0, expiresAt });
  }

  getToken(key: string): TokenRow | undefined {
    const cached = this.tokens.get(key);
    if (cached) return { ...cached };
    const row = this.one(this.q.getToken, [blob(key)]);
    if (!row) return undefined;
    const fresh: TokenRow = { hash: key, roomId: row[0] as number | null, roomsCreated: row[1] as number, expiresAt: row[2] as number };
    this.tokens.set(key, fresh);
    return { ...fresh };
  }

  private cachedRow(key: string, change: Partial<TokenRow>): void {
    const row = this.tokens.get(key);
    if (row) Object.assign(row, change);
  }

  touchToken(key: string, expiresAt: number): void {
    this.run(this.q.touchToken, [expiresAt, blob(key)]);
    this.cachedRow(key, { expiresAt });
  }

  setTokenRoom(key: string, roomId: number | null): void {
    this.run(this.q.setTokenRoom, [roomId, blob(key)]);
    this.cachedRow(key, { roomId });
  }

  deleteToken(key: string): void {
    this.run(this.q.deleteToken, [blob(key)]);
    this.tokens.delete(key);
  }

  expiredTokens(now: number): string[] {
    return this.all(this.q.expiredTokens, [now]).map((r) => Buffer.from(r[0] as Uint8Array).toString('hex'));
  }

  /** Creates a room owned by `creator` and counts it against the creator's quota. */
  addRoom(kind: RoomKind, creator: string, headless: boolean, now: number): number {
    this.run(this.q.insertRoom, [kind, blob(creator), headless ? 1 : 0, now]);
    const id = this.one(this.q.lastId, [])![0] as number;
    this.run(this.q.countRoom, [blob(creator)]);
    const row = this.tokens.get(creator);
    if (row) row.roomsCreated += 1;
    return id;
  }

  setHeadless(roomId: number, headless: boolean): void {
    this.run(this.q.setHeadless, [headless ? 1 : 0, roomId]);
  }

  /** Deletes the room and its codes. The engine moves its members out first (setTokenRoom), so the cache stays exact. */
  deleteRoom(roomId: number): void {
    this.run(this.q.deleteRoom, [roomId]);
  }

  addCode(key: string, roomId: number, kind: CodeKind, expiresAt: number): void {
    this.run(this.q.insertCode, [blob(key), roomId, kind, expiresAt]);
  }

  /** Looks a code up and burns it in one step: a code works exactly once. */
  takeCode(key: string, now: number): CodeRow | undefined {
    const hash = blob(key);
    const row = this.one(this.q.getCode, [hash, now]);
    if (!row) return undefined;
    this.run(this.q.deleteCode, [hash]);
    return { roomId: row[0] as number, kind: row[1] as CodeKind };
  }

  /** Removes expired codes and returns the rooms they belonged to. */
  sweepCodes(now: number): number[] {
    const rows = this.all(this.q.expiredCodes, [now]);
    for (const r of rows) this.run(this.q.deleteCode, [r[0] as Uint8Array]);
    return rows.map((r) => r[1] as number);
  }
}

const blob = (hex: string): Uint8Array => Buffer.from(hex, 'hex');
