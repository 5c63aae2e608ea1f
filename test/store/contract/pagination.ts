/** Reading in pages: slotsAfter by (seq, page) cursor, listPages in UTF-8 byte order. */
import { describe, expect, it } from 'vitest';
import type { Slot } from '../../../src/crdt/g-counter.js';
import type { PageName } from '../../../src/ids.js';
import type { PageCount } from '../../../src/store/store.js';
import { type ContractContext, page, replica, utf8Order } from './harness.js';

export function paginationContract(ctx: ContractContext): void {
  const { open } = ctx;

  describe('pagination', () => {
    it('pages through slotsAfter across a big commit that shares one seq', async () => {
      const store = await open();
      const names = Array.from({ length: 250 }, (_, i) => page(`page-${i}-${i % 7 === 0 ? 'é' : i % 5 === 0 ? '\u{1F600}' : '\uE000'}`));
      await store.increment(names.map((name) => ({ page: name, by: 1 })));
      await store.increment(names.slice(0, 10).map((name) => ({ page: name, by: 1 })));
      const self = store.replicaId;
      const seen: Slot[] = [];
      let cursor: { seq: number; page?: PageName } = { seq: 0 };
      for (;;) {
        const batch = store.slotsAfter(self, cursor, 64);
        if (batch.length === 0) break;
        expect(batch.length).toBeLessThanOrEqual(64);
        seen.push(...batch);
        const last = batch.at(-1) as Slot;
        cursor = { seq: last.seq, page: last.page };
      }
      const expected = [
        ...names.slice(10).sort(utf8Order).map((p) => ({ page: p, replica: self, count: 1, seq: 1 })),
        ...names.slice(0, 10).sort(utf8Order).map((p) => ({ page: p, replica: self, count: 2, seq: 2 })),
      ];
      expect(seen).toEqual(expected);
      // A cursor without a page means "after this seq".
      expect(store.slotsAfter(self, { seq: 1 }, 1000)).toEqual(expected.slice(240));
      expect(store.slotsAfter(self, { seq: 2 }, 1000)).toEqual([]);
      expect(store.slotsAfter(replica('99'), { seq: 0 }, 10)).toEqual([]);
      // The highest seq held per replica: slots only, not the vector.
      store.merge([{ page: page('x'), replica: replica('77'), count: 1, seq: 9 }, { page: page('y'), replica: replica('77'), count: 1, seq: 4 }], []);
      expect(store.highestSlotSeqs().get(replica('77'))).toBe(9);
      expect(store.versionVector().get(replica('77'))).toBeUndefined();
      expect(store.highestSlotSeqs().get(self)).toBe(2);
    });

    it('lists pages in UTF-8 byte order, paginated', async () => {
      const store = await open();
      const names = ['b', 'a', 'Z', 'é', '\uE000', '\uFFFD', '\u{1F600}', '\u{10000}', 'a b', 'ab', '0'];
      await store.increment(names.map((name, i) => ({ page: page(name), by: i + 1 })));
      const sorted = [...names].sort(utf8Order);
      // JavaScript's own order differs here, so this checks byte order for real.
      expect(sorted).not.toEqual([...names].sort());
      const listed: PageCount[] = [];
      let after: PageName | undefined;
      for (;;) {
        const batch = store.listPages(after === undefined ? { limit: 3 } : { after, limit: 3 });
        if (batch.length === 0) break;
        listed.push(...batch);
        after = batch.at(-1)?.page;
      }
      expect(listed.map((p) => p.page)).toEqual(sorted);
      expect(listed.map((p) => p.count)).toEqual(sorted.map((name) => names.indexOf(name) + 1));
      expect(store.listPages({ after: page('\uE000'), limit: 2 }).map((p) => p.page)).toEqual(sorted.slice(sorted.indexOf('\uE000') + 1).slice(0, 2));
      expect(store.listPages({ after: page('zzz-not-a-page'), limit: 100 }).map((p) => p.page)).toEqual(sorted.filter((n) => utf8Order(n, 'zzz-not-a-page') > 0));
      expect(store.listPages({ limit: 0 })).toEqual([]);
    });
  });
}
