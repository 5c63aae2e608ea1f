/**
 * The store contract: one suite that SqliteStore and MemoryStore both pass. The pure CRDT of
 * src/crdt is the oracle. A harness owns one persistent location (a database and the identity
 * file beside it) and can reopen it, crash the store, restore a stale copy of the database (taken
 * while stopped or while running), and tamper with the identity file.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applySlots, emptyState, pageValue, stateDigest, allSlots, type Slot } from '../../src/crdt/g-counter.js';
import type { SeqRange } from '../../src/crdt/version-vector.js';
import { AppError } from '../../src/errors.js';
import type { PageName, RandomBytes, ReplicaId } from '../../src/ids.js';
import type { IdentityRecord } from '../../src/store/identity.js';
import type { Delta, PageCount, Store } from '../../src/store/store.js';

export type KillableStore = Store & { kill(): void };

export interface StoreHarness {
  /** Opens (or reopens) the store at this harness's location. */
  open(options?: { random?: RandomBytes }): Promise<KillableStore>;
  /**
   * A copy of the database as it is now: the store closed, or open and between commits (a copy
   * taken while the node runs).
   */
  snapshotDatabase(): Promise<unknown>;
  /** Puts a copy back in place of the database (store closed); the identity file stays. */
  restoreDatabase(snapshot: unknown): Promise<void>;
  deleteIdentityFile(): Promise<void>;
  writeIdentityFile(identity: IdentityRecord): Promise<void>;
  /** Marks the database as written by a newer schema than the code knows. */
  makeDatabaseTooNew(): Promise<void>;
  /** Releases everything (stores still open are closed by the suite first). */
  cleanup(): Promise<void>;
}

const MAX = Number.MAX_SAFE_INTEGER;
const page = (name: string) => name as PageName;
const replica = (hex: string) => hex.padStart(32, '0') as ReplicaId;
const utf8Order = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

async function rejection(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error('expected a rejection');
}

function thrown(fn: () => unknown): AppError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error('expected a throw');
}

/** A deterministic random source: a counter spread over the bytes. */
function counterRandom(seed: number): RandomBytes {
  let next = seed;
  return (size) => {
    next += 1;
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) bytes[i] = (next * (i + 7) * 2654435761) >>> (i % 24);
    return bytes;
  };
}

export function runStoreContract(name: string, createHarness: () => Promise<StoreHarness>): void {
  describe(`Store contract: ${name}`, () => {
    let harness: StoreHarness;
    let extraHarnesses: StoreHarness[];
    let opened: KillableStore[];

    async function open(h: StoreHarness = harness, options?: { random?: RandomBytes }): Promise<KillableStore> {
      const store = await h.open(options);
      opened.push(store);
      return store;
    }

    async function another(): Promise<StoreHarness> {
      const h = await createHarness();
      extraHarnesses.push(h);
      return h;
    }

    beforeEach(async () => {
      harness = await createHarness();
      extraHarnesses = [];
      opened = [];
    });

    afterEach(async () => {
      for (const store of opened) await store.close();
      for (const h of [harness, ...extraHarnesses]) await h.cleanup();
    });

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
              const h = await createHarness();
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

      it('advances the version vector only over a range starting at or below its entry', async () => {
        const store = await open();
        const r = replica('e5');
        const range = (after: number, upTo: number): SeqRange => ({ replica: r, after, upTo });
        expect(store.merge([], [range(0, 3)]).advanced).toEqual([range(0, 3)]);
        expect(store.versionVector().get(r)).toBe(3);
        // A gap: (5, 7] after 3 leaves the entry where it is.
        expect(store.merge([{ page: page('p'), replica: r, count: 7, seq: 7 }], [range(5, 7)]).advanced).toEqual([]);
        expect(store.versionVector().get(r)).toBe(3);
        expect(store.count(page('p'))).toBe(7);
        // Nothing new: no move.
        expect(store.merge([], [range(0, 2)]).advanced).toEqual([]);
        expect(store.merge([], [range(2, 6)]).advanced).toEqual([range(2, 6)]);
        expect(store.versionVector().get(r)).toBe(6);
        // Ranges of one call apply in order.
        expect(store.merge([], [range(6, 8), range(8, 9), range(10, 12)]).advanced).toEqual([range(6, 8), range(8, 9)]);
        expect(store.versionVector().get(r)).toBe(9);
        expect(store.versionVector().get(store.replicaId) ?? 0).toBe(0);
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

    describe('reading', () => {
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

      it('has equal digests exactly when the counts are equal', async () => {
        const a = await open();
        const b = await open(await another());
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
    });

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

      it('equals the from-scratch digest of its slots after any increments, merges, overflows and rotations; reopening keeps it', async () => {
        await fc.assert(
          fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
            const h = await createHarness();
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
              const ha = await createHarness();
              const hb = await createHarness();
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

    describe('identity', () => {
      it('is created on a new database and kept across a clean restart', async () => {
        const first = await open();
        expect(first.identity.outcome).toBe('created');
        const id = first.replicaId;
        await first.increment([{ page: page('p'), by: 2 }]);
        await first.close();
        const second = await open();
        expect(second.identity).toMatchObject({ outcome: 'kept', replicaId: id });
        expect(second.identity.epoch).toBe(first.identity.epoch + 1);
        expect(second.count(page('p'))).toBe(2);
        expect(second.localSeq()).toBe(1);
        await second.increment([{ page: page('p'), by: 1 }]);
        expect(second.localSeq()).toBe(2);
      });

      it('is minted after a crash (no clean-stop record); queued increments are lost, committed ones stay', async () => {
        const first = await open();
        await first.increment([{ page: page('p'), by: 2 }]);
        const lost = first.increment([{ page: page('p'), by: 100 }]);
        first.kill();
        expect((await rejection(lost)).code).toBe('shutting_down');
        // close() after a crash is a no-op: it must not write a clean-stop record either.
        await first.close();
        const second = await open();
        expect(second.identity).toMatchObject({ outcome: 'minted', previous: first.replicaId });
        expect(second.identity.reason).toMatch(/did not stop cleanly/);
        expect(second.identity.epoch).toBe(first.identity.epoch + 1);
        // Every committed count stays, under the old id, with its version-vector entry.
        expect(second.count(page('p'))).toBe(2);
        expect(second.pageSlots(page('p'))).toEqual([{ page: 'p', replica: first.replicaId, count: 2, seq: 1 }]);
        expect(second.versionVector().get(first.replicaId)).toBe(1);
        expect(second.localSeq()).toBe(0);
        expect(await second.increment([{ page: page('p'), by: 1 }])).toEqual([{ page: 'p', count: 3 }]);
        expect(second.localSeq()).toBe(1);
        // A clean stop after that keeps the new id.
        await second.close();
        const third = await open();
        expect(third.identity).toMatchObject({ outcome: 'kept', replicaId: second.replicaId });
        expect(third.count(page('p'))).toBe(3);
      });

      it('is minted after a crash that follows a mid-run mint (the new id is written as running)', async () => {
        const first = await open();
        const rotated = first.rotateIdentity('a peer said so');
        await first.increment([{ page: page('p'), by: 1 }]);
        first.kill();
        const second = await open();
        expect(second.identity).toMatchObject({ outcome: 'minted', previous: rotated.replicaId });
        expect(second.identity.reason).toMatch(/did not stop cleanly/);
        expect(second.count(page('p'))).toBe(1);
      });

      it('is minted when a copy of the database taken mid-run is restored, and counts again under the new id', async () => {
        const first = await open();
        const old = first.replicaId;
        await first.increment([{ page: page('p'), by: 1 }]);
        await first.increment([{ page: page('p'), by: 2 }, { page: page('q'), by: 5 }]);
        // Same run, same epoch: only the seq tells this copy from the database that stops.
        const copy = await harness.snapshotDatabase();
        await first.increment([{ page: page('p'), by: 4 }]);
        await first.close();
        await harness.restoreDatabase(copy);

        const second = await open();
        expect(second.identity).toMatchObject({ outcome: 'minted', previous: old });
        expect(second.identity.reason).toMatch(/database is at seq 2 but the node stopped at seq 3/);
        expect(second.replicaId).not.toBe(old);
        // Everything in the copy is there.
        expect(second.count(page('p'))).toBe(3);
        expect(second.count(page('q'))).toBe(5);
        expect(second.versionVector().get(old)).toBe(2);
        expect(second.localSeq()).toBe(0);
        expect(await second.increment([{ page: page('p'), by: 10 }])).toEqual([{ page: 'p', count: 13 }]);
        expect(second.pageSlots(page('p'))).toContainEqual({ page: 'p', replica: second.replicaId, count: 10, seq: 1 });
        // Peers hold the old id's later commit (p = 7 at seq 3): it merges in and the new
        // increments are not swallowed by it, as they would be under the old id.
        const result = second.merge([{ page: page('p'), replica: old, count: 7, seq: 3 }], [{ replica: old, after: 2, upTo: 3 }]);
        expect(result.identityChanged).toBeUndefined();
        expect(second.count(page('p'))).toBe(17);
        expect(second.versionVector().get(old)).toBe(3);
      });

      it('is kept when a copy taken after the last commit (same seq) is restored', async () => {
        const first = await open();
        await first.increment([{ page: page('p'), by: 1 }]);
        await first.increment([{ page: page('p'), by: 2 }]);
        const copy = await harness.snapshotDatabase();
        await first.close();
        await harness.restoreDatabase(copy);
        const second = await open();
        expect(second.identity).toMatchObject({ outcome: 'kept', replicaId: first.replicaId });
        expect(second.count(page('p'))).toBe(3);
        expect(second.localSeq()).toBe(2);
        expect(await second.increment([{ page: page('p'), by: 1 }])).toEqual([{ page: 'p', count: 4 }]);
        expect(second.localSeq()).toBe(3);
      });

      it('is minted when the identity file is missing, holds another id, or the database is an older copy', async () => {
        const ids = new Set<ReplicaId>();
        let store = await open();
        ids.add(store.replicaId);
        await store.increment([{ page: page('p'), by: 1 }]);
        await store.close();

        await harness.deleteIdentityFile();
        store = await open();
        expect(store.identity).toMatchObject({ outcome: 'minted', previous: [...ids][0] });
        expect(store.identity.reason).toMatch(/missing/);
        ids.add(store.replicaId);
        await store.increment([{ page: page('p'), by: 1 }]);
        await store.close();

        await harness.writeIdentityFile({ replicaId: replica('abc'), epoch: store.identity.epoch });
        store = await open();
        expect(store.identity.outcome).toBe('minted');
        expect(store.identity.reason).toMatch(/holds replica/);
        ids.add(store.replicaId);
        await store.increment([{ page: page('p'), by: 1 }]);
        await store.close();

        const stale = await harness.snapshotDatabase();
        store = await open();
        expect(store.identity.outcome).toBe('kept');
        await store.increment([{ page: page('p'), by: 10 }]);
        await store.close();
        await harness.restoreDatabase(stale);
        store = await open();
        expect(store.identity.outcome).toBe('minted');
        expect(store.identity.reason).toMatch(/behind/);
        ids.add(store.replicaId);
        // The stale copy lost the +10 (peers would heal it); the new id counts from seq 1.
        expect(store.count(page('p'))).toBe(3);
        expect(store.localSeq()).toBe(0);
        expect(await store.increment([{ page: page('p'), by: 5 }])).toEqual([{ page: 'p', count: 8 }]);
        expect(store.localSeq()).toBe(1);

        expect(ids.size).toBe(4);
        const slots = store.pageSlots(page('p'));
        expect(new Set(slots.map((slot) => slot.replica))).toEqual(ids);
        expect(slots.find((slot) => slot.replica === store.replicaId)).toMatchObject({ count: 5, seq: 1 });
        // Old ids keep their version-vector entries.
        const vv = store.versionVector();
        for (const id of ids) expect(vv.get(id)).toBe(1);

        // And the minted id is kept from then on.
        await store.close();
        const again = await open();
        expect(again.identity).toMatchObject({ outcome: 'kept', replicaId: store.replicaId });
      });

      it('mints when a merge brings slots of its own id beyond its local seq', async () => {
        const store = await open();
        await store.increment([{ page: page('p'), by: 2 }]);
        const old = store.replicaId;
        // Its own slot at a seq it has committed is just an echo.
        expect(store.merge([{ page: page('p'), replica: old, count: 2, seq: 1 }], []).identityChanged).toBeUndefined();
        const result = store.merge([{ page: page('p'), replica: old, count: 7, seq: 4 }], [{ replica: old, after: 0, upTo: 4 }]);
        expect(result.identityChanged).toMatchObject({ outcome: 'minted', previous: old });
        expect(store.replicaId).toBe(result.identityChanged?.replicaId);
        expect(store.replicaId).not.toBe(old);
        expect(store.identity).toEqual(result.identityChanged);
        expect(store.count(page('p'))).toBe(7);
        expect(store.versionVector().get(old)).toBe(4);
        expect(store.localSeq()).toBe(0);
        expect(await store.increment([{ page: page('p'), by: 1 }])).toEqual([{ page: 'p', count: 8 }]);
        expect(store.localSeq()).toBe(1);
        await store.close();
        const reopened = await open();
        expect(reopened.identity).toMatchObject({ outcome: 'kept', replicaId: store.replicaId });
      });

      it('mints when a range of its own id goes beyond its local seq, and on request', async () => {
        const store = await open();
        const old = store.replicaId;
        const result = store.merge([], [{ replica: old, after: 0, upTo: 1 }]);
        expect(result.identityChanged?.previous).toBe(old);
        const middle = store.replicaId;
        const rotated = store.rotateIdentity('a peer said so');
        expect(rotated).toMatchObject({ outcome: 'minted', reason: 'a peer said so', previous: middle });
        expect(new Set([old, middle, rotated.replicaId]).size).toBe(3);
      });

      it('mints distinct ids even when the random source is deterministic', async () => {
        const store = await open(harness, { random: counterRandom(1) });
        const a = store.replicaId;
        const b = store.rotateIdentity('test').replicaId;
        expect(a).not.toBe(b);
      });
    });

    describe('lifecycle', () => {
      it('refuses a database newer than the code', async () => {
        const store = await open();
        await store.close();
        await harness.makeDatabaseTooNew();
        const error = await rejection(harness.open());
        expect(error.code).toBe('database_too_new');
        expect(error.message).toMatch(/version 99\b/);
        expect(error.message).toMatch(/migration 1\b/);
      });

      it('commits what is queued on close, then refuses increments', async () => {
        const store = await open();
        const queued = store.increment([{ page: page('p'), by: 3 }]);
        const closing = store.close();
        expect(store.close()).toBe(closing);
        await closing;
        expect(await queued).toEqual([{ page: 'p', count: 3 }]);
        expect((await rejection(store.increment([{ page: page('p'), by: 1 }]))).code).toBe('shutting_down');
        expect(thrown(() => store.count(page('p'))).code).toBe('shutting_down');
        const reopened = await open();
        expect(reopened.count(page('p'))).toBe(3);
        expect(reopened.localSeq()).toBe(1);
      });
    });
  });
}
