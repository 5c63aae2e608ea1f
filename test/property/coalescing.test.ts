/**
 * Coalesced live deltas (sync-sender.ts, coalesced-delta.ts) as properties.
 *
 * - Any split of a replica's commits into contiguous groups, each group merged into one delta,
 *   gives a receiver the same state as the commits one by one: after each merged delta `(a, c]`
 *   it holds exactly what a receiver of every delta up to `c` holds (so advancing its vector to
 *   `c` keeps invariant 1 of docs/design.md), and in any order of arrival the values end equal.
 *   A real MemoryStore on both sides, resets and series slots included.
 * - The mesh's delivery property (broadcast.test.ts) with outboxes merging deltas on links whose
 *   send buffer is not empty: every increment still reaches every node through live deltas alone.
 *
 * Knobs: FC_RUNS (default 100), FC_SEED and FC_PATH, as in convergence.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Slot } from '../../src/crdt/g-counter.js';
import type { PageName } from '../../src/ids.js';
import { coalesce } from '../../src/replication/coalesced-delta.js';
import { type Delta, type Store } from '../../src/store/store.js';
import { MemoryDisk, MemoryStore } from '../../src/store/memory-store.js';
import { ReplicatedCluster } from './replicated-cluster.js';
import { runSchedule, scheduleArbitrary, type Step } from './schedule.js';

const RUNS = Number(process.env.FC_RUNS ?? 100);
const SEED = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const PATH = process.env.FC_PATH;
const replay = { ...(SEED === undefined ? {} : { seed: SEED }), ...(PATH === undefined ? {} : { path: PATH }) };
const TIMEOUT_MS = Math.max(120_000, RUNS * 300);

const PAGES = ['a', 'b', 'c', 'd'] as const;

type Commit = { readonly kind: 'inc'; readonly increments: ReadonlyArray<{ page: PageName; by: number }> } | { readonly kind: 'reset'; readonly page: PageName };

const commitArbitrary: fc.Arbitrary<Commit> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .array(fc.record({ page: fc.constantFrom(...PAGES), by: fc.integer({ min: 1, max: 5 }) }), { minLength: 1, maxLength: 3 })
      .map((increments) => ({ kind: 'inc' as const, increments: increments.map((i) => ({ page: i.page as PageName, by: i.by })) })),
  },
  { weight: 1, arbitrary: fc.constantFrom(...PAGES).map((page) => ({ kind: 'reset' as const, page: page as PageName })) },
);

function openStore(seed: number): MemoryStore {
  let state = seed;
  // Distinct ids per store, from the seed (MemoryStore mints its replica id from these bytes).
  return MemoryStore.open(new MemoryDisk(), { random: (n) => Uint8Array.from({ length: n }, () => (state = (state * 1_103_515_245 + 12_345) % 2 ** 31) & 0xff) });
}

/** The replica's slots a store holds, in a canonical order. */
function slotsOf(store: Store, replica: Delta['range']['replica']): string[] {
  return store
    .slotsAfter(replica, { seq: 0 }, 1_000_000)
    .map((slot: Slot) => `${slot.page}/${slot.kind ?? 0}/${slot.t ?? 0}=${slot.epoch ?? 0}:${slot.count}@${slot.seq}`)
    .sort();
}

/** Splits `items` at the sorted, distinct `cuts` (indexes 1 … length − 1) into contiguous groups. */
function split<T>(items: readonly T[], cuts: readonly number[]): T[][] {
  const at = [...new Set(cuts.filter((c) => c > 0 && c < items.length))].sort((a, b) => a - b);
  const groups: T[][] = [];
  let from = 0;
  for (const cut of [...at, items.length]) {
    groups.push(items.slice(from, cut));
    from = cut;
  }
  return groups;
}

describe('coalesced deltas', () => {
  it(`any split and merge of a replica's deltas gives the receiver the same state as the deltas one by one (${RUNS} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(commitArbitrary, { minLength: 1, maxLength: 25 }),
        fc.array(fc.nat({ max: 25 }), { maxLength: 12 }),
        fc.integer({ min: 1, max: 2 ** 30 }),
        async (commits, cuts, seed) => {
          const source = openStore(seed);
          const deltas: Delta[] = [];
          source.onCommit((delta) => deltas.push(delta));
          for (const commit of commits) {
            if (commit.kind === 'inc') await source.increment(commit.increments);
            else source.reset([commit.page]);
          }
          const replica = source.replicaId;
          const groups = split(deltas, cuts);
          const reference = openStore(seed + 1);
          const receiver = openStore(seed + 2);
          let applied = 0;
          for (const group of groups) {
            const merged = coalesce(group);
            expect(merged.range).toEqual({ replica, after: group[0]!.range.after, upTo: group.at(-1)!.range.upTo });
            // At most one slot per counter, each raised inside the range.
            expect(new Set(merged.slots.map((s) => `${s.page}/${s.kind ?? 0}/${s.t ?? 0}`)).size).toBe(merged.slots.length);
            for (const slot of merged.slots) expect(slot.seq > merged.range.after && slot.seq <= merged.range.upTo).toBe(true);
            receiver.merge(merged.slots, [merged.range]);
            for (const delta of group) reference.merge(delta.slots, [delta.range]);
            applied += group.length;
            expect(receiver.versionVector().get(replica)).toBe(deltas[applied - 1]!.range.upTo);
            expect(slotsOf(receiver, replica)).toEqual(slotsOf(reference, replica));
          }
          expect(slotsOf(receiver, replica)).toEqual(slotsOf(source, replica));
          // Merged deltas arriving in any order: the same values (the vector may stop at a gap).
          const shuffled = openStore(seed + 3);
          const order = groups.map((group) => coalesce(group)).reverse();
          for (const merged of order) shuffled.merge(merged.slots, [merged.range]);
          for (const merged of order) shuffled.merge(merged.slots, [merged.range]);
          expect(slotsOf(shuffled, replica)).toEqual(slotsOf(source, replica));
          for (const page of PAGES) expect(shuffled.count(page as PageName)).toBe(source.count(page as PageName));
        },
      ),
      { numRuns: RUNS, ...replay },
    );
  }, TIMEOUT_MS);

  it(`mesh: with outboxes merging deltas on busy links, every increment reaches every node through live deltas alone (${Math.ceil(RUNS / 2)} runs)`, async () => {
    const steps: readonly Step['kind'][] = ['inc', 'burst', 'flow'];
    let coalesced = 0;
    await fc.assert(
      fc.asyncProperty(scheduleArbitrary({ kinds: steps, weights: { inc: 8, burst: 4 } }), async (schedule) => {
        const cluster = await new ReplicatedCluster(schedule.nodes, schedule.seed, 'correct', 'all', { mode: 'mesh', antiEntropyIntervalMs: 0, maxSendBufferBytes: 8 * 1024 * 1024 }).start();
        await runSchedule(schedule, cluster);
        coalesced += cluster.coalesced();
      }),
      { numRuns: Math.ceil(RUNS / 2), ...replay },
    );
    // The property saw merged deltas, not only deltas sent at once.
    expect(coalesced).toBeGreaterThan(0);
  }, TIMEOUT_MS);
});
