/**
 * The G-Counter, as pure functions over plain data. A page's counter is a map
 * `replica → (epoch, count, seq)`: only the owning replica ever raises its own slot, the page's
 * value is the sum of its slots, and merging takes the max of each slot. `seq` is the owner's
 * commit that last raised the slot; since the owner only ever raises a slot, a higher count always
 * comes with a higher seq, so "max by count" and "max by seq" pick the same value.
 *
 * Resets (reset.ts): a slot also carries the page's reset epoch it counts in (absent = 0). A page
 * holds slots of one epoch only, the highest it has seen: a slot of a higher epoch drops every
 * slot of the page, a slot of a lower one is dropped. So the page's state is the pair (epoch,
 * G-Counter) merged as "higher epoch wins, equal epochs max-merge slots", which is still
 * idempotent, commutative and associative.
 *
 * The digest of a state, kept incrementally, is digest.ts.
 */
import type { PageName, ReplicaId } from '../ids.js';

export interface SlotValue {
  readonly count: number;
  readonly seq: number;
  /** The page's reset epoch this slot counts in; absent means 0 (no reset yet). */
  readonly epoch?: number;
}

/** A slot's epoch (0 when absent). */
export function epochOf(value: Pick<SlotValue, 'epoch'>): number {
  return value.epoch ?? 0;
}

export interface Slot extends SlotValue {
  readonly page: PageName;
  readonly replica: ReplicaId;
  /**
   * Which counter of the page (series.ts): absent for the page's total; `SERIES_HOUR` /
   * `SERIES_DAY` for a bucket of the hour or day `t`; `SERIES_REGISTER` for a HyperLogLog register
   * of a day's unique visitors (`t` = day × HLL_REGISTERS + index, `count` = the register's rank).
   * Every kind is a slot of the replica like the total: owned by it, max-merged, carried by seqs.
   */
  readonly kind?: 1 | 2 | 3;
  readonly t?: number;
}

/** page → replica → slot. Mutable only inside the functions that say so. */
export type GCounterState = Map<PageName, Map<ReplicaId, SlotValue>>;

export function emptyState(): GCounterState {
  return new Map();
}

/**
 * The slot rule, the one place it is written (applySlots and both stores apply it): `next`
 * replaces `current` when its epoch is higher, or its epoch is equal and its count higher, or
 * both are equal and its seq higher (or there is no current value). Keeping the larger value in
 * this order is commutative, associative and idempotent.
 */
export function supersedes(next: SlotValue, current: SlotValue | undefined): boolean {
  if (current === undefined) return true;
  const a = epochOf(next);
  const b = epochOf(current);
  if (a !== b) return a > b;
  return next.count > current.count || (next.count === current.count && next.seq > current.seq);
}

/** The page's reset epoch: the epoch of its slots (all slots of a page share one), 0 when none. */
export function pageEpoch(state: GCounterState, page: PageName): number {
  const slots = state.get(page);
  if (slots === undefined) return 0;
  for (const value of slots.values()) return epochOf(value);
  return 0;
}

/**
 * What a slot does to a page whose slots are all of epoch `current` (reset.ts states the rule):
 * `drop` it (an older epoch), `reset` the page to it (a newer epoch: every slot goes first), or
 * `merge` it with the slot rule (the same epoch).
 */
export function slotEffect(slotEpoch: number, current: number, pageHasSlots: boolean): 'drop' | 'reset' | 'merge' {
  if (!pageHasSlots) return 'merge';
  if (slotEpoch < current) return 'drop';
  return slotEpoch > current ? 'reset' : 'merge';
}

/**
 * Merges slots into `state` in place and returns the pages whose value changed (went up, or was
 * reset). Applying the same slots twice, or in any order, gives the same state.
 */
export function applySlots(state: GCounterState, slots: Iterable<Slot>): Set<PageName> {
  const changed = new Set<PageName>();
  for (const slot of slots) {
    let page = state.get(slot.page);
    if (page === undefined) {
      page = new Map();
      state.set(slot.page, page);
    }
    const effect = slotEffect(epochOf(slot), pageEpoch(state, slot.page), page.size > 0);
    if (effect === 'drop') continue;
    if (effect === 'reset') {
      let before = 0;
      for (const value of page.values()) before += value.count;
      page.clear();
      if (before > 0) changed.add(slot.page);
    }
    const current = page.get(slot.replica);
    if (!supersedes(slot, current)) continue;
    page.set(slot.replica, valueOf(slot));
    if (current === undefined ? slot.count > 0 : slot.count > current.count) changed.add(slot.page);
  }
  return changed;
}

/** The stored value of a slot: epoch kept only when above 0, so states compare as before. */
export function valueOf(slot: SlotValue): SlotValue {
  const epoch = epochOf(slot);
  return epoch === 0 ? { count: slot.count, seq: slot.seq } : { count: slot.count, seq: slot.seq, epoch };
}

/** A new state holding the slot-wise max of `a` and `b`. */
export function mergeStates(a: GCounterState, b: GCounterState): GCounterState {
  const out = cloneState(a);
  applySlots(out, allSlots(b));
  return out;
}

export function cloneState(state: GCounterState): GCounterState {
  const out: GCounterState = new Map();
  for (const [page, slots] of state) out.set(page, new Map(slots));
  return out;
}

export function* allSlots(state: GCounterState): Generator<Slot> {
  for (const [page, slots] of state) {
    for (const [replica, value] of slots) yield { page, replica, ...valueOf(value) };
  }
}

/** The page's value: the sum of its slots (0 for an unknown page), not capped (see `pageTotal`). */
export function pageValue(state: GCounterState, page: PageName): number {
  let total = 0;
  const slots = state.get(page);
  if (slots !== undefined) for (const value of slots.values()) total += value.count;
  return total;
}

/**
 * The highest page total a node shows. Each slot is a safe integer and a local increment that
 * would take its page's total past it is refused, but slots of different replicas are merged
 * independently: concurrent increments on two nodes, or a peer's slots, can sum to more. Such a
 * page is *saturated*: its total reads MAX_TOTAL and takes no more increments.
 *
 * Why saturate rather than refuse the slot that would pass: which slot comes last depends on
 * arrival order, so refusing it would leave two nodes holding different slots for ever (and a
 * peer could then part two honest nodes with one slot each). The slots themselves merge as
 * always, the capped total is a function of the merged slots alone, so every node that holds the
 * same slots shows the same total and the same digest, whatever the order.
 */
export const MAX_TOTAL = Number.MAX_SAFE_INTEGER;

/**
 * The sum of `counts` capped at MAX_TOTAL, exact below it. Counts are safe integers ≥ 0, so a
 * running sum at most MAX_TOTAL plus one count stays below 2^54, where doubles still compare right.
 */
export function saturatingTotal(counts: Iterable<number>): number {
  let total = 0;
  for (const count of counts) {
    total += count;
    if (total > MAX_TOTAL) return MAX_TOTAL;
  }
  return total;
}

/** The page's total as nodes show it: the sum of its slots capped at MAX_TOTAL (0 for an unknown page). */
export function pageTotal(state: GCounterState, page: PageName): number {
  const slots = state.get(page);
  return slots === undefined ? 0 : saturatingTotal([...slots.values()].map((value) => value.count));
}
