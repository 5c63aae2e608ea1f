/**
 * The G-Counter, as pure functions over plain data. A page's counter is a map
 * `replica → (count, seq)`: only the owning replica ever raises its own slot, the page's value is
 * the sum of its slots, and merging takes the max of each slot. `seq` is the owner's commit that
 * last raised the slot; since the owner only ever raises a slot, a higher count always comes with
 * a higher seq, so "max by count" and "max by seq" pick the same value.
 */
import { createHash } from 'node:crypto';
import type { PageName, ReplicaId } from '../ids.js';

export interface SlotValue {
  readonly count: number;
  readonly seq: number;
}

export interface Slot extends SlotValue {
  readonly page: PageName;
  readonly replica: ReplicaId;
}

/** page → replica → slot. Mutable only inside the functions that say so. */
export type GCounterState = Map<PageName, Map<ReplicaId, SlotValue>>;

export function emptyState(): GCounterState {
  return new Map();
}

/** The larger of two slot values (by count, then seq): commutative, associative, idempotent. */
export function maxSlot(a: SlotValue | undefined, b: SlotValue): SlotValue {
  if (a === undefined) return b;
  if (b.count > a.count || (b.count === a.count && b.seq > a.seq)) return b;
  return a;
}

/**
 * Merges slots into `state` in place and returns the pages whose value went up.
 * Applying the same slots twice, or in any order, gives the same state.
 */
export function applySlots(state: GCounterState, slots: Iterable<Slot>): Set<PageName> {
  const changed = new Set<PageName>();
  for (const slot of slots) {
    let page = state.get(slot.page);
    if (page === undefined) {
      page = new Map();
      state.set(slot.page, page);
    }
    const current = page.get(slot.replica);
    const next = maxSlot(current, slot);
    if (next !== current) {
      page.set(slot.replica, { count: next.count, seq: next.seq });
      if (current === undefined || next.count > current.count) changed.add(slot.page);
    }
  }
  return changed;
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
    for (const [replica, value] of slots) yield { page, replica, count: value.count, seq: value.seq };
  }
}

/** The page's value: the sum of its slots (0 for an unknown page). */
export function pageValue(state: GCounterState, page: PageName): number {
  let total = 0;
  const slots = state.get(page);
  if (slots !== undefined) for (const value of slots.values()) total += value.count;
  return total;
}

/** Every slot of `replica` raised after commit `afterSeq`, in seq order. */
export function slotsOfReplicaAfter(state: GCounterState, replica: ReplicaId, afterSeq: number): Slot[] {
  const out: Slot[] = [];
  for (const [page, slots] of state) {
    const value = slots.get(replica);
    if (value !== undefined && value.seq > afterSeq) out.push({ page, replica, count: value.count, seq: value.seq });
  }
  return out.sort((x, y) => x.seq - y.seq || compareStrings(x.page, y.page));
}

/**
 * A digest of the counter values, equal on two nodes exactly when they hold the same counts for
 * every (page, replica). Feed it slots in any order.
 */
export function stateDigest(slots: Iterable<Pick<Slot, 'page' | 'replica' | 'count'>>): string {
  const lines: string[] = [];
  for (const slot of slots) if (slot.count > 0) lines.push(`${JSON.stringify(slot.page)} ${slot.replica} ${slot.count}`);
  lines.sort(compareStrings);
  const hash = createHash('sha256');
  for (const line of lines) hash.update(line).update('\n');
  return hash.digest('hex').slice(0, 32);
}

export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
