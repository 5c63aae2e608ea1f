/**
 * The union of several copies of the counter state, by the store's own merge (DESIGN.md §1):
 * every slot max-merged, and each copy's version vector carried over, which is safe because the
 * copy's every slot is merged first (a copy that holds `vv[R] = s` holds all of R's changes up to
 * s, and so does the target once all of the copy's slots are in it).
 *
 * Only the public Store API is used (listPages, pageSlots, versionVector, merge), so any two
 * stores can be merged: the recovery merges restored backups into a new file this way.
 */
import type { SeqRange } from '../crdt/version-vector.js';
import type { PageName } from '../ids.js';
import type { Store } from '../store/store.js';

/** Pages read and merged per transaction: bounds one merge's size and the memory held. */
export const UNION_PAGES_PER_MERGE = 500;

/** What one copy holds: its pages, and its views (the sum of its page totals). */
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
    for (const { count } of batch) views += count;
  }
  return { pages, views };
}

/**
 * Max-merges every slot of `source` into `target`, then advances `target`'s version vector over
 * `source`'s. Returns what `source` held. `target` must not be `source`.
 */
export function mergeInto(target: Store, source: Store): StateSize {
  let pages = 0;
  let views = 0;
  for (const batch of pageBatches(source)) {
    pages += batch.length;
    for (const { count } of batch) views += count;
    target.merge(
      batch.flatMap(({ page }) => source.pageSlots(page)),
      [],
    );
  }
  // Only now that every slot of the source is in: each entry `(R, s)` of its vector is a range
  // `(0, s]` the target holds in full.
  const ranges: SeqRange[] = [...source.versionVector()].map(([replica, upTo]) => ({ replica, after: 0, upTo }));
  if (ranges.length > 0) target.merge([], ranges);
  return { pages, views };
}

function* pageBatches(store: Store): Generator<Array<{ page: PageName; count: number }>> {
  let after: PageName | undefined;
  for (;;) {
    const batch = store.listPages(after === undefined ? { limit: UNION_PAGES_PER_MERGE } : { after, limit: UNION_PAGES_PER_MERGE });
    if (batch.length === 0) return;
    yield batch;
    after = batch[batch.length - 1]?.page;
    if (batch.length < UNION_PAGES_PER_MERGE) return;
  }
}
