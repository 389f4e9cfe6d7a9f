/** The sql.js schema can hold tokens, rooms and codes, and nothing that could be a message. */
import { describe, expect, it } from 'vitest';
import { memoryBackend } from '../src/backend/memory/index.js';
import { Store } from '../src/backend/memory/sql-store.js';

describe('store schema', () => {
  it('has only the tables tokens, rooms and codes, all STRICT', async () => {
    const s = await Store.open();
    const tables = s.db.exec("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name")[0].values;
    expect(tables.map((t) => t[0])).toEqual(['codes', 'rooms', 'tokens']);
    for (const [, sql] of tables) expect(String(sql)).toMatch(/\)\s*STRICT$/);
  });

  it('no column can hold message text: every column refuses it as TEXT and as bytes', async () => {
    const s = await Store.open();
    const h = new Uint8Array(32).fill(7);
    s.db.run("INSERT INTO rooms (id, kind, creator, headless, created_at) VALUES (1, 'standard', ?, 0, 1)", [h]);
    s.db.run('INSERT INTO tokens (hash, room_id, rooms_created, expires_at) VALUES (?, 1, 0, 1)', [h]);
    s.db.run("INSERT INTO codes (hash, room_id, kind, expires_at) VALUES (?, 1, 'invite', 1)", [h]);
    const message = 'hello, here is the secret plan we agreed on [OVER]';
    let columns = 0;
    for (const table of ['rooms', 'tokens', 'codes']) {
      const cols = s.db.exec(`PRAGMA table_info(${table})`)[0].values.map((c) => String(c[1]));
      for (const col of cols) {
        columns++;
        for (const value of [message, new TextEncoder().encode(message)])
          expect(() => s.db.run(`UPDATE ${table} SET ${col} = ?`, [value]), `${table}.${col}`).toThrow(/CHECK|datatype mismatch|cannot store|FOREIGN KEY/);
      }
    }
    expect(columns).toBe(13);
  });

  it('stores tokens and codes only as 32-byte keyed hashes, different at every boot', async () => {
    const a = await memoryBackend();
    const b = await memoryBackend();
    expect(a.hasher.hash('tok_x')).toMatch(/^[0-9a-f]{64}$/);
    expect(a.hasher.hash('tok_x')).not.toBe(b.hasher.hash('tok_x'));
    expect(() => a.store.addToken(Buffer.from('tok_0123456789abcdef0123456789abcdef').toString('hex'), 1)).toThrow(/CHECK/);
    await a.close();
    await b.close();
  });
});

