/** Increments: group commit, overflow, bad input, commit and change events. */
import { describe, expect, it } from 'vitest';
import type { Delta, PageCount } from '../../../src/store/store.js';
import { type ContractContext, MAX, page, rejection, replica, utf8Order } from './harness.js';

export function incrementContract(ctx: ContractContext): void {
  const { open } = ctx;

  describe('increments', () => {
    it('counts increments and answers with the page totals', async () => {
      const store = await open();
      expect(store.count(page('home'))).toBe(0);
      expect(await store.increment([{ page: page('home'), by: 1 }])).toEqual([{ page: 'home', count: 1 }]);
      expect(await store.increment([{ page: page('home'), by: 5 }])).toEqual([{ page: 'home', count: 6 }]);
      expect(
        await store.increment([
          { page: page('a'), by: 2 },
          { page: page('home'), by: 1 },
          { page: page('a'), by: 3 },
        ]),
      ).toEqual([
        { page: 'a', count: 5 },
        { page: 'home', count: 7 },
        { page: 'a', count: 5 },
      ]);
      expect(store.count(page('home'))).toBe(7);
      expect(store.count(page('a'))).toBe(5);
      expect(store.count(page('nowhere'))).toBe(0);
      expect(store.localSeq()).toBe(3);
      expect(store.versionVector().get(store.replicaId)).toBe(3);
      expect(store.pageSlots(page('home'))).toEqual([{ page: 'home', replica: store.replicaId, count: 7, seq: 3 }]);
      expect(store.stats()).toMatchObject({ pages: 2, slots: 2, replicas: 1 });
    });

    it('commits increments of one tick together under one seq, and counts every one', async () => {
      const store = await open();
      const deltas: Delta[] = [];
      store.onCommit((delta) => deltas.push(delta));
      const answers = await Promise.all(Array.from({ length: 200 }, () => store.increment([{ page: page('hot'), by: 1 }])));
      expect(store.localSeq()).toBe(1);
      expect(store.count(page('hot'))).toBe(200);
      // Each caller is answered after the shared commit, with the total as of that commit.
      for (const answer of answers) expect(answer).toEqual([{ page: 'hot', count: 200 }]);
      expect(deltas).toHaveLength(1);
      await store.increment([{ page: page('hot'), by: 1 }]);
      expect(store.localSeq()).toBe(2);
    });

    it('refuses a unit that would overflow as a whole, and commits the other units of its flush', async () => {
      const store = await open();
      await store.increment([{ page: page('big'), by: MAX - 10 }]);
      const seq = store.localSeq();
      const overflowing = store.increment([
        { page: page('small'), by: 1 },
        { page: page('big'), by: 5 },
        { page: page('big'), by: 6 },
      ]);
      const fine = store.increment([{ page: page('other'), by: 4 }]);
      const error = await rejection(overflowing);
      expect(error.code).toBe('counter_overflow');
      expect(error.message).toContain('big');
      expect(await fine).toEqual([{ page: 'other', count: 4 }]);
      expect(store.count(page('small'))).toBe(0);
      expect(store.count(page('big'))).toBe(MAX - 10);
      expect(store.localSeq()).toBe(seq + 1);
      // Up to the limit exactly is fine.
      expect(await store.increment([{ page: page('big'), by: 10 }])).toEqual([{ page: 'big', count: MAX }]);
      // A flush where nothing is accepted consumes no seq.
      const before = store.localSeq();
      expect((await rejection(store.increment([{ page: page('big'), by: 1 }]))).code).toBe('counter_overflow');
      expect(store.localSeq()).toBe(before);
    });

    it('counts earlier units of the same flush when checking for overflow', async () => {
      const store = await open();
      await store.increment([{ page: page('p'), by: MAX - 3 }]);
      const first = store.increment([{ page: page('p'), by: 2 }]);
      const second = store.increment([{ page: page('p'), by: 2 }]);
      const third = store.increment([{ page: page('p'), by: 1 }]);
      expect(await first).toEqual([{ page: 'p', count: MAX }]);
      expect((await rejection(second)).code).toBe('counter_overflow');
      expect(await third).toEqual([{ page: 'p', count: MAX }]);
      expect(store.count(page('p'))).toBe(MAX);
    });

    it('refuses a page total that would overflow when the slot alone would not', async () => {
      const store = await open();
      store.merge([{ page: page('p'), replica: replica('a1'), count: MAX - 1, seq: 1 }], []);
      const error = await rejection(store.increment([{ page: page('p'), by: 2 }]));
      expect(error.code).toBe('counter_overflow');
      expect(store.count(page('p'))).toBe(MAX - 1);
      expect(store.localSeq()).toBe(0);
    });

    it('refuses bad increments without counting anything', async () => {
      const store = await open();
      for (const by of [0, -1, 1.5, Number.NaN, MAX + 1]) {
        expect((await rejection(store.increment([{ page: page('x'), by: 1 }, { page: page('y'), by }]))).code).toBe('bad_increment');
      }
      expect((await rejection(store.increment([{ page: page(''), by: 1 }]))).code).toBe('bad_page_name');
      expect(store.count(page('x'))).toBe(0);
      expect(store.localSeq()).toBe(0);
    });

    it('refuses a unit whose page is not a name at all (no string to bind) alone, and commits the other units of its flush', async () => {
      const store = await open();
      // What a caller of the Store API may pass despite the types: none of them binds in SQLite but 5.
      for (const bad of [true, {}, undefined, 5, [page('a')]]) {
        const seq = store.localSeq();
        const before = store.count(page('ok'));
        const good = store.increment([{ page: page('ok'), by: 1 }]);
        const refused = store.increment([
          { page: page('also'), by: 1 },
          { page: bad as unknown as ReturnType<typeof page>, by: 1 },
        ]);
        const later = store.increment([{ page: page('later'), by: 2 }]);
        expect(await good).toEqual([{ page: 'ok', count: before + 1 }]);
        expect((await rejection(refused)).code).toBe('bad_page_name');
        expect((await later)[0]?.page).toBe('later');
        expect(store.count(page('also'))).toBe(0);
        expect(store.localSeq()).toBe(seq + 1);
      }
      expect(store.count(page('ok'))).toBe(5);
      expect(store.count(page('later'))).toBe(10);
    });

    it('reports each local commit as a delta and a change', async () => {
      const store = await open();
      const deltas: Delta[] = [];
      const changes: [readonly PageCount[], string][] = [];
      store.onCommit((delta) => deltas.push(delta));
      const stop = store.onChange((changed, origin) => changes.push([changed, origin]));
      await store.increment([{ page: page('a'), by: 1 }]);
      await Promise.all([
        store.increment([
          { page: page('b'), by: 2 },
          { page: page('a'), by: 1 },
        ]),
        store.increment([{ page: page('a'), by: 3 }]),
      ]);
      const self = store.replicaId;
      expect(deltas).toHaveLength(2);
      expect(deltas[1]?.range).toEqual({ replica: self, after: 1, upTo: 2 });
      expect([...(deltas[1]?.slots ?? [])].sort((x, y) => utf8Order(x.page, y.page))).toEqual([
        { page: 'a', replica: self, count: 5, seq: 2 },
        { page: 'b', replica: self, count: 2, seq: 2 },
      ]);
      expect(changes.at(-1)?.[1]).toBe('local');
      expect([...(changes.at(-1)?.[0] ?? [])].sort((x, y) => utf8Order(x.page, y.page))).toEqual([
        { page: 'a', count: 5 },
        { page: 'b', count: 2 },
      ]);
      // Merges that raise totals report 'merge'; merges that raise nothing report nothing.
      store.merge([{ page: page('a'), replica: replica('f1'), count: 4, seq: 9 }], []);
      expect(changes.at(-1)).toEqual([[{ page: 'a', count: 9 }], 'merge']);
      const seen = changes.length;
      store.merge([{ page: page('a'), replica: replica('f1'), count: 3, seq: 8 }], []);
      expect(changes).toHaveLength(seen);
      stop();
      await store.increment([{ page: page('a'), by: 1 }]);
      expect(changes).toHaveLength(seen);
      expect(deltas).toHaveLength(3);
    });

    it('keeps counting when a listener throws', async () => {
      const store = await open();
      store.onCommit(() => {
        throw new Error('listener bug');
      });
      expect(await store.increment([{ page: page('a'), by: 1 }])).toEqual([{ page: 'a', count: 1 }]);
      expect(await store.increment([{ page: page('a'), by: 1 }])).toEqual([{ page: 'a', count: 2 }]);
    });
  });
}
