/**
 * Resets: how a page goes back to zero without giving up convergence. The rule, written once
 * (both stores and the property model apply these functions; `applySlots` in g-counter.ts merges
 * with them):
 *
 * - A page's state is the pair (reset epoch, G-Counter). Every slot carries the epoch it counts
 *   in; a page holds the slots of its highest epoch only. Merging: the higher epoch wins (its
 *   slots replace every slot of the lower one), equal epochs max-merge slots as before.
 * - A reset by replica R is a local commit like an increment (one seq): R writes its own slot for
 *   the page as `(epoch: current + 1, count: 0)`. That zero slot is the tombstone: it travels in
 *   deltas, sync answers and anti-entropy exactly as any slot of R does, and wherever it lands it
 *   drops the page's older slots. One row per reset page, replacing all of the page's slots.
 * - An increment counts in the page's current epoch at the node: the own slot restarts from the
 *   increment when it was of an older epoch. So an increment a node acknowledged after it saw the
 *   reset is in a slot of the reset's epoch, which only a later reset can drop; an increment
 *   concurrent with the reset (in a slot of the old epoch) may be dropped. That is what a reset
 *   means.
 *
 * Version vectors (docs/design.md, invariant 1, with epochs): `vv[R] = s` promises that every
 * slot R had written by its commit s is held at least as high in the order (epoch, count, seq),
 * where a page at a higher epoch counts as holding every older slot. A slot dropped by a reset is
 * therefore still "held": the higher epoch stands for it.
 */
import { epochOf, type Slot, type SlotValue } from './g-counter.js';
import type { PageName, ReplicaId } from '../ids.js';

/** The epoch a reset of a page now at `current` moves it to. */
export function nextResetEpoch(current: number): number {
  return current + 1;
}

/** The tombstone slot replica `replica` writes at its commit `seq` to reset a page now at epoch `current`. */
export function resetSlot(page: PageName, replica: ReplicaId, seq: number, current: number): Slot {
  return { page, replica, count: 0, seq, epoch: nextResetEpoch(current) };
}

/**
 * The own slot after a local increment of `by` at commit `seq`, the page being at epoch
 * `pageEpoch`: the old count carries on only within the same epoch.
 */
export function incrementedSlot(own: SlotValue | undefined, pageEpoch: number, by: number, seq: number): SlotValue {
  const carried = own !== undefined && epochOf(own) === pageEpoch ? own.count : 0;
  return pageEpoch === 0 ? { count: carried + by, seq } : { count: carried + by, seq, epoch: pageEpoch };
}
