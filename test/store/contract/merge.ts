/** Merge: the pure applySlots oracle on the real path, interning of new replicas. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { allSlots, applySlots, emptyState, MAX_TOTAL, pageValue, type Slot } from '../../../src/crdt/g-counter.js';
import { stateDigest } from '../../../src/crdt/digest.js';
import type { PageName } from '../../../src/ids.js';
import { type ContractContext, page, replica, utf8Order } from './harness.js';

export function mergeContract(ctx: ContractContext): void {
  const { open } = ctx;

  describe('merge', () => {
    const replicas = ['a1', 'b2', 'c3', 'd4'].map(replica);
    const pages = ['home', 'about', 'é', '\u{1F600}', '\uE000', 'Z'].map(page);
    const slotArbitrary = fc.record({
      page: fc.constantFrom(...pages),
      replica: fc.constantFrom(...replicas),
      // Small counts too, so equal counts with different seqs come up.
      count: fc.oneof(fc.nat({ max: 3 }), fc.nat({ max: 1000 })),
      seq: fc.integer({ min: 1, max: 50 }),
    });

    it('equals the pure applySlots oracle for any slots, chunks, order and duplicates', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(slotArbitrary, { maxLength: 40 }),
          fc.array(fc.nat({ max: 39 }), { maxLength: 10 }),
          fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 10 }),
          async (slots, duplicates, chunkSizes) => {
            const h = await ctx.createHarness();
            const store = await h.open();
            try {
              const oracle = emptyState();
              const input: Slot[] = [...slots, ...duplicates.flatMap((i) => (slots[i] ? [slots[i]] : []))];
              let offset = 0;
              let chunk = 0;
              while (offset < input.length) {
                const size = chunkSizes[chunk++ % chunkSizes.length] ?? 1;
                const part = input.slice(offset, offset + size);
                offset += size;
                const expectedChanged = new Map<PageName, number>();
                const before = new Map(part.map((slot) => [slot.page, pageValue(oracle, slot.page)]));
                applySlots(oracle, part);
                for (const [p, total] of before) if (pageValue(oracle, p) > total) expectedChanged.set(p, pageValue(oracle, p));
                const result = store.merge(part, []);
                expect(new Map(result.changed.map((c) => [c.page, c.count]))).toEqual(expectedChanged);
                expect(result.identityChanged).toBeUndefined();
              }
              for (const p of pages) {
                expect(store.count(p)).toBe(pageValue(oracle, p));
                const expected = [...allSlots(oracle)].filter((slot) => slot.page === p);
                const sortSlots = (list: Slot[]) => [...list].sort((x, y) => utf8Order(x.replica, y.replica));
                expect(sortSlots(store.pageSlots(p))).toEqual(sortSlots(expected));
              }
              expect(store.digest()).toBe(stateDigest(allSlots(oracle)));
              for (const r of replicas) {
                const expected = [...allSlots(oracle)]
                  .filter((slot) => slot.replica === r)
                  .sort((x, y) => x.seq - y.seq || utf8Order(x.page, y.page));
                expect(store.slotsAfter(r, { seq: 0 }, 1000)).toEqual(expected);
              }
            } finally {
              await store.close();
              await h.cleanup();
            }
          },
        ),
        { numRuns: 40 },
      );
    });

    it('interns new replicas and reports them in stats', async () => {
      const store = await open();
      store.merge(
        [
          { page: page('p'), replica: replica('1'), count: 1, seq: 1 },
          { page: page('p'), replica: replica('2'), count: 2, seq: 1 },
          { page: page('q'), replica: replica('2'), count: 3, seq: 2 },
        ],
        [{ replica: replica('3'), after: 0, upTo: 1 }],
      );
      expect(store.stats()).toMatchObject({ pages: 2, slots: 3, replicas: 4 });
      expect(store.count(page('p'))).toBe(3);
    });
    it('saturates a page whose merged slots sum past 2^53-1: the same capped total and digest in any order, no more increments', async () => {
      const big = (r: string, count: number, seq: number): Slot => ({ page: page('big'), replica: replica(r), count, seq });
      // Each slot a safe integer; together 2^53 + 3 (as doubles 2^52+1 + 2^52+2 is 2^53+4: imprecise).
      const slots = [big('a1', 2 ** 52 + 1, 3), big('b2', 2 ** 52 + 2, 4), big('c3', 5, 1)];
      const digests = new Set<string>();
      for (const order of [[0, 1, 2], [2, 1, 0], [1, 0, 2]]) {
        const h = await ctx.createHarness();
        const store = await h.open();
        try {
          for (const i of order) store.merge([slots[i]!], []);
          expect(store.count(page('big'))).toBe(MAX_TOTAL);
          expect(store.listPages({ limit: 10 })).toEqual([{ page: page('big'), count: MAX_TOTAL }]);
          digests.add(store.digest());
          // The slots are kept exactly: a raise of one still merges, the total stays capped.
          store.merge([big('c3', 6, 2)], []);
          expect(store.pageSlots(page('big')).find((slot) => slot.replica === replica('c3'))?.count).toBe(6);
          expect(store.count(page('big'))).toBe(MAX_TOTAL);
          await expect(store.increment([{ page: page('big'), by: 1 }])).rejects.toMatchObject({ code: 'counter_overflow' });
          // A reset ends the saturation like any other count.
          store.reset([page('big')]);
          expect(store.count(page('big'))).toBe(0);
        } finally {
          await store.close();
        }
      }
      expect(digests.size).toBe(1);
    });
  });
}
