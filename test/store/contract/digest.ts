/** The digest: equal exactly when the counts are, always equal to the from-scratch digest. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Slot } from '../../../src/crdt/g-counter.js';
import { stateDigest } from '../../../src/crdt/digest.js';
import type { PageName } from '../../../src/ids.js';
import type { Delta, Store } from '../../../src/store/store.js';
import { type ContractContext, MAX, page, rejection, replica } from './harness.js';

export function digestContract(ctx: ContractContext): void {
  const { open } = ctx;

  describe('digest', () => {
    const others = ['a1', 'b2', 'c3'].map(replica);
    const names = ['home', 'about', 'é', '\u{1F600}', 'Z'].map(page);
    const foreignSlot = fc.record({
      page: fc.constantFrom(...names),
      replica: fc.constantFrom(...others),
      count: fc.oneof(fc.nat({ max: 3 }), fc.nat({ max: 1000 })),
      seq: fc.integer({ min: 1, max: 50 }),
    });
    const unit = fc.array(fc.record({ page: fc.constantFrom(...names), by: fc.integer({ min: 1, max: 1000 }) }), { minLength: 1, maxLength: 4 });
    type Step =
      | { readonly kind: 'increments'; readonly units: { page: PageName; by: number }[][] }
      | { readonly kind: 'merge'; readonly slots: Slot[]; readonly chunk: number; readonly duplicates: number[] }
      | { readonly kind: 'overflow'; readonly page: PageName; readonly alongside: { page: PageName; by: number }[] | undefined }
      | { readonly kind: 'rotate' };
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({ kind: fc.constant('increments' as const), units: fc.array(unit, { minLength: 1, maxLength: 3 }) }),
      fc.record({
        kind: fc.constant('merge' as const),
        slots: fc.array(foreignSlot, { maxLength: 12 }),
        chunk: fc.integer({ min: 1, max: 5 }),
        duplicates: fc.array(fc.nat({ max: 11 }), { maxLength: 4 }),
      }),
      fc.record({ kind: fc.constant('overflow' as const), page: fc.constantFrom(...names), alongside: fc.option(unit, { nil: undefined }) }),
      fc.constant({ kind: 'rotate' as const }),
    );

    /** Every slot the store holds with a count above 0, read through the interface. */
    function slotsOf(store: Store): Slot[] {
      const out: Slot[] = [];
      let after: PageName | undefined;
      for (;;) {
        const batch = store.listPages(after === undefined ? { limit: 100 } : { after, limit: 100 });
        if (batch.length === 0) return out;
        for (const { page: p } of batch) out.push(...store.pageSlots(p));
        after = batch.at(-1)?.page;
      }
    }

    const fromScratch = (store: Store) => stateDigest(slotsOf(store));

    async function run(store: Store, s: Step): Promise<void> {
      const before = store.digest();
      if (s.kind === 'increments') {
        // Concurrent units: committed together in one flush.
        await Promise.all(s.units.map((u) => store.increment(u)));
      } else if (s.kind === 'merge') {
        const input = [...s.slots, ...s.duplicates.flatMap((i) => (s.slots[i] ? [s.slots[i]] : []))];
        for (let offset = 0; offset < input.length; offset += s.chunk) store.merge(input.slice(offset, offset + s.chunk), []);
      } else if (s.kind === 'overflow') {
        // A unit that passes the limit on its own (1 + MAX), alone or beside a unit that commits.
        const failing = store.increment([
          { page: s.page, by: 1 },
          { page: s.page, by: MAX },
        ]);
        const fine = s.alongside === undefined ? undefined : store.increment(s.alongside);
        expect((await rejection(failing)).code).toBe('counter_overflow');
        if (fine === undefined) expect(store.digest()).toBe(before);
        else await fine;
      } else {
        store.rotateIdentity('test');
        expect(store.digest()).toBe(before);
      }
    }

    it('has equal digests exactly when the counts are equal', async () => {
      const a = await open();
      const b = await open(await ctx.another());
      expect(a.digest()).toBe(b.digest());
      const slots: Slot[] = [
        { page: page('p'), replica: replica('1'), count: 3, seq: 2 },
        { page: page('q'), replica: replica('2'), count: 1, seq: 1 },
      ];
      a.merge(slots, []);
      expect(a.digest()).not.toBe(b.digest());
      b.merge([...slots].reverse(), []);
      expect(a.digest()).toBe(b.digest());
      b.merge([{ page: page('p'), replica: replica('1'), count: 4, seq: 3 }], []);
      expect(a.digest()).not.toBe(b.digest());
      // The same total from other slots is another state.
      a.merge([{ page: page('p'), replica: replica('3'), count: 1, seq: 1 }], []);
      expect(a.count(page('p'))).toBe(b.count(page('p')));
      expect(a.digest()).not.toBe(b.digest());
    });

    it('equals the from-scratch digest of its slots after any increments, merges, overflows and rotations; reopening keeps it', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
          const h = await ctx.createHarness();
          let store = await h.open();
          try {
            expect(store.digest()).toBe(stateDigest([]));
            for (const s of steps) {
              await run(store, s);
              expect(store.digest()).toBe(fromScratch(store));
            }
            const digest = store.digest();
            await store.close();
            store = await h.open();
            expect(store.digest()).toBe(digest);
            expect(store.digest()).toBe(fromScratch(store));
          } finally {
            await store.close();
            await h.cleanup();
          }
        }),
        { numRuns: 30 },
      );
    });

    it('is equal on two stores that reach the same state by different paths', async () => {
      // Each foreign slot rises through several values; one store sees only the last, the other
      // every value, shuffled, in other chunks, with duplicates.
      const history = fc.array(
        fc.record({
          page: fc.constantFrom(...names),
          replica: fc.constantFrom(...others),
          raises: fc.array(fc.integer({ min: 1, max: 500 }), { minLength: 1, maxLength: 4 }),
        }),
        { maxLength: 8 },
      );
      await fc.assert(
        fc.asyncProperty(
          history,
          fc.array(unit, { maxLength: 4 }),
          fc.array(fc.nat(), { minLength: 40, maxLength: 40 }),
          fc.integer({ min: 1, max: 6 }),
          async (raises, localUnits, order, chunk) => {
            const ha = await ctx.createHarness();
            const hb = await ctx.createHarness();
            const a = await ha.open();
            const b = await hb.open();
            try {
              // Foreign values: counts and seqs rising per (page, replica).
              const every: Slot[] = [];
              const latest = new Map<string, Slot>();
              for (const r of raises) {
                const key = `${r.replica}/${r.page}`;
                let current = latest.get(key);
                for (const by of r.raises) {
                  current = { page: r.page, replica: r.replica, count: (current?.count ?? 0) + by, seq: (current?.seq ?? 0) + 1 };
                  every.push(current);
                }
                if (current !== undefined) latest.set(key, current);
              }
              // a: its own increments (one commit each), then the final foreign values at once.
              const deltas: Delta[] = [];
              a.onCommit((delta) => deltas.push(delta));
              for (const u of localUnits) await a.increment(u);
              a.merge([...latest.values()], []);
              // b: every intermediate value of a's slots and of the foreign ones, shuffled and chunked.
              const input = [...every, ...deltas.flatMap((delta) => delta.slots)];
              const shuffled = input.map((slot, i) => ({ slot, key: order[i % order.length] ?? 0 })).sort((x, y) => x.key - y.key);
              const all = [...shuffled.map((x) => x.slot), ...input.slice(0, 3)];
              for (let offset = 0; offset < all.length; offset += chunk) b.merge(all.slice(offset, offset + chunk), []);
              for (const n of names) expect(b.count(n)).toBe(a.count(n));
              expect(b.digest()).toBe(a.digest());
              expect(a.digest()).toBe(fromScratch(b));
            } finally {
              await a.close();
              await b.close();
              await ha.cleanup();
              await hb.cleanup();
            }
          },
        ),
        { numRuns: 25 },
      );
    });

    it('is unchanged by a flush where every unit fails, by a merge that raises nothing, and by rotation', async () => {
      const store = await open();
      await store.increment([{ page: page('p'), by: 3 }]);
      store.merge([{ page: page('p'), replica: replica('a1'), count: 5, seq: 2 }], []);
      const digest = store.digest();
      const failing = [
        store.increment([{ page: page('q'), by: 1 }, { page: page('p'), by: MAX }]),
        store.increment([{ page: page('p'), by: MAX - 7 }]),
      ];
      for (const f of failing) expect((await rejection(f)).code).toBe('counter_overflow');
      expect(store.digest()).toBe(digest);
      // Lower or equal counts (an equal count with a higher seq replaces the slot, same count).
      store.merge([{ page: page('p'), replica: replica('a1'), count: 4, seq: 9 }, { page: page('p'), replica: replica('a1'), count: 5, seq: 3 }], []);
      expect(store.digest()).toBe(digest);
      store.rotateIdentity('test');
      expect(store.digest()).toBe(digest);
      // A merge that mints (own slots beyond the local seq) changes the digest only by its slot.
      const own = store.replicaId;
      const result = store.merge([{ page: page('r'), replica: own, count: 2, seq: 7 }], []);
      expect(result.identityChanged).toBeDefined();
      expect(store.digest()).toBe(fromScratch(store));
      expect(store.digest()).not.toBe(digest);
    });
  });
}
