/**
 * A large group commit spread over loop turns (SqliteStore.spreadFlush, issue 14's fair event
 * loop): while it is open nothing of it is visible to a reader, a commit listener or a peer's
 * sync answer, other writes wait for it (or throw `store_busy`), and a kill meanwhile leaves
 * none of it in the file.
 */
import { existsSync, mkdtempSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { dayOf } from '../../src/crdt/series.js';
import { isAppError } from '../../src/errors.js';
import type { PageName } from '../../src/ids.js';
import { openSqliteStore, SPREAD_ABOVE_INCREMENTS, type SqliteStore } from '../../src/store/sqlite-store.js';
import type { Increment } from '../../src/store/store.js';

/** New pages enough for many slices (a new page with analytics costs tens of µs, a slice a few ms). */
const PAGES = 5_000;

function newPages(n: number, prefix = 'bulk'): Increment[] {
  return Array.from({ length: n }, (_, i) => ({ page: `/${prefix}/${String(i).padStart(5, '0')}` as PageName, by: 1 }));
}

/**
 * Turns the loop until the store holds writes (its spread commit is open), at most `turns`; the
 * promise comes wrapped (an async function returning it would wait for it).
 */
async function untilHeld(store: SqliteStore, turns = 10_000): Promise<{ readonly held: Promise<void> }> {
  for (let i = 0; i < turns; i++) {
    const held = store.writesHeld();
    if (held !== undefined) return { held };
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throw new Error('the commit was never spread');
}

describe('SqliteStore spread commits', () => {
  let dir: string;
  let path: string;
  const stores: SqliteStore[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'spread-commit-'));
    path = join(dir, 'counters.db');
  });

  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function open(): Promise<SqliteStore> {
    const store = await openSqliteStore({ path, writeHealthIntervalMs: 0, pruneIntervalMs: 0 });
    stores.push(store);
    return store;
  }

  it('shows nothing of a commit before its COMMIT: reads, vector, sync slots, digest and events stay at the last commit', async () => {
    const store = await open();
    await store.increment([{ page: 'home' as PageName, by: 1 }]);
    const seq = store.localSeq();
    const digest = store.digest();
    const events: string[] = [];
    store.onCommit(() => events.push('commit'));
    store.onChange(() => events.push('change'));

    const bulk = newPages(PAGES);
    const counted = store.increment([{ page: 'home' as PageName, by: 1 }, ...bulk]);
    const { held } = await untilHeld(store);
    // Open: the loop turns (we are here) and a reader sees the last commit only.
    expect(store.count('home' as PageName)).toBe(1);
    expect(store.count(bulk[0]!.page)).toBe(0);
    expect(store.count(bulk[PAGES - 1]!.page)).toBe(0);
    expect(store.listPages({ limit: 10 }).map((row) => row.page)).toEqual(['home']);
    expect(store.pageSlots('home' as PageName).map((slot) => slot.count)).toEqual([1]);
    expect(store.versionVector().get(store.replicaId)).toBe(seq);
    expect(store.highestSlotSeqs().get(store.replicaId)).toBe(seq);
    expect(store.localSeq()).toBe(seq);
    expect(store.slotsAfter(store.replicaId, { seq }, 100)).toEqual([]);
    expect(store.stats().pages).toBe(1);
    expect(store.digest()).toBe(digest);
    expect(store.series({ page: bulk[0]!.page, step: 'day', from: 0, to: 1 })).toEqual([{ t: 0, views: 0, visitors: 0 }]);
    expect(events).toEqual([]);
    // Other writers are refused loudly until it ends.
    const merge = (() => {
      try {
        store.merge([], []);
        return undefined;
      } catch (error) {
        return error;
      }
    })();
    expect(isAppError(merge) && merge.code).toBe('store_busy');
    expect(() => store.reset(['home' as PageName])).toThrow(/large commit/);

    await held;
    const answer = await counted;
    expect(answer[0]).toEqual({ page: 'home', count: 2 });
    expect(store.writesHeld()).toBeUndefined();
    expect(store.count('home' as PageName)).toBe(2);
    expect(store.count(bulk[PAGES - 1]!.page)).toBe(1);
    expect(store.localSeq()).toBe(seq + 1);
    expect(store.versionVector().get(store.replicaId)).toBe(seq + 1);
    expect(store.stats().pages).toBe(PAGES + 1);
    expect(store.digest()).not.toBe(digest);
    expect(events).toEqual(['commit', 'change']);
    // Writes go again.
    expect(store.reset(['home' as PageName])[0]?.page).toBe('home');
  });

  it('commits units queued during a spread commit after it, in order', async () => {
    const store = await open();
    const first = store.increment(newPages(PAGES, 'first'));
    await untilHeld(store);
    const small = store.increment([{ page: '/first/00000' as PageName, by: 5 }]);
    expect(await small).toEqual([{ page: '/first/00000', count: 6 }]);
    expect((await first)[0]).toEqual({ page: '/first/00000', count: 1 });
    expect(store.localSeq()).toBe(2);
  });

  it(`commits ${SPREAD_ABOVE_INCREMENTS} increments or fewer in one turn, never spread`, async () => {
    const store = await open();
    const counted = store.increment(newPages(SPREAD_ABOVE_INCREMENTS));
    for (let i = 0; i < 3 && store.writesHeld() === undefined; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    expect(store.writesHeld()).toBeUndefined();
    expect(await counted).toHaveLength(SPREAD_ABOVE_INCREMENTS);
  });

  it('leaves nothing of a spread commit in the file when the process dies before its COMMIT', async () => {
    const store = await open();
    await store.increment([{ page: 'home' as PageName, by: 1 }]);
    const counted = store.increment(newPages(PAGES)).catch((error: unknown) => error);
    await untilHeld(store);
    store.kill();
    const refused = await counted;
    expect(isAppError(refused) && refused.code).toBe('shutting_down');
    stores.splice(stores.indexOf(store), 1);

    const again = await open();
    expect(again.count('home' as PageName)).toBe(1);
    expect(again.count('/bulk/00000' as PageName)).toBe(0);
    expect(again.stats().pages).toBe(1);
  });

  it('waits for a spread commit at close, then commits what queued meanwhile', async () => {
    const store = await open();
    const first = store.increment(newPages(PAGES));
    await untilHeld(store);
    const second = store.increment([{ page: 'late' as PageName, by: 1 }]);
    await store.close();
    stores.splice(stores.indexOf(store), 1);
    expect(await first).toHaveLength(PAGES);
    expect(await second).toEqual([{ page: 'late', count: 1 }]);
    const again = await open();
    expect(again.count('late' as PageName)).toBe(1);
    expect(again.stats().pages).toBe(PAGES + 1);
  });
  it('answers its units and ends the hold even when cleaning up after a failed spread commit throws', async () => {
    const store = await open();
    await store.increment([{ page: 'home' as PageName, by: 1 }]);
    // Internals on purpose: a failure in the middle of the spread, then one in its cleanup.
    const tables = (store as unknown as { tables: { addLocal: (...args: unknown[]) => bigint; abandon: () => void } }).tables;
    const addLocal = tables.addLocal.bind(tables);
    const abandon = tables.abandon.bind(tables);
    let calls = 0;
    tables.addLocal = (...args: unknown[]) => {
      if (++calls === PAGES / 2) throw new Error('a failure in the middle of the commit');
      return addLocal(...args);
    };
    tables.abandon = () => {
      tables.abandon = abandon;
      throw new Error('a failure while cleaning up');
    };
    const counted = store.increment(newPages(PAGES)).catch((error: unknown) => error);
    const { held } = await untilHeld(store);
    await held;
    const refused = await counted;
    expect(isAppError(refused) && refused.code).toBe('internal');
    tables.addLocal = addLocal;
    expect(store.writesHeld()).toBeUndefined();
    expect(await store.increment([{ page: 'home' as PageName, by: 1 }])).toEqual([{ page: 'home', count: 2 }]);
    expect(store.count('/bulk/00000' as PageName)).toBe(0);
  });
  it('leaves no WAL behind after a spread commit and a clean close (the writer closes last and checkpoints)', async () => {
    const store = await open();
    await store.increment(newPages(PAGES));
    await store.close();
    stores.splice(stores.indexOf(store), 1);
    const wal = `${path}-wal`;
    expect(existsSync(wal) ? statSync(wal).size : 0).toBe(0);
  });
  it('reads during a spread commit from the file it opened, even when another file was put at the path since', async () => {
    const store = await open();
    await store.increment([{ page: 'home' as PageName, by: 1 }]);
    // Another database at the path, before the write-health tick noticed (it is off here).
    const otherPath = join(dir, 'other.db');
    const other = await openSqliteStore({ path: otherPath, writeHealthIntervalMs: 0, pruneIntervalMs: 0 });
    await other.increment([{ page: 'home' as PageName, by: 99 }]);
    await other.close();
    // As a restore does: the file alone, without the WAL of the one it replaces.
    rmSync(`${path}-wal`, { force: true });
    rmSync(`${path}-shm`, { force: true });
    renameSync(otherPath, path);
    const counted = store.increment(newPages(PAGES));
    const { held } = await untilHeld(store);
    expect(store.count('home' as PageName)).toBe(1);
    expect(store.stats().pages).toBe(1);
    await held;
    expect(await counted).toHaveLength(PAGES);
    expect(store.count('home' as PageName)).toBe(1);
  });
  it('scans the slots after a failed background recount only once a spread commit ended: the digest shown and stored is the true one', async () => {
    let store = await open();
    await store.increment(newPages(3_000, 'old'));
    // Unclean: the digest row stays NULL, so the next open recounts in the background.
    store.kill();
    stores.splice(stores.indexOf(store), 1);
    store = await openSqliteStore({ path, writeHealthIntervalMs: 0, pruneIntervalMs: 0, digestRecount: 'background' });
    stores.push(store);
    // Internals on purpose: the recount keeps going until a spread commit is open, then fails in it.
    const job = (store as unknown as { recount: { job: { step: (rows: number) => boolean } } | undefined }).recount?.job;
    expect(job).toBeDefined();
    if (job === undefined) return;
    const step = job.step.bind(job);
    let heldSteps = 0;
    job.step = (rows: number) => {
      if (store.writesHeld() === undefined) return step(rows);
      if (++heldSteps < 10) return false;
      throw new Error('a failure of the recount during a spread commit');
    };
    const counted = store.increment(newPages(PAGES, 'new'));
    const { held } = await untilHeld(store);
    await held;
    await counted;
    expect(heldSteps).toBeGreaterThanOrEqual(10);
    await store.digestKnown();
    const shown = store.digest();
    await store.close();
    stores.splice(stores.indexOf(store), 1);
    const db = new Database(path);
    const stored = (db.prepare('SELECT digest FROM store_stats WHERE id = 1').get() as { digest: string | null }).digest;
    db.prepare('UPDATE store_stats SET digest = NULL WHERE id = 1').run();
    db.close();
    // The truth: every slot scanned at open.
    const truth = await open();
    expect(shown).toBe(truth.digest());
    expect(stored).toBe(truth.digest());
  });

  it('turns the loop during the tail too: the visitors and the series tables (a histogram per page) are steps like the pages', async () => {
    // A clock that advances 1 ms a reading: the store turns the loop after a fixed number of steps,
    // so the turns count the steps whatever this machine's speed.
    let fake = 0;
    const clock = vi.spyOn(performance, 'now').mockImplementation(() => (fake += 1));
    try {
      const turnsOf = async (store: SqliteStore, increments: Increment[]): Promise<number> => {
        const counted = store.increment(increments);
        await untilHeld(store);
        let turns = 0;
        while (store.writesHeld() !== undefined) {
          turns++;
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        await counted;
        return turns;
      };
      const store = await open();
      const plain = await turnsOf(store, newPages(PAGES, 'plain'));
      // The same number of new pages, each viewed by a visitor: one more step per increment
      // (its register) and one per page-day histogram written at the end, PAGES each.
      const viewed = newPages(PAGES, 'viewed').map((increment, i) => ({ ...increment, visitor: { index: i % 16_384, rank: 1 + (i % 20) } }));
      const withVisitors = await turnsOf(store, viewed);
      expect(withVisitors - plain).toBeGreaterThan(PAGES / 100);
      const today = dayOf(Date.now());
      expect(store.series({ page: viewed[0]!.page, step: 'day', from: today, to: today + 1 })[0]?.visitors).toBe(1);
    } finally {
      clock.mockRestore();
    }
  });
});
