/**
 * The union of several stores (src/recovery/union.ts) against the G-Counter's definition: for
 * any increments on any copies, and any partial exchanges between them, the union holds per page
 * the sum over replicas of the highest count any copy holds, its version vector is the pointwise
 * max of theirs, and it keeps counting under an id of its own. Memory twins for speed (the real
 * files are exercised by test/deploy/recover.test.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { dayOf, registerT, SERIES_REGISTER } from '../../src/crdt/series.js';
import type { PageName, ReplicaId } from '../../src/ids.js';
import { openMemoryStore } from '../../src/store/memory-store.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import { mergeInto, stateSize, UNION_PAGES_PER_MERGE, UnsafeCopyError } from '../../src/recovery/union.js';

const PAGES = ['a', 'b', 'c', 'd'] as PageName[];

function allSlots(store: Store): Array<{ page: string; replica: string; count: number }> {
  const slots = [];
  for (let after: PageName | undefined; ; ) {
    const batch = store.listPages(after === undefined ? { limit: 100 } : { after, limit: 100 });
    if (batch.length === 0) break;
    for (const { page } of batch) slots.push(...store.pageSlots(page));
    after = batch[batch.length - 1]?.page;
  }
  return slots;
}

function expectedUnion(stores: readonly Store[]): Record<string, number> {
  const max = new Map<string, number>();
  for (const store of stores) for (const slot of allSlots(store)) max.set(`${slot.page}\0${slot.replica}`, Math.max(max.get(`${slot.page}\0${slot.replica}`) ?? 0, slot.count));
  const counts: Record<string, number> = {};
  for (const [key, count] of max) {
    const page = key.split('\0')[0] as string;
    counts[page] = (counts[page] ?? 0) + count;
  }
  return counts;
}

function counts(store: Store): Record<string, number> {
  return Object.fromEntries(store.listPages({ limit: 1000 }).map(({ page, count }) => [page, count]));
}

const step = fc.oneof(
  fc.record({ kind: fc.constant('count' as const), copy: fc.nat(2), page: fc.constantFrom(...PAGES), by: fc.integer({ min: 1, max: 5 }) }),
  fc.record({ kind: fc.constant('exchange' as const), from: fc.nat(2), to: fc.nat(2) }),
);

describe('the union of several copies', () => {
  it('holds, per page and replica, the highest count any copy holds, and their combined version vector', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 40 }), async (steps) => {
        const copies = await Promise.all([0, 1, 2].map(() => openMemoryStore()));
        for (const s of steps) {
          if (s.kind === 'count') await copies[s.copy]?.increment([{ page: s.page, by: s.by }]);
          else if (s.from !== s.to) mergeInto(copies[s.to] as Store, copies[s.from] as Store);
        }
        const union = await openMemoryStore();
        const held = copies.map((copy) => mergeInto(union, copy));
        expect(counts(union)).toEqual(expectedUnion(copies));
        for (const [i, copy] of copies.entries()) expect(held[i]).toEqual(stateSize(copy));
        for (const copy of copies) {
          for (const [replica, seq] of copy.versionVector()) expect(union.versionVector().get(replica) ?? 0).toBeGreaterThanOrEqual(seq);
        }
        // Merging again changes nothing (max is idempotent).
        const before = union.digest();
        for (const copy of copies) mergeInto(union, copy);
        expect(union.digest()).toBe(before);
        // The union counts under its own id, which no copy knows.
        for (const copy of copies) expect(copy.versionVector().has(union.replicaId)).toBe(false);
        await union.increment([{ page: PAGES[0] as PageName, by: 1 }]);
        expect(union.count(PAGES[0] as PageName)).toBe((expectedUnion(copies)[PAGES[0] as string] ?? 0) + 1);
        await Promise.all([...copies, union].map((store) => store.close()));
      }),
      { numRuns: 60 },
    );
  });

  it('merges more pages than one batch holds', async () => {
    const source = await openMemoryStore();
    const pages = Array.from({ length: UNION_PAGES_PER_MERGE * 2 + 3 }, (_, i) => ({ page: `p${String(i).padStart(5, '0')}` as PageName, by: 1 + (i % 3) }));
    await source.increment(pages);
    const union = await openMemoryStore();
    expect(mergeInto(union, source)).toEqual({ pages: pages.length, views: pages.reduce((sum, { by }) => sum + by, 0) });
    expect(union.digest()).toBe(source.digest());
    expect(union.versionVector().get(source.replicaId)).toBe(source.localSeq());
  });
});

describe('the union of a copy that claims more than it holds', () => {
  it('carries no version-vector entry above every seq of that replica’s slots (a real SQLite copy, edited)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'union-vv-'));
    try {
      const path = join(dir, 'copy.db');
      const copy = await openSqliteStore({ path });
      await copy.increment([{ page: 'home' as PageName, by: 2 }]);
      await copy.increment([{ page: 'about' as PageName, by: 1 }]);
      const own = copy.replicaId;
      await copy.close();
      // A forged (or damaged) file: the vector says 1000 commits of `own` are in, the slots hold 2.
      const db = new Database(path);
      db.prepare('UPDATE replicas SET seq = 1000 WHERE replica_id = ?').run(own);
      db.close();
      const source = await openSqliteStore({ path });
      const union = await openMemoryStore();
      expect(mergeInto(union, source)).toEqual({ pages: 2, views: 3 });
      expect(union.count('home' as PageName)).toBe(2);
      expect(union.versionVector().has(own)).toBe(false);
      await Promise.all([source.close(), union.close()]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the union checks series slots like a peer’s', () => {
  it('refuses a copy holding a register rank above 51 before merging the series batch that holds it', async () => {
    // The store's merge trusts its input (the codec checks peers): a forged copy can hold anything.
    const source = await openMemoryStore();
    await source.increment([{ page: 'home' as PageName, by: 2, visitor: { index: 5, rank: 3 } }]);
    const day = dayOf(Date.now());
    const forger = '00000000000000000000000000000bad' as ReplicaId;
    source.merge(
      [
        { page: 'home' as PageName, replica: forger, count: 1, seq: 1 },
        { page: 'home' as PageName, replica: forger, count: 10 ** 9, seq: 1, kind: SERIES_REGISTER, t: registerT(day, 9) },
      ],
      [],
    );
    const union = await openMemoryStore();
    expect(() => mergeInto(union, source)).toThrow(UnsafeCopyError);
    expect(() => mergeInto(union, source)).toThrow(/rank must be 1–51, got 1000000000/);
    // The batch holding it was not merged (the recovery then discards the whole union).
    expect(union.slotsAfter(forger, { seq: 0 }, 100).filter((slot) => slot.kind === SERIES_REGISTER)).toEqual([]);
    await Promise.all([source.close(), union.close()]);
  });
});

describe('the union and resets', () => {
  it('keeps a reset that one backup holds over an older backup that still has the old counts', async () => {
    const before = await openMemoryStore();
    const after = await openMemoryStore();
    await before.increment([{ page: 'p' as PageName, by: Number.MAX_SAFE_INTEGER }]);
    mergeInto(after, before);
    after.reset(['p' as PageName]);
    await after.increment([{ page: 'p' as PageName, by: 5 }]);
    for (const order of [
      [before, after],
      [after, before],
    ]) {
      const union = await openMemoryStore();
      for (const copy of order) mergeInto(union, copy as Store);
      expect(union.count('p' as PageName)).toBe(5);
      expect(union.digest()).toBe(after.digest());
      await union.close();
    }
    await before.close();
    await after.close();
  });
});
