/**
 * The reset laws (src/crdt/reset.ts): states of (epoch, G-Counter) pairs merge commutatively,
 * associatively and idempotently; the higher epoch wins; a page's value is monotone within an
 * epoch; a reset's tombstone drops every older slot wherever it lands; an increment counted after
 * the reset was seen is never dropped by it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applySlots, emptyState, mergeStates, pageEpoch, pageValue, type GCounterState, type Slot } from '../../src/crdt/g-counter.js';
import { formatDigest, stateDigestSum } from '../../src/crdt/digest.js';
import { incrementedSlot, nextResetEpoch, resetSlot } from '../../src/crdt/reset.js';
import type { PageName, ReplicaId } from '../../src/ids.js';

const RUNS = Number(process.env.FC_RUNS ?? 200);
const replicas = ['a', 'b', 'c'].map((c) => c.repeat(32)) as ReplicaId[];
const replica = fc.constantFrom(...replicas);
const page = fc.constantFrom(...(['home', 'x'] as PageName[]));
// Real states: within an epoch a slot's count grows with its seq; a zero slot only at epoch ≥ 1.
const slot: fc.Arbitrary<Slot> = fc
  .record({ page, replica, seq: fc.integer({ min: 1, max: 50 }), epoch: fc.nat({ max: 3 }), zero: fc.boolean() })
  .map(({ zero, epoch, ...s }) => (epoch === 0 ? { ...s, count: s.seq * 3 } : { ...s, count: zero ? 0 : s.seq * 3, epoch }));
const state: fc.Arbitrary<GCounterState> = fc.array(slot, { maxLength: 20 }).map((slots) => {
  const out = emptyState();
  applySlots(out, slots);
  return out;
});
const digest = (s: GCounterState) => formatDigest(stateDigestSum(s));

describe('reset epochs', () => {
  it('merge stays commutative, associative and idempotent', () => {
    fc.assert(
      fc.property(state, state, state, (a, b, c) => {
        expect(digest(mergeStates(a, b))).toBe(digest(mergeStates(b, a)));
        expect(digest(mergeStates(mergeStates(a, b), c))).toBe(digest(mergeStates(a, mergeStates(b, c))));
        expect(digest(mergeStates(a, a))).toBe(digest(a));
      }),
      { numRuns: RUNS },
    );
  });

  it('the higher epoch wins, and a page holds slots of one epoch only', () => {
    fc.assert(
      fc.property(state, state, page, (a, b, p) => {
        const merged = mergeStates(a, b);
        expect(pageEpoch(merged, p)).toBe(Math.max(pageEpoch(a, p), pageEpoch(b, p)));
        const epochs = new Set([...(merged.get(p)?.values() ?? [])].map((v) => v.epoch ?? 0));
        expect(epochs.size).toBeLessThanOrEqual(1);
        // Within one epoch the value only grows.
        if (pageEpoch(a, p) === pageEpoch(merged, p)) expect(pageValue(merged, p)).toBeGreaterThanOrEqual(pageValue(a, p));
      }),
      { numRuns: RUNS },
    );
  });

  it('a tombstone drops every older slot wherever it lands, in any order', () => {
    fc.assert(
      fc.property(state, page, replica, fc.integer({ min: 1, max: 100 }), (s, p, r, seq) => {
        const tombstone = resetSlot(p, r, seq, pageEpoch(s, p));
        const a = mergeStates(s, emptyState());
        applySlots(a, [tombstone]);
        expect(pageValue(a, p)).toBe(0);
        expect(pageEpoch(a, p)).toBe(nextResetEpoch(pageEpoch(s, p)));
        const b = emptyState();
        applySlots(b, [tombstone]);
        expect(digest(mergeStates(b, s))).toBe(digest(a));
      }),
      { numRuns: RUNS },
    );
  });

  it('an increment counted after the reset was seen survives any merge without a later reset', () => {
    fc.assert(
      fc.property(state, state, page, fc.integer({ min: 1, max: 1000 }), (s, other, p, by) => {
        const r = replicas[0] as ReplicaId;
        const node = mergeStates(s, emptyState());
        applySlots(node, [resetSlot(p, r, 100, pageEpoch(node, p))]);
        const epoch = pageEpoch(node, p);
        const value = incrementedSlot(node.get(p)?.get(r), epoch, by, 101);
        applySlots(node, [{ page: p, replica: r, ...value }]);
        // Any other state whose epochs are not above it: the increment stays.
        if (pageEpoch(other, p) > epoch) return;
        expect(pageValue(mergeStates(other, node), p)).toBeGreaterThanOrEqual(by);
        expect(pageValue(mergeStates(node, other), p)).toBeGreaterThanOrEqual(by);
      }),
      { numRuns: RUNS },
    );
  });

  it('digests tell a reset page from a page never counted, and epochs apart', () => {
    const p = 'p' as PageName;
    const r = replicas[0] as ReplicaId;
    const reset = emptyState();
    applySlots(reset, [resetSlot(p, r, 1, 0)]);
    expect(digest(reset)).not.toBe(digest(emptyState()));
    const e0 = emptyState();
    applySlots(e0, [{ page: p, replica: r, count: 5, seq: 1 }]);
    const e1 = emptyState();
    applySlots(e1, [{ page: p, replica: r, count: 5, seq: 1, epoch: 1 }]);
    expect(digest(e0)).not.toBe(digest(e1));
  });
});
