/**
 * The G-Counter and version-vector laws, on the pure functions the stores are checked against:
 * merge is commutative, associative, idempotent and inflationary; values only grow; advancing a
 * vector never skips a gap.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applySlots, cloneState, emptyState, mergeStates, pageValue, allSlots, type GCounterState, type Slot } from '../../src/crdt/g-counter.js';
import { stateDigest } from '../../src/crdt/digest.js';
import { advance, canAdvance, dominates, lagBehind, mergeVectors, rangesBeyond } from '../../src/crdt/version-vector.js';
import type { PageName, ReplicaId } from '../../src/ids.js';

const RUNS = Number(process.env.FC_RUNS ?? 200);
const replica = fc.constantFrom(...(['a', 'b', 'c', 'd'].map((c) => c.repeat(32)) as ReplicaId[]));
const page = fc.constantFrom(...(['home', 'about', 'x'] as PageName[]));
// A slot's count grows with its seq (only the owner raises it), as in every real state.
const slot: fc.Arbitrary<Slot> = fc.record({ page, replica, seq: fc.integer({ min: 1, max: 50 }) }).map((s) => ({ ...s, count: s.seq * 3 }));
const state: fc.Arbitrary<GCounterState> = fc.array(slot, { maxLength: 20 }).map((slots) => {
  const out = emptyState();
  applySlots(out, slots);
  return out;
});
const digest = (s: GCounterState) => stateDigest(allSlots(s));
const vv = fc.array(fc.tuple(replica, fc.integer({ min: 0, max: 20 })), { maxLength: 4 }).map((entries) => new Map(entries));

describe('G-Counter merge', () => {
  it('is commutative', () => {
    fc.assert(fc.property(state, state, (a, b) => digest(mergeStates(a, b)) === digest(mergeStates(b, a))), { numRuns: RUNS });
  });
  it('is associative', () => {
    fc.assert(
      fc.property(state, state, state, (a, b, c) => digest(mergeStates(mergeStates(a, b), c)) === digest(mergeStates(a, mergeStates(b, c)))),
      { numRuns: RUNS },
    );
  });
  it('is idempotent', () => {
    fc.assert(fc.property(state, (a) => digest(mergeStates(a, a)) === digest(a)), { numRuns: RUNS });
  });
  it('is inflationary: no page value goes down, and the result dominates both sides', () => {
    fc.assert(
      fc.property(state, state, page, (a, b, p) => {
        const merged = mergeStates(a, b);
        return pageValue(merged, p) >= pageValue(a, p) && pageValue(merged, p) >= pageValue(b, p) && digest(mergeStates(merged, a)) === digest(merged);
      }),
      { numRuns: RUNS },
    );
  });
  it('applying slots in any order, duplicated, gives the same state', () => {
    fc.assert(
      fc.property(fc.array(slot, { maxLength: 30 }).chain((slots) => fc.tuple(fc.constant(slots), fc.shuffledSubarray(slots, { minLength: slots.length }))), ([slots, shuffled]) => {
        const a = emptyState();
        applySlots(a, slots);
        const b = emptyState();
        applySlots(b, [...shuffled, ...shuffled]);
        return digest(a) === digest(b);
      }),
      { numRuns: RUNS },
    );
  });
  it('does not mutate its inputs', () => {
    fc.assert(
      fc.property(state, state, (a, b) => {
        const before = digest(a);
        const copy = cloneState(b);
        mergeStates(a, b);
        return digest(a) === before && digest(b) === digest(copy);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('version vectors', () => {
  it('advance only over a range that starts at or below the entry', () => {
    fc.assert(
      fc.property(vv, replica, fc.integer({ min: 0, max: 30 }), fc.integer({ min: 1, max: 10 }), (v, r, after, length) => {
        const before = v.get(r) ?? 0;
        const moved = advance(v, { replica: r, after, upTo: after + length });
        if (after > before) return !moved && (v.get(r) ?? 0) === before;
        return (v.get(r) ?? 0) === Math.max(before, after + length) && moved === after + length > before;
      }),
      { numRuns: RUNS },
    );
  });
  it('a gap never advances', () => {
    const v = new Map([['a'.repeat(32) as ReplicaId, 3]]);
    expect(canAdvance(v, { replica: 'a'.repeat(32) as ReplicaId, after: 4, upTo: 9 })).toBe(false);
    expect(canAdvance(v, { replica: 'a'.repeat(32) as ReplicaId, after: 3, upTo: 9 })).toBe(true);
  });
  it('merge is commutative, associative, idempotent and dominates both', () => {
    fc.assert(
      fc.property(vv, vv, vv, (a, b, c) => {
        // An entry of 0 means the same as no entry.
        const key = (m: Map<ReplicaId, number>) => JSON.stringify([...m].filter(([, seq]) => seq > 0).sort());
        return (
          key(mergeVectors(a, b)) === key(mergeVectors(b, a)) &&
          key(mergeVectors(mergeVectors(a, b), c)) === key(mergeVectors(a, mergeVectors(b, c))) &&
          key(mergeVectors(a, a)) === key(a) &&
          dominates(mergeVectors(a, b), a) &&
          dominates(mergeVectors(a, b), b)
        );
      }),
      { numRuns: RUNS },
    );
  });
  it('rangesBeyond names exactly what the other side has beyond us', () => {
    fc.assert(
      fc.property(vv, vv, (local, remote) => {
        const merged = new Map(local);
        for (const range of rangesBeyond(local, remote)) advance(merged, range);
        return dominates(merged, remote) && lagBehind(merged, remote) === 0 && lagBehind(local, remote) === rangesBeyond(local, remote).reduce((n, r) => n + r.upTo - r.after, 0);
      }),
      { numRuns: RUNS },
    );
  });
});
