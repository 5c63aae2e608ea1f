/** Resets: the epoch rule of src/crdt/reset.ts on the real path (oracle: applySlots), tombstones, reopen. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { allSlots, applySlots, emptyState, pageValue, type Slot } from '../../../src/crdt/g-counter.js';
import { stateDigestSum, formatDigest } from '../../../src/crdt/digest.js';
import type { PageName } from '../../../src/ids.js';
import type { Delta } from '../../../src/store/store.js';
import { type ContractContext, MAX, page, replica, thrown, utf8Order } from './harness.js';

export function resetContract(ctx: ContractContext): void {
  const { open } = ctx;

  describe('resets', () => {
    const replicas = ['a1', 'b2', 'c3'].map(replica);
    const pages = ['home', 'é', '\u{1F600}', 'Z'].map(page);
    const slotArbitrary = fc
      .record({
        page: fc.constantFrom(...pages),
        replica: fc.constantFrom(...replicas),
        count: fc.oneof(fc.nat({ max: 3 }), fc.nat({ max: 1000 })),
        seq: fc.integer({ min: 1, max: 50 }),
        epoch: fc.nat({ max: 3 }),
      })
      .map((slot): Slot => (slot.epoch === 0 ? { page: slot.page, replica: slot.replica, count: slot.count, seq: slot.seq } : slot));

    it('merges slots of any epochs like the pure oracle: higher epoch wins, equal epochs max-merge', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(slotArbitrary, { maxLength: 40 }), fc.integer({ min: 1, max: 8 }), async (slots, size) => {
          const h = await ctx.createHarness();
          const store = await h.open();
          try {
            const oracle = emptyState();
            for (let offset = 0; offset < slots.length; offset += size) {
              const part = slots.slice(offset, offset + size);
              const before = new Map(part.map((slot) => [slot.page, pageValue(oracle, slot.page)]));
              applySlots(oracle, part);
              const expected = new Map<PageName, number>();
              for (const [p, total] of before) if (pageValue(oracle, p) !== total) expected.set(p, pageValue(oracle, p));
              expect(new Map(store.merge(part, []).changed.map((c) => [c.page, c.count]))).toEqual(expected);
            }
            for (const p of pages) {
              expect(store.count(p)).toBe(pageValue(oracle, p));
              const sortSlots = (list: Slot[]) => [...list].sort((x, y) => utf8Order(x.replica, y.replica));
              expect(sortSlots(store.pageSlots(p))).toEqual(sortSlots([...allSlots(oracle)].filter((slot) => slot.page === p)));
            }
            expect(store.digest()).toBe(formatDigest(stateDigestSum(oracle)));
            for (const r of replicas) {
              const expected = [...allSlots(oracle)].filter((slot) => slot.replica === r).sort((x, y) => x.seq - y.seq || utf8Order(x.page, y.page));
              expect(store.slotsAfter(r, { seq: 0 }, 1000)).toEqual(expected);
            }
          } finally {
            await store.close();
            await h.cleanup();
          }
        }),
        { numRuns: 40 },
      );
    });

    it('resets a page to zero as one local commit whose tombstone travels as a delta', async () => {
      const store = await open();
      const deltas: Delta[] = [];
      store.onCommit((delta) => deltas.push(delta));
      await store.increment([{ page: page('p'), by: 5 }, { page: page('q'), by: 2 }]);
      const before = store.digest();
      expect(store.reset([page('p'), page('p')])).toEqual([
        { page: page('p'), epoch: 1 },
        { page: page('p'), epoch: 1 },
      ]);
      expect(store.count(page('p'))).toBe(0);
      expect(store.count(page('q'))).toBe(2);
      expect(store.localSeq()).toBe(2);
      expect(store.listPages({ limit: 10 })).toEqual([{ page: page('q'), count: 2 }]);
      expect(store.listPages({ limit: 10, withResets: true })).toEqual([
        { page: page('p'), count: 0 },
        { page: page('q'), count: 2 },
      ]);
      expect(deltas[1]).toEqual({ range: { replica: store.replicaId, after: 1, upTo: 2 }, slots: [{ page: page('p'), replica: store.replicaId, count: 0, seq: 2, epoch: 1 }] });
      expect(store.digest()).not.toBe(before);
      // It counts again from zero, in the new epoch.
      expect(await store.increment([{ page: page('p'), by: 1 }])).toEqual([{ page: page('p'), count: 1 }]);
      expect(store.pageSlots(page('p'))).toEqual([{ page: page('p'), replica: store.replicaId, count: 1, seq: 3, epoch: 1 }]);
      expect(store.reset([page('p')])).toEqual([{ page: page('p'), epoch: 2 }]);
      expect(store.count(page('p'))).toBe(0);
    });

    it('drops slots of an older epoch, and a newer epoch drops the page’s slots', async () => {
      const store = await open();
      await store.increment([{ page: page('p'), by: 3 }]);
      const other = replica('b2');
      // A peer's reset (epoch 1) arrives: our slot of epoch 0 goes.
      expect(store.merge([{ page: page('p'), replica: other, count: 0, seq: 4, epoch: 1 }], []).changed).toEqual([{ page: page('p'), count: 0 }]);
      expect(store.count(page('p'))).toBe(0);
      // A late increment of the old epoch (concurrent with the reset) is dropped.
      expect(store.merge([{ page: page('p'), replica: replica('c3'), count: 9, seq: 1 }], []).changed).toEqual([]);
      expect(store.count(page('p'))).toBe(0);
      // Increments after the reset count, from any replica.
      await store.increment([{ page: page('p'), by: 2 }]);
      store.merge([{ page: page('p'), replica: other, count: 4, seq: 5, epoch: 1 }], []);
      expect(store.count(page('p'))).toBe(6);
    });

    it('repairs a page at the limit: after a reset it counts again', async () => {
      const store = await open();
      await store.increment([{ page: page('p'), by: MAX }]);
      await expect(store.increment([{ page: page('p'), by: 1 }])).rejects.toMatchObject({ code: 'counter_overflow' });
      store.reset([page('p')]);
      expect(await store.increment([{ page: page('p'), by: 1 }])).toEqual([{ page: page('p'), count: 1 }]);
    });

    it('refuses a bad page name and resets nothing', async () => {
      const store = await open();
      await store.increment([{ page: page('p'), by: 1 }]);
      expect(thrown(() => store.reset([page('p'), page('')])).code).toBe('bad_page_name');
      expect(store.count(page('p'))).toBe(1);
      expect(store.localSeq()).toBe(1);
    });

    it('keeps resets, epochs and the digest across a reopen', async () => {
      const h = ctx.harness();
      const store = await h.open();
      await store.increment([{ page: page('p'), by: 4 }]);
      store.reset([page('p')]);
      await store.increment([{ page: page('p'), by: 2 }]);
      const digest = store.digest();
      await store.close();
      const again = await open(h);
      expect(again.count(page('p'))).toBe(2);
      expect(again.digest()).toBe(digest);
      await again.increment([{ page: page('p'), by: 1 }]);
      expect(again.count(page('p'))).toBe(3);
    });

    it('two stores that exchange everything converge on resets, with equal digests', async () => {
      const a = await open();
      const b = await open(await ctx.another());
      await a.increment([{ page: page('p'), by: 3 }]);
      await b.increment([{ page: page('p'), by: 4 }]);
      a.reset([page('p')]);
      await b.increment([{ page: page('p'), by: 1 }]); // concurrent with the reset: may be discarded
      const exchange = (from: typeof a, to: typeof a) => {
        for (const r of [a.replicaId, b.replicaId]) to.merge(from.slotsAfter(r, { seq: 0 }, 1000), []);
      };
      exchange(a, b);
      exchange(b, a);
      expect(a.count(page('p'))).toBe(0);
      expect(b.count(page('p'))).toBe(0);
      expect(a.digest()).toBe(b.digest());
      // Acknowledged after the reset was seen: kept everywhere.
      await b.increment([{ page: page('p'), by: 2 }]);
      exchange(b, a);
      expect(a.count(page('p'))).toBe(2);
      expect(a.digest()).toBe(b.digest());
    });
  });
}
