/**
 * Series slots (src/crdt/series.ts) on the real path: a local view raises its page's hour and day
 * buckets and the visitor's register under the commit's seq; slotsAfter pages through every kind
 * with a full cursor; two stores that exchange their slots end with the same series, the same
 * digest (the from-scratch one over slots of every kind), buckets summing to totals, and merging
 * the same slots again changes nothing.
 */
import { describe, expect, it } from 'vitest';
import { type Slot } from '../../../src/crdt/g-counter.js';
import { stateDigest } from '../../../src/crdt/digest.js';
import { dayOf, hourOf, SERIES_DAY, SERIES_HOUR } from '../../../src/crdt/series.js';
import type { ReplicaId } from '../../../src/ids.js';
import type { SlotCursor, Store } from '../../../src/store/store.js';
import { type ContractContext, MAX, page, replica } from './harness.js';

/** Every slot of every replica held, read `limit` at a time with the full cursor. */
function allSlotsPaged(store: Store, limit: number): Slot[] {
  const out: Slot[] = [];
  for (const replica of store.highestSlotSeqs().keys()) {
    let cursor: SlotCursor = { seq: 0 };
    for (;;) {
      const batch = store.slotsAfter(replica as ReplicaId, cursor, limit);
      out.push(...batch);
      const last = batch.at(-1);
      if (batch.length < limit || last === undefined) break;
      cursor = { seq: last.seq, page: last.page, kind: last.kind ?? 0, t: last.t ?? 0 };
    }
  }
  return out;
}

export function seriesContract(ctx: ContractContext): void {
  describe('series', () => {
    it('raises buckets and registers with each view, pages through every kind, and converges with a peer', async () => {
      const a = await ctx.open(undefined, { analytics: true });
      const b = await ctx.open(await ctx.another(), { analytics: true });
      const visitor = (index: number, rank: number) => ({ index, rank });
      await a.increment([
        { page: page('p'), by: 1, visitor: visitor(5, 3) },
        { page: page('q'), by: 1, visitor: visitor(9, 1) },
      ]);
      await a.increment([{ page: page('p'), by: 2, visitor: visitor(5, 2) }]);
      await b.increment([{ page: page('p'), by: 4, visitor: visitor(700, 4) }]);

      const own = a.slotsAfter(a.replicaId, { seq: 0 }, 1000);
      // A slot keeps the seq of its last raise: commit 2 raised p's total and buckets, not its
      // register (rank 2 after 3); q's total, buckets and register and p's register stay at 1.
      expect(own.filter((slot) => slot.seq === 1).map((slot) => `${slot.page}${slot.kind ?? 0}`)).toEqual(['p3', 'q0', 'q1', 'q2', 'q3']);
      expect(own.filter((slot) => slot.seq === 2).map((slot) => `${slot.page}${slot.kind ?? 0}`)).toEqual(['p0', 'p1', 'p2']);
      expect(allSlotsPaged(a, 2)).toEqual(own);

      for (const [from, to] of [
        [a, b],
        [b, a],
      ] as const) {
        to.merge(allSlotsPaged(from, 1000), []);
      }
      const digest = a.digest();
      expect(b.digest()).toBe(digest);
      expect(stateDigest(allSlotsPaged(a, 3))).toBe(digest);
      const sorted = (store: Store) => allSlotsPaged(store, 1000).map((slot) => JSON.stringify(slot)).sort();
      expect(sorted(b)).toEqual(sorted(a));

      const hour = hourOf(Date.now());
      const day = dayOf(Date.now());
      for (const store of [a, b]) {
        expect(store.series({ page: page('p'), step: 'hour', from: hour - 1, to: hour + 1 }).map((point) => point.views)).toEqual([0, 7]);
        expect(store.series({ page: page('p'), step: 'day', from: day, to: day + 1 })).toEqual([{ t: day, views: 7, visitors: 2 }]);
        expect(store.series({ step: 'day', from: day, to: day + 1 })).toEqual([{ t: day, views: 8, visitors: 3 }]);
        expect(store.count(page('p'))).toBe(7);
      }
      // The same slots again change nothing.
      a.merge(allSlotsPaged(b, 1000), []);
      expect(a.digest()).toBe(digest);
    });

    it('caps a site bucket written first by one transaction past 2^53-1', async () => {
      const store = await ctx.open(undefined, { analytics: true });
      const day = dayOf(Date.now());
      // Two pages at the limit in one commit: the site's new day bucket is their sum, capped.
      await store.increment([
        { page: page('x'), by: MAX },
        { page: page('y'), by: MAX },
      ]);
      expect(store.series({ step: 'day', from: day, to: day + 1 }).map((point) => point.views)).toEqual([MAX]);
    });

    it('sums a site bucket exactly when raises near 2^53-1 and a reset of the same bucket meet in one merge', async () => {
      const other = await ctx.open(undefined, { analytics: true });
      const day = dayOf(Date.now());
      other.merge([{ page: page('z'), replica: replica('e1'), count: 5, seq: 1 }, { page: page('z'), replica: replica('e1'), count: 5, seq: 1, kind: SERIES_DAY, t: day }], [{ replica: replica('e1'), after: 0, upTo: 1 }]);
      // One merge: a's day bucket at the limit from three replicas, then a reset of a (a tombstone).
      const slots: Slot[] = ['e2', 'e3', 'e4'].map((r) => ({ page: page('a'), replica: replica(r), count: MAX, seq: 1, kind: SERIES_DAY, t: day }));
      slots.push({ page: page('a'), replica: replica('e5'), count: 0, seq: 1, epoch: 1 });
      other.merge(slots, []);
      expect(other.series({ step: 'day', from: day, to: day + 1 }).map((point) => point.views)).toEqual([5]);
    });

    it('saturates every sum of buckets at 2^53-1 (points, site buckets, top), and a reset of a saturated bucket sums it again', async () => {
      const store = await ctx.open(undefined, { analytics: true });
      await store.increment([{ page: page('small'), by: 3 }]);
      const hour = hourOf(Date.now());
      const day = dayOf(Date.now());
      // 1,100 replicas at 2^53-1 on one page, in its total, hour and day bucket: 64-bit sums overflow past 1,024.
      const slots: Slot[] = [];
      for (let i = 1; i <= 1_100; i++) {
        const r = replica(`f${i.toString(16)}`);
        slots.push({ page: page('big'), replica: r, count: MAX, seq: 1 }, { page: page('big'), replica: r, count: MAX, seq: 1, kind: SERIES_HOUR, t: hour }, { page: page('big'), replica: r, count: MAX, seq: 1, kind: SERIES_DAY, t: day });
      }
      store.merge(slots, []);
      expect(store.count(page('big'))).toBe(MAX);
      for (const range of [{ page: page('big') }, {}]) {
        expect(store.series({ ...range, step: 'hour', from: hour, to: hour + 1 }).map((point) => point.views)).toEqual([MAX]);
        expect(store.series({ ...range, step: 'day', from: day, to: day + 1 }).map((point) => point.views)).toEqual([MAX]);
      }
      const top = { fromHour: hour - 24 * 30, toHour: hour + 1, limit: 10 };
      expect(store.top(top)).toEqual([
        { page: page('big'), count: MAX },
        { page: page('small'), count: 3 },
      ]);
      // The site's buckets were at the cap: they cannot subtract, and read the rest exactly after the reset.
      store.reset([page('big')]);
      expect(store.series({ step: 'hour', from: hour, to: hour + 1 }).map((point) => point.views)).toEqual([3]);
      expect(store.series({ step: 'day', from: day, to: day + 1 }).map((point) => point.views)).toEqual([3]);
      expect(store.top(top)).toEqual([{ page: page('small'), count: 3 }]);
      // Below the cap a site bucket subtracts exactly as before.
      await store.increment([{ page: page('big'), by: 2 }]);
      store.reset([page('small')]);
      expect(store.series({ step: 'day', from: day, to: day + 1 }).map((point) => point.views)).toEqual([2]);
    });

    it('counts a page in the top list at most at its total: buckets a peer sent above its total slot do not break the early stop', async () => {
      const store = await ctx.open(undefined, { analytics: true });
      await store.increment([
        { page: page('honest'), by: 5 },
        { page: page('second'), by: 4 },
      ]);
      const hour = hourOf(Date.now());
      const day = dayOf(Date.now());
      const liar = replica('bad');
      store.merge(
        [
          { page: page('inflated'), replica: liar, count: 1, seq: 1 },
          { page: page('inflated'), replica: liar, count: 1_000, seq: 1, kind: SERIES_HOUR, t: hour },
          { page: page('inflated'), replica: liar, count: 1_000, seq: 1, kind: SERIES_DAY, t: day },
        ],
        [],
      );
      const range = { fromHour: hour - 24 * 30, toHour: hour + 1 };
      const full = [
        { page: page('honest'), count: 5 },
        { page: page('second'), count: 4 },
        { page: page('inflated'), count: 1 },
      ];
      // Every limit a prefix of the same list (before, limit 3 read the inflated page and put it first; 2 stopped before it).
      for (const limit of [1, 2, 3, 10]) expect(store.top({ ...range, limit }), `limit ${limit}`).toEqual(full.slice(0, limit));
      for (const fromHour of [hour, hour - 5, day * 24]) expect(store.top({ fromHour, toHour: hour + 1, limit: 3 })).toEqual(full);
      // The series themselves show what the slots hold.
      expect(store.series({ page: page('inflated'), step: 'day', from: day, to: day + 1 }).map((point) => point.views)).toEqual([1_000]);
    });
  });
}
