import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type Slot } from '../../src/crdt/g-counter.js';
import { stateDigest } from '../../src/crdt/digest.js';
import type { PageName, ReplicaId } from '../../src/ids.js';
import { identityFilePath, readIdentityFile, writeIdentityFile } from '../../src/store/identity.js';
import { loadMigrations, migrate, migrateFile } from '../../src/store/migrate.js';
import { MemoryDisk, openMemoryStore } from '../../src/store/memory-store.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite-store.js';
import type { Delta } from '../../src/store/store.js';
import { runStoreContract, type StoreHarness } from './store-contract.js';

const SIDE_FILES = ['-wal', '-shm'];

function sqliteHarness(): StoreHarness {
  const dir = mkdtempSync(join(tmpdir(), 'store-contract-'));
  // A folder that does not exist yet: opening creates it.
  const path = join(dir, 'data', 'counters.db');
  const copies: string[] = [];
  return {
    open: (options) => openSqliteStore({ path, random: options?.random, analytics: options?.analytics ?? false }),
    snapshotDatabase: async () => {
      const copy = join(dir, `snapshot-${copies.length}`);
      copyFileSync(path, copy);
      for (const side of SIDE_FILES) if (existsSync(path + side)) copyFileSync(path + side, copy + side);
      copies.push(copy);
      return copy;
    },
    restoreDatabase: async (snapshot) => {
      const copy = snapshot as string;
      copyFileSync(copy, path);
      for (const side of SIDE_FILES) {
        rmSync(path + side, { force: true });
        if (existsSync(copy + side)) copyFileSync(copy + side, path + side);
      }
    },
    deleteIdentityFile: async () => rmSync(identityFilePath(path)),
    writeIdentityFile: async (identity) => writeIdentityFile(identityFilePath(path), identity),
    makeDatabaseTooNew: async () => {
      const db = new Database(path);
      db.pragma('user_version = 99');
      db.close();
    },
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

runStoreContract('SqliteStore', async () => sqliteHarness());

describe('SqliteStore', () => {
  let dir: string;
  const stores: SqliteStore[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sqlite-store-'));
  });

  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function open(options: Partial<Parameters<typeof openSqliteStore>[0]> = {}): Promise<SqliteStore> {
    // Totals only unless a test asks (its digests are checked against the totals' slots).
    const store = await openSqliteStore({ path: join(dir, 'counters.db'), analytics: false, ...options });
    stores.push(store);
    return store;
  }

  it('sets WAL mode and the pragmas Litestream advises', async () => {
    const store = await open();
    expect(store.pragmas()).toEqual({ journalMode: 'wal', synchronous: 'normal', busyTimeoutMs: 5000, walAutocheckpoint: 1000 });
    await store.close();
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const external = await open({ synchronous: 'full', checkpoints: 'external', log });
    expect(lines.map((line) => JSON.parse(line) as { msg: string; outcome: string })).toContainEqual(
      expect.objectContaining({ msg: 'store opened: replica id kept', outcome: 'kept' }),
    );
    expect(external.pragmas()).toEqual({ journalMode: 'wal', synchronous: 'full', busyTimeoutMs: 5000, walAutocheckpoint: 0 });
  });

  it('keeps data across reopen and writes the identity file beside the database, with a stop record at close', async () => {
    const store = await open();
    await store.increment([{ page: 'p' as PageName, by: 41 }]);
    await store.increment([{ page: 'p' as PageName, by: 1 }]);
    expect(store.stats().bytes).toBeGreaterThan(0);
    const digest = store.digest();
    const identityPath = identityFilePath(join(dir, 'counters.db'));
    // While running, no clean-stop record.
    expect(readIdentityFile(identityPath)).toEqual({ replicaId: store.replicaId, epoch: store.identity.epoch });
    await store.close();
    expect(readIdentityFile(identityPath)).toEqual({ replicaId: store.replicaId, epoch: store.identity.epoch, stoppedAtSeq: 2 });
    const reopened = await open();
    expect(reopened.count('p' as PageName)).toBe(42);
    expect(reopened.digest()).toBe(digest);
    expect(reopened.localSeq()).toBe(2);
  });

  it('serves slotsAfter from the (replica, seq, page) index', async () => {
    const store = await open();
    await store.close();
    const db = new Database(join(dir, 'counters.db'), { readonly: true });
    const plan = db
      .prepare('EXPLAIN QUERY PLAN SELECT page, count, seq FROM slots WHERE replica = ? AND (seq, page) > (?, ?) ORDER BY seq, page LIMIT ?')
      .all(1, 0, 'a', 10) as { detail: string }[];
    db.close();
    const details = plan.map((row) => row.detail).join('\n');
    expect(details).toMatch(/USING (COVERING )?INDEX slots_by_replica_seq/);
    expect(details).not.toMatch(/TEMP B-TREE/);
  });

  it('rejects every unit of a flush whose transaction fails, and keeps working after', async () => {
    const store = await open();
    await store.increment([{ page: 'p' as PageName, by: 1 }]);
    // Another connection holds the write lock past the busy timeout: the commit fails.
    const other = new Database(join(dir, 'counters.db'), { timeout: 0 });
    other.exec('BEGIN IMMEDIATE');
    // Reach into the store only to shorten its busy timeout, so the test does not wait 5 s.
    (store as unknown as { db: Database.Database }).db.pragma('busy_timeout = 0');
    const digest = store.digest();
    const units = [store.increment([{ page: 'p' as PageName, by: 1 }]), store.increment([{ page: 'q' as PageName, by: 1 }])];
    const results = await Promise.allSettled(units);
    // A merge fails the same way.
    expect(() => store.merge([{ page: 'p' as PageName, replica: 'a1'.padStart(32, '0') as ReplicaId, count: 9, seq: 1 }], [])).toThrow(/busy|locked/i);
    other.exec('ROLLBACK');
    other.close();
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(store.localSeq()).toBe(1);
    expect(store.digest()).toBe(digest);
    expect(await store.increment([{ page: 'q' as PageName, by: 1 }])).toEqual([{ page: 'q', count: 1 }]);
    expect(store.localSeq()).toBe(2);
    expect(store.digest()).toBe(stateDigest([...store.pageSlots('p' as PageName), ...store.pageSlots('q' as PageName)]));
  });

  it('leaves the digest as it was when a merge rolls back after writing slots', async () => {
    const store = await open();
    await store.increment([{ page: 'p' as PageName, by: 2 }]);
    const digest = store.digest();
    const good: Slot = { page: 'p' as PageName, replica: 'a1'.padStart(32, '0') as ReplicaId, count: 5, seq: 1 };
    // The second slot's replica id breaks the schema's CHECK after the first slot was written.
    expect(() => store.merge([good, { ...good, replica: 'short' as ReplicaId }], [])).toThrow(/CHECK/);
    expect(store.count('p' as PageName)).toBe(2);
    expect(store.digest()).toBe(digest);
    store.merge([good], []);
    expect(store.digest()).toBe(stateDigest(store.pageSlots('p' as PageName)));
    expect(store.digest()).not.toBe(digest);
  });

  it('prepares no statement that compares a series slot\'s kind with a bound parameter (SQLite would re-prepare it at every run)', async () => {
    // A bound kind could make a partial index of migration 0004 usable, so SQLite marks it and
    // re-prepares the statement whenever it is bound again: 10–15 µs per run instead of 2.
    const prepare = vi.spyOn(Database.prototype, 'prepare');
    try {
      await open({ analytics: true });
      const sources = prepare.mock.calls.map(([source]) => source).filter((source) => /\bseries_slots\b/.test(source));
      expect(sources.length).toBeGreaterThan(10);
      expect(sources.filter((source) => /\bkind\s*(?:=|==|<>|!=|IN\s*\()\s*[?:@$]/i.test(source))).toEqual([]);
    } finally {
      prepare.mockRestore();
    }
  });

  it.each([false, true])('answers pageSlots from its cache exactly as the database holds them, through increments, merges, a reset and a rollback (analytics %s)', async (analytics) => {
    // With analytics on, each increment also writes series slots under the same seq: they are
    // other counters and must never stand in the cache for the page's total slot.
    const store = await open({ analytics });
    const p = 'p' as PageName;
    const other = 'b2'.padStart(32, '0') as ReplicaId;
    const reader = new Database(join(dir, 'counters.db'), { readonly: true });
    const inDatabase = (): unknown[] =>
      reader
        .prepare('SELECT r.replica_id AS replica, s.count AS count, s.seq AS seq, s.epoch AS epoch FROM slots s JOIN replicas r ON r.id = s.replica WHERE s.page = ? ORDER BY r.replica_id')
        .all(p)
        .map((row) => {
          const { replica, count, seq, epoch } = row as { replica: ReplicaId; count: number; seq: number; epoch: number };
          return epoch === 0 ? { page: p, replica, count, seq } : { page: p, replica, count, seq, epoch };
        });
    try {
      expect(store.pageSlots(p)).toEqual([]);
      await store.increment([{ page: p, by: 2, visitor: { index: 5, rank: 3 } }]);
      expect(store.pageSlots(p)).toEqual(inDatabase());
      store.merge([{ page: p, replica: other, count: 5, seq: 1 }], []);
      expect(store.pageSlots(p)).toEqual(inDatabase());
      await store.increment([{ page: p, by: 1 }]);
      store.merge([{ page: p, replica: other, count: 4, seq: 1 }], []);
      expect(store.pageSlots(p)).toEqual(inDatabase());
      expect(() => store.merge([{ page: p, replica: other, count: 9, seq: 2 }, { page: p, replica: 'short' as ReplicaId, count: 1, seq: 1 }], [])).toThrow(/CHECK/);
      expect(store.pageSlots(p)).toEqual(inDatabase());
      store.reset([p]);
      expect(store.pageSlots(p)).toEqual(inDatabase());
      await store.increment([{ page: p, by: 3 }]);
      expect(store.pageSlots(p)).toEqual(inDatabase());
      expect(store.pageSlots(p).map((slot) => slot.count)).toContain(3);
    } finally {
      reader.close();
    }
  });

  it('has the same digest as the memory twin holding the same slots', async () => {
    const sqlite = await open();
    const memory = await openMemoryStore(new MemoryDisk());
    const local: Delta[] = [];
    sqlite.onCommit((delta) => local.push(delta));
    await sqlite.increment([{ page: 'p' as PageName, by: 3 }, { page: 'é' as PageName, by: 1 }]);
    await sqlite.increment([{ page: 'p' as PageName, by: 4 }]);
    const foreign: Slot[] = [
      { page: 'p' as PageName, replica: 'b2'.padStart(32, '0') as ReplicaId, count: 11, seq: 3 },
      { page: '\u{1F600}' as PageName, replica: 'c3'.padStart(32, '0') as ReplicaId, count: 1, seq: 1 },
    ];
    sqlite.merge(foreign, []);
    memory.merge([...foreign].reverse(), []);
    for (const delta of local.reverse()) memory.merge(delta.slots, []);
    expect(memory.count('p' as PageName)).toBe(18);
    expect(memory.digest()).toBe(sqlite.digest());
    await memory.close();
  });
});

describe('migrate', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'migrate-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates the schema on a fresh file and is idempotent on a migrated one', () => {
    const path = join(dir, 'nested', 'fresh.db');
    const latest = loadMigrations().length;
    expect(migrateFile(path)).toEqual({ from: 0, to: latest });
    expect(migrateFile(path)).toEqual({ from: latest, to: latest });
    const db = new Database(path, { readonly: true });
    const tables = (db.prepare("SELECT name FROM sqlite_schema WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map(
      (row) => row.name,
    );
    expect(tables).toEqual([
      'meta',
      'pages',
      'replicas',
      'series_days_by_t',
      'series_hours_by_t',
      'series_slots',
      'series_slots_by_replica_seq',
      'site_buckets',
      'site_registers',
      'sketches',
      'sketches_by_day',
      'slots',
      'slots_by_replica_seq',
      'store_stats',
    ]);
    expect(db.pragma('user_version', { simple: true })).toBe(latest);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    const withoutRowid = (name: string) => (db.prepare('SELECT sql FROM sqlite_schema WHERE name = ?').get(name) as { sql: string }).sql;
    expect(withoutRowid('slots')).toMatch(/WITHOUT ROWID/);
    expect(withoutRowid('pages')).toMatch(/WITHOUT ROWID/);
    db.close();
  });

  it('applies all pending migrations in one transaction, or none', () => {
    const db = new Database(':memory:');
    const folder = mkdtempSync(join(dir, 'migrations-'));
    writeFileSync(join(folder, '0001_a.sql'), 'CREATE TABLE a (x INTEGER);');
    writeFileSync(join(folder, '0002_b.sql'), 'CREATE TABLE b (x INTEGER); CREATE TABLE a (y INTEGER);');
    expect(() => migrate(db, { directory: folder })).toThrow(/already exists/);
    expect(db.pragma('user_version', { simple: true })).toBe(0);
    expect(db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE name IN ('a', 'b')").get()).toEqual({ n: 0 });
    db.close();
  });

  it('refuses a gap in the numbering', () => {
    const db = new Database(':memory:');
    const folder = mkdtempSync(join(dir, 'migrations-'));
    writeFileSync(join(folder, '0001_a.sql'), 'CREATE TABLE a (x INTEGER);');
    writeFileSync(join(folder, '0003_c.sql'), 'CREATE TABLE c (x INTEGER);');
    expect(() => migrate(db, { directory: folder })).toThrow(/out of sequence/);
    db.close();
  });
});

describe('SqliteStore stored stats (migration 0003)', () => {
  let dir: string;
  let path: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sqlite-stats-'));
    path = join(dir, 'counters.db');
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** Opens with a log recorder; `scanned()` tells whether this open scanned every slot. */
  async function openRecorded(
    digestRecount: 'at-open' | 'background' = 'at-open',
    analytics = false,
  ): Promise<{ store: SqliteStore; scanned: () => boolean; logged: (start: string) => boolean }> {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const store = await openSqliteStore({ path, log, digestRecount, analytics });
    const logged = (start: string) => lines.some((line) => (JSON.parse(line) as { msg: string }).msg.startsWith(start));
    return { store, scanned: () => logged('digest sum scanned'), logged };
  }

  /** Forgets the stored digest sum: the next open must scan every slot, to `digest`. */
  async function expectScanGives(digest: string, analytics = false): Promise<void> {
    const db = new Database(path);
    db.prepare('UPDATE store_stats SET digest = NULL').run();
    db.close();
    const reopened = await openRecorded('at-open', analytics);
    expect(reopened.scanned()).toBe(true);
    expect(reopened.store.digest()).toBe(digest);
    await reopened.store.close();
  }

  function everySlot(store: SqliteStore): Slot[] {
    return store.listPages({ limit: 1000 }).flatMap(({ page }) => store.pageSlots(page));
  }

  function counted(): { pages: number; slots: number; replicas: number } {
    const db = new Database(path, { readonly: true });
    const count = (table: string) => db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;
    const pages = db.prepare('SELECT count(*) FROM pages WHERE total > 0').pluck().get() as number;
    const result = { pages, slots: count('slots'), replicas: count('replicas') };
    db.close();
    return result;
  }

  async function fill(store: SqliteStore): Promise<void> {
    await store.increment([{ page: 'a' as PageName, by: 3 }, { page: 'b' as PageName, by: 1 }]);
    await store.increment([{ page: 'a' as PageName, by: 2 }]);
    store.merge(
      [
        { page: 'a' as PageName, replica: 'b2'.padStart(32, '0') as ReplicaId, count: 7, seq: 2 },
        { page: 'c' as PageName, replica: 'c3'.padStart(32, '0') as ReplicaId, count: 1, seq: 1 },
      ],
      [],
    );
    // A merge that only raises a seq (same count) leaves the digest as it is.
    store.merge([{ page: 'a' as PageName, replica: 'b2'.padStart(32, '0') as ReplicaId, count: 7, seq: 3 }], []);
  }

  it('keeps the counts and the digest in the database: a reopen reads them instead of scanning', async () => {
    const first = await openRecorded();
    // A new database: nothing to scan yet, the sum of no slot is stored.
    await fill(first.store);
    const digest = first.store.digest();
    expect(digest).toBe(stateDigest(everySlot(first.store)));
    expect(first.store.stats()).toEqual({ ...counted(), bytes: first.store.stats().bytes });
    expect(first.store.stats()).toMatchObject({ pages: 3, slots: 4, replicas: 3 });
    await first.store.close();

    const second = await openRecorded();
    expect(second.scanned()).toBe(false);
    expect(second.store.digest()).toBe(digest);
    expect(second.store.stats()).toMatchObject(counted());
    await second.store.close();
  });

  it('stores the digest off the commit path: the row is NULL right after a commit, a crash then costs one scan, never a wrong digest', async () => {
    const first = await openRecorded();
    await fill(first.store);
    await first.store.close();
    const second = await openRecorded();
    expect(second.scanned()).toBe(false);
    await second.store.increment([{ page: 'd' as PageName, by: 4 }]);
    const reader = new Database(path, { readonly: true });
    expect(reader.prepare('SELECT digest FROM store_stats').pluck().get()).toBeNull();
    reader.close();
    const digest = second.store.digest();
    second.store.kill();
    const third = await openRecorded();
    expect(third.scanned()).toBe(true);
    expect(third.store.digest()).toBe(digest);
    expect(third.store.digest()).toBe(stateDigest(everySlot(third.store)));
    await third.store.close();
  });

  it('forgets the stored digest when a slot is changed behind the store, and rescans once at the next open', async () => {
    const first = await openRecorded();
    await fill(first.store);
    await first.store.close();
    const db = new Database(path);
    db.prepare("UPDATE slots SET count = count + 5 WHERE page = 'b'").run();
    expect(db.prepare('SELECT digest FROM store_stats').pluck().get()).toBeNull();
    db.close();

    const second = await openRecorded();
    expect(second.scanned()).toBe(true);
    expect(second.store.digest()).toBe(stateDigest(everySlot(second.store)));
    await second.store.close();
    const third = await openRecorded();
    expect(third.scanned()).toBe(false);
    expect(third.store.digest()).toBe(stateDigest(everySlot(third.store)));
    await third.store.close();
  });

  it('with resets: leaves reset pages out of the stored page count, and the stored digest equals a from-scratch scan', async () => {
    const first = await openRecorded();
    await fill(first.store);
    first.store.reset(['b' as PageName]);
    first.store.merge([{ page: 'c' as PageName, replica: 'c3'.padStart(32, '0') as ReplicaId, count: 0, seq: 2, epoch: 1 }], []);
    await first.store.increment([{ page: 'c' as PageName, by: 2 }]);
    // b reset (total 0, left out); c reset by a peer and counted again (back in).
    expect(first.store.stats()).toMatchObject({ pages: 2 });
    const live = counted();
    expect(first.store.stats()).toMatchObject({ slots: live.slots, replicas: live.replicas });
    const digest = first.store.digest();
    await first.store.close();

    const second = await openRecorded();
    expect(second.scanned()).toBe(false);
    expect(second.store.digest()).toBe(digest);
    expect(second.store.stats()).toMatchObject({ pages: 2 });
    await second.store.close();
    // Forget the stored sum: the next open scans every slot and reset page, to the same digest.
    await expectScanGives(digest);
  });

  it('recounts an unknown digest in the background, counting the commits made meanwhile, to what a scan gives', async () => {
    const first = await openRecorded();
    await first.store.increment(Array.from({ length: 5_000 }, (_, i) => ({ page: `/p/${i}` as PageName, by: 1 + (i % 3) })));
    await fill(first.store);
    first.store.reset(['/p/7' as PageName]);
    await first.store.increment([{ page: '/p/1' as PageName, by: 1 }]);
    first.store.kill();

    const second = await openRecorded('background');
    expect(second.scanned()).toBe(false);
    expect(second.logged('digest sum not stored')).toBe(true);
    // Not known yet (five slices of a thousand rows, one ran at open): shown as such, never as a digest.
    expect(second.store.digest()).toBe(`recounting:${second.store.replicaId}`);
    // Commits while the recount runs: an increment, a merge, resets (one of a page already reset).
    const pending = second.store.increment([{ page: '/p/2' as PageName, by: 5 }, { page: '/new' as PageName, by: 1 }]);
    second.store.merge([{ page: '/p/4999' as PageName, replica: 'd4'.padStart(32, '0') as ReplicaId, count: 9, seq: 1 }], []);
    second.store.reset(['/p/3' as PageName, '/p/7' as PageName]);
    await pending;
    await second.store.digestKnown();
    expect(second.logged('digest sum recounted in the background and stored')).toBe(true);
    const digest = second.store.digest();
    await second.store.close();

    // From scratch: the row forgotten, a scan at open.
    await expectScanGives(digest);
  });

  it('recounts the series terms too: with day buckets and sketch registers, the background recount equals a scan', async () => {
    const first = await openRecorded('at-open', true);
    await first.store.increment(Array.from({ length: 3_000 }, (_, i) => ({ page: `/p/${i % 700}` as PageName, by: 1, visitor: { index: i % 16_384, rank: 1 + (i % 5) } })));
    first.store.kill();

    const second = await openRecorded('background', true);
    expect(second.scanned()).toBe(false);
    await second.store.increment([{ page: '/p/1' as PageName, by: 2, visitor: { index: 9, rank: 7 } }]);
    await second.store.digestKnown();
    expect(second.logged('digest sum recounted in the background and stored')).toBe(true);
    const digest = second.store.digest();
    await second.store.close();

    const db = new Database(path, { readonly: true });
    expect(db.prepare('SELECT count(*) FROM series_slots WHERE kind <> 1').pluck().get()).toBeGreaterThan(0);
    db.close();
    await expectScanGives(digest, true);
  });

  it('closes during a background recount without storing a partial sum: the next open recounts', async () => {
    const first = await openRecorded();
    // Twenty slices to recount: the close below comes long before the last.
    await first.store.increment(Array.from({ length: 20_000 }, (_, i) => ({ page: `/p/${i}` as PageName, by: 1 })));
    first.store.kill();
    const second = await openRecorded('background');
    await second.store.increment([{ page: '/p/1' as PageName, by: 1 }]);
    await second.store.close();
    const reader = new Database(path, { readonly: true });
    expect(reader.prepare('SELECT digest FROM store_stats').pluck().get()).toBeNull();
    reader.close();
    const third = await openRecorded('background');
    await third.store.digestKnown();
    const digest = third.store.digest();
    await third.store.close();
    const fourth = await openRecorded();
    expect(fourth.scanned()).toBe(false);
    expect(fourth.store.digest()).toBe(digest);
    await fourth.store.close();
  });

  it('upgrades a schema-2 database: counts it once, scans its digest once', async () => {
    const first = await openRecorded();
    await fill(first.store);
    const digest = first.store.digest();
    await first.store.close();
    // Back to schema 2 as the resets release wrote it: no stats table, no triggers.
    const db = new Database(path);
    for (const trigger of db.prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger'").pluck().all() as string[]) db.exec(`DROP TRIGGER "${trigger}"`);
    db.exec('DROP TABLE store_stats');
    for (const table of ['series_slots', 'site_buckets', 'site_registers', 'sketches']) db.exec(`DROP TABLE ${table}`);
    db.pragma('user_version = 2');
    db.close();

    const second = await openRecorded();
    expect(second.scanned()).toBe(true);
    expect(second.store.digest()).toBe(digest);
    expect(second.store.stats()).toMatchObject({ pages: 3, slots: 4, replicas: 3 });
    await second.store.increment([{ page: 'new' as PageName, by: 1 }]);
    expect(second.store.stats()).toMatchObject({ pages: 4, slots: 5, replicas: 3 });
    expect(second.store.digest()).toBe(stateDigest(everySlot(second.store)));
    await second.store.close();
  });
});
