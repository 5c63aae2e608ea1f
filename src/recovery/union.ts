/**
 * The union of several copies of the counter state, by the store's own merge (docs/design.md, "The model"):
 * every slot max-merged, and each copy's version vector carried over, which is safe because the
 * copy's every slot is merged first (a copy that holds `vv[R] = s` holds all of R's changes up to
 * s, and so does the target once all of the copy's slots are in it).
 *
 * Only the public Store API is used (listPages, pageSlots, versionVector, merge), so any two
 * stores can be merged: the recovery merges restored backups into a new file this way.
 */
import { MAX_TOTAL, saturatingTotal, type Slot } from '../crdt/g-counter.js';
import type { SeqRange } from '../crdt/version-vector.js';
import { isReplicaId, pageNameProblem, type PageName, type ReplicaId } from '../ids.js';
import { seriesSlotProblem } from '../crdt/series.js';
import type { SlotCursor, Store } from '../store/store.js';

/** Pages read and merged per transaction: bounds one merge's size and the memory held. */
export const UNION_PAGES_PER_MERGE = 500;

/** Series slots (buckets, visitor registers) read and merged per transaction, for the same reason. */
export const UNION_SERIES_PER_MERGE = 5_000;

/**
 * A copy whose contents break the model (a corrupt or forged backup file). The store's merge
 * trusts its input (the codec checks what peers send), so every value read from a copy is checked
 * here first, as the codec would check it: mergeInto stops before the batch holding a bad value
 * (or its vector, when that is bad) is merged. The recovery then discards the whole union.
 */
export class UnsafeCopyError extends Error {
  override readonly name = 'UnsafeCopyError';
}

/** What one copy holds: its pages, and its views (the sum of its page totals, capped at MAX_TOTAL). */
export interface StateSize {
  readonly pages: number;
  readonly views: number;
}

/** Sums the page totals of `store`, a page batch at a time. */
export function stateSize(store: Store): StateSize {
  let pages = 0;
  let views = 0;
  for (const batch of pageBatches(store)) {
    pages += batch.length;
    views = saturatingTotal([views, ...batch.map(({ count }) => count)]);
  }
  return { pages, views };
}

/**
 * Max-merges every slot of `source` into `target`, then advances `target`'s version vector over
 * `source`'s. Returns what `source` held. `target` must not be `source`.
 */
export function mergeInto(target: Store, source: Store): StateSize {
  // The vector first: a bad entry is refused before anything is merged.
  const ranges: SeqRange[] = [...source.versionVector()].map(([replica, upTo]) => {
    if (!isReplicaId(replica)) throw new UnsafeCopyError(`version vector names ${JSON.stringify(replica)}, which is not a replica id`);
    if (!Number.isSafeInteger(upTo) || upTo < 1) throw new UnsafeCopyError(`version vector entry of ${replica} is ${String(upTo)}, not an integer in [1, 2^53-1]`);
    return { replica, after: 0, upTo };
  });
  let pages = 0;
  let views = 0;
  let slotsRead = 0;
  // Slots are read page by page, so a slot whose page has no total (no row of its own) would be
  // skipped without a word: the copy must hold exactly the slots its pages list, checked below.
  const slotsHeld = source.stats().slots;
  /** Per replica, the highest seq among its merged slots. */
  const highestSeq = new Map<ReplicaId, number>();
  for (const batch of pageBatches(source)) {
    pages += batch.length;
    views = saturatingTotal([views, ...batch.map(({ count }) => count)]);
    const perPage = batch.map(({ page, count }) => ({ page, count, slots: source.pageSlots(page) }));
    const slots = perPage.flatMap((entry) => entry.slots);
    slotsRead += slots.length;
    for (const slot of slots) {
      checkSlot(slot);
      highestSeq.set(slot.replica, Math.max(highestSeq.get(slot.replica) ?? 0, slot.seq));
    }
    // A page whose slots together pass MAX_TOTAL is merged like any other: the target store
    // saturates its total exactly as every node does (crdt/g-counter.ts, MAX_TOTAL), so a cluster
    // holding such a page can still be recovered, and the union shows what its nodes showed.
    for (const entry of perPage) checkPageTotal(entry.page, entry.count, entry.slots);
    target.merge(slots, []);
  }
  if (slotsRead !== slotsHeld) {
    throw new UnsafeCopyError(`it holds ${slotsHeld} slots but its pages list ${slotsRead}: slots of pages with no total, an inconsistent (corrupt) copy`);
  }
  // The series (views over time, unique visitors: crdt/series.ts) are slots of their own under the
  // same replicas' seqs, which a page's total slots do not list: each replica's are read with the
  // full cursor, checked like the codec checks a peer's, and merged after the totals they sit on.
  for (const replica of source.highestSlotSeqs().keys()) {
    let cursor: SlotCursor = { seq: 0 };
    for (;;) {
      const batch = source.slotsAfter(replica, cursor, UNION_SERIES_PER_MERGE);
      const series = batch.filter((slot) => slot.kind !== undefined);
      for (const slot of series) {
        checkSlot(slot);
        const problem = seriesSlotProblem(slot.kind ?? 0, slot.t ?? 0, slot.count);
        if (problem !== undefined) throw new UnsafeCopyError(`page ${JSON.stringify(slot.page)}, replica ${slot.replica}: ${problem}`);
      }
      if (series.length > 0) target.merge(series, []);
      const last = batch.at(-1);
      if (batch.length < UNION_SERIES_PER_MERGE || last === undefined) break;
      cursor = { seq: last.seq, page: last.page, kind: last.kind ?? 0, t: last.t ?? 0 };
    }
  }
  // Only now that every slot of the source is in: each entry `(R, s)` of its vector is a range
  // `(0, s]` the target holds in full. In a sound copy R's commit s raised a slot of R to seq s
  // (or a later commit raised it further), so an entry above every seq of R's slots claims
  // changes the copy does not hold: it is left out (always safe: anti-entropy fills it from
  // peers), where carrying it would stop every node seeded from the union from ever asking.
  const supported = ranges.filter((range) => range.upTo <= (highestSeq.get(range.replica) ?? 0));
  if (supported.length > 0) target.merge([], supported);
  return { pages, views };
}

function checkSlot(slot: Slot): void {
  const problem = pageNameProblem(slot.page);
  if (problem !== undefined) throw new UnsafeCopyError(`a slot's ${problem} (${JSON.stringify(String(slot.page).slice(0, 80))})`);
  if (!isReplicaId(slot.replica)) throw new UnsafeCopyError(`page ${JSON.stringify(slot.page)} has a slot of ${JSON.stringify(slot.replica)}, which is not a replica id`);
  // A reset's tombstone has count 0 at an epoch ≥ 1 (src/crdt/reset.ts); nothing else has count 0.
  const epoch = slot.epoch ?? 0;
  const minimum = { count: epoch === 0 ? 1 : 0, seq: 1, epoch: 0 };
  for (const [what, value] of [['count', slot.count], ['seq', slot.seq], ['epoch', epoch]] as const) {
    if (!Number.isSafeInteger(value) || value < minimum[what]) {
      throw new UnsafeCopyError(`page ${JSON.stringify(slot.page)}, replica ${slot.replica}: slot ${what} ${String(value)} is not an integer in [${minimum[what]}, 2^53-1]`);
    }
  }
}

/**
 * A page's total is the sum of its slots capped at MAX_TOTAL (the store keeps both in one
 * transaction, and saturates like every node).
 */
function checkPageTotal(page: PageName, total: number, slots: readonly Slot[]): void {
  const sum = saturatingTotal(slots.map((slot) => slot.count));
  if (sum !== total) {
    const shown = sum === MAX_TOTAL ? `${String(sum)} (capped)` : String(sum);
    throw new UnsafeCopyError(`page ${JSON.stringify(page)} totals ${String(total)} but its slots sum to ${shown}: an inconsistent (corrupt) copy`);
  }
}

function* pageBatches(store: Store): Generator<Array<{ page: PageName; count: number }>> {
  let after: PageName | undefined;
  for (;;) {
    // With resets: a reset page's tombstone must reach the union, or an older copy's slots would undo the reset.
    const batch = store.listPages(after === undefined ? { limit: UNION_PAGES_PER_MERGE, withResets: true } : { after, limit: UNION_PAGES_PER_MERGE, withResets: true });
    if (batch.length === 0) return;
    yield batch;
    after = batch[batch.length - 1]?.page;
    if (batch.length < UNION_PAGES_PER_MERGE) return;
  }
}
