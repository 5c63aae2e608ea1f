/** Merge: the pure applySlots oracle on the real path, interning of new replicas. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { allSlots, applySlots, emptyState, pageValue, stateDigest, type Slot } from '../../../src/crdt/g-counter.js';
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
  });
}
