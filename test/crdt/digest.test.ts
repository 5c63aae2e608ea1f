/**
 * The state digest: a sum of per-slot terms modulo 2^128, so it can be kept up to date one
 * changed slot at a time. Checked here against an independent computation, against itself in any
 * order, and under incremental updates; pinned to one known value so a change of encoding (which
 * would make nodes of two versions never agree) cannot pass unnoticed.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { allSlots, applySlots, emptyState, type Slot } from '../../src/crdt/g-counter.js';
import { addToDigest, digestSum, formatDigest, slotDigestChange, slotDigestKey, slotDigestTerm, SlotKeyCache, stateDigest } from '../../src/crdt/digest.js';
import type { PageName, ReplicaId } from '../../src/ids.js';

const RUNS = Number(process.env.FC_RUNS ?? 200);
const MOD = 1n << 128n;
const replica = fc.constantFrom(...(['a', 'b', 'c'].map((c) => c.repeat(32)) as ReplicaId[]));
const page = fc.constantFrom(...(['home', 'about', 'é', '\u{1F600}', 'a:b'] as PageName[]));
const count = fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
const slot = fc.record({ page, replica, count, seq: fc.integer({ min: 1, max: 50 }) });

/** The definition, computed another way: Buffer digest, explicit modulo. */
function reference(slots: Iterable<Pick<Slot, 'page' | 'replica' | 'count'>>): string {
  let sum = 0n;
  for (const s of slots) {
    const key = createHash('sha256').update(Buffer.from(`${s.replica.length}:${s.replica}${s.page}`, 'utf8')).digest().subarray(0, 16);
    sum = (sum + BigInt(s.count) * BigInt(`0x${key.toString('hex')}`)) % MOD;
  }
  return sum.toString(16).padStart(32, '0');
}

/** One slot per (page, replica): the last one listed wins. */
function distinct(slots: readonly Slot[]): Slot[] {
  return [...new Map(slots.map((s) => [`${s.replica}/${s.page}`, s])).values()];
}

describe('state digest', () => {
  it('is 32 hex characters, and the empty state is all zeros', () => {
    expect(stateDigest([])).toBe('0'.repeat(32));
    expect(formatDigest(1n)).toBe(`${'0'.repeat(31)}1`);
    expect(formatDigest(MOD - 1n)).toBe('f'.repeat(32));
    expect(formatDigest(-1n)).toBe('f'.repeat(32));
    expect(stateDigest([{ page: 'p' as PageName, replica: 'a'.repeat(32) as ReplicaId, count: 1 }])).toMatch(/^[0-9a-f]{32}$/);
  });

  it('has a pinned value for a known state (changing the encoding splits mixed-version clusters)', () => {
    const slots = [
      { page: 'home' as PageName, replica: 'a'.repeat(32) as ReplicaId, count: 3 },
      { page: 'é' as PageName, replica: 'b'.repeat(32) as ReplicaId, count: Number.MAX_SAFE_INTEGER },
    ];
    expect(stateDigest(slots)).toBe(reference(slots));
    expect(stateDigest(slots)).toBe('894bdc30d2cff239c685fe248bd03125');
  });

  it('equals the definition computed independently, for any slots in any order', () => {
    fc.assert(
      fc.property(fc.array(slot, { maxLength: 20 }).map(distinct), fc.array(fc.nat(), { minLength: 20, maxLength: 20 }), (slots, keys) => {
        const shuffled = slots.map((s, i) => ({ s, k: keys[i] ?? 0 })).sort((x, y) => x.k - y.k).map((x) => x.s);
        expect(stateDigest(slots)).toBe(reference(slots));
        expect(stateDigest(shuffled)).toBe(stateDigest(slots));
      }),
      { numRuns: RUNS },
    );
  });

  it('ignores slots with count 0', () => {
    const r = 'a'.repeat(32) as ReplicaId;
    expect(slotDigestTerm('p', r, 0)).toBe(0n);
    expect(stateDigest([{ page: 'p' as PageName, replica: r, count: 0 }])).toBe(stateDigest([]));
  });

  it('follows a state slot by slot: the running sum equals the digest from scratch after every merge', () => {
    fc.assert(
      fc.property(fc.array(slot, { maxLength: 40 }), (slots) => {
        const state = emptyState();
        let sum = 0n;
        for (const s of slots) {
          const before = state.get(s.page)?.get(s.replica)?.count ?? 0;
          applySlots(state, [s]);
          const after = state.get(s.page)?.get(s.replica)?.count ?? 0;
          sum = addToDigest(sum, slotDigestChange(s.page, s.replica, before, after));
          expect(formatDigest(sum)).toBe(stateDigest(allSlots(state)));
        }
        expect(sum).toBe(digestSum(allSlots(state)));
      }),
      { numRuns: RUNS },
    );
  });

  it('moves by term(after) - term(before) when a slot changes, also downwards and through 2^128', () => {
    fc.assert(
      fc.property(page, replica, count, count, (p, r, before, after) => {
        const change = slotDigestChange(p, r, before, after);
        expect(BigInt.asUintN(128, change)).toBe(BigInt.asUintN(128, slotDigestTerm(p, r, after) - slotDigestTerm(p, r, before)));
        expect(slotDigestTerm(p, r, after)).toBe(BigInt.asUintN(128, BigInt(after) * slotDigestKey(p, r)));
      }),
      { numRuns: RUNS },
    );
  });

  it('gives the same changes through the key cache, also past its capacity (when it forgets)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.array(fc.tuple(page, replica, count, count), { maxLength: 40 }), (capacity, changes) => {
        const cache = new SlotKeyCache(capacity);
        for (const [p, r, before, after] of changes) {
          expect(cache.change(p, r, before, after)).toBe(slotDigestChange(p, r, before, after));
          expect(cache.key(p, r)).toBe(slotDigestKey(p, r));
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('differs for different states: another count, another slot with the same total, another page or replica', () => {
    const a = 'a'.repeat(32) as ReplicaId;
    const b = 'b'.repeat(32) as ReplicaId;
    const p = 'p' as PageName;
    const q = 'q' as PageName;
    const digests = [
      stateDigest([]),
      stateDigest([{ page: p, replica: a, count: 1 }]),
      stateDigest([{ page: p, replica: a, count: 2 }]),
      stateDigest([{ page: p, replica: b, count: 1 }]),
      stateDigest([{ page: q, replica: a, count: 1 }]),
      stateDigest([{ page: p, replica: a, count: 1 }, { page: p, replica: b, count: 1 }]),
      stateDigest([{ page: p, replica: a, count: 2 }, { page: q, replica: a, count: 1 }]),
      stateDigest([{ page: p, replica: a, count: 1 }, { page: q, replica: a, count: 2 }]),
      // The encoding keeps replica and page apart: "ab" + "c" is not "a" + "bc".
      stateDigest([{ page: 'c' as PageName, replica: 'ab' as ReplicaId, count: 1 }]),
      stateDigest([{ page: 'bc' as PageName, replica: 'a' as ReplicaId, count: 1 }]),
    ];
    expect(new Set(digests).size).toBe(digests.length);
  });

  it('differs for any two states that differ in some count', () => {
    fc.assert(
      fc.property(fc.array(slot, { maxLength: 12 }).map(distinct), fc.array(slot, { maxLength: 12 }).map(distinct), (x, y) => {
        const counts = (slots: Slot[]) => new Map(slots.filter((s) => s.count > 0).map((s) => [`${s.replica}/${s.page}`, s.count]));
        const same = JSON.stringify([...counts(x)].sort()) === JSON.stringify([...counts(y)].sort());
        expect(stateDigest(x) === stateDigest(y)).toBe(same);
      }),
      { numRuns: RUNS },
    );
  });
});
