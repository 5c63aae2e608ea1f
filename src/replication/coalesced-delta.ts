/**
 * Contiguous live deltas of one replica merged into one: `(a, b]` then `(b, c]` is `(a, c]`, with
 * each counter's slot the later one (a replica's slot for a counter only grows, with its seq),
 * so the merged delta carries every slot the replica raised in `(a, c]` at its value as of `c`:
 * what a delta of `(a, c]` must carry for a receiver to advance its vector over it (docs/design.md, invariant 1).
 * Pure: no socket, timer or store.
 */
import { keyOf } from '../crdt/series.js';
import type { Slot } from '../crdt/g-counter.js';
import type { Delta } from '../store/store.js';

/** Bytes a delta takes on the wire, about (an estimate of its encoding, not of its heap): the outbox bound counts these. */
export function deltaBytes(delta: Delta): number {
  let bytes = 48;
  for (const slot of delta.slots) bytes += Buffer.byteLength(slot.page) + 32;
  return bytes;
}

function counterKey(slot: Slot): string {
  const { kind, t } = keyOf(slot);
  return kind === undefined ? slot.page : `${slot.page}\u0000${kind}\u0000${t}`;
}

/** A delta being coalesced: its range so far and its slots by counter. */
export class CoalescedDelta {
  private after: number;
  private upTo: number;
  private readonly slots = new Map<string, Slot>();
  private estimated: number;
  readonly replica: Delta['range']['replica'];

  constructor(first: Delta) {
    this.replica = first.range.replica;
    this.after = first.range.after;
    this.upTo = first.range.upTo;
    for (const slot of first.slots) this.slots.set(counterKey(slot), slot);
    this.estimated = deltaBytes(first);
  }

  /** Estimated wire bytes (deltaBytes of the merged delta, about). */
  get bytes(): number {
    return this.estimated;
  }

  /** Whether `next` continues this delta: the same replica, starting where this one ends. */
  continuedBy(next: Delta): boolean {
    return next.range.replica === this.replica && next.range.after === this.upTo;
  }

  /** Slots the merge with `next` would hold at most. */
  slotsWith(next: Delta): number {
    return this.slots.size + next.slots.length;
  }

  /** Merges `next` in (it must continue this delta): each counter keeps its later slot. */
  add(next: Delta): void {
    if (!this.continuedBy(next)) throw new Error(`delta ${next.range.replica} (${next.range.after}, ${next.range.upTo}] does not continue (${this.after}, ${this.upTo}]`);
    for (const slot of next.slots) {
      const key = counterKey(slot);
      const held = this.slots.get(key);
      if (held === undefined) this.estimated += Buffer.byteLength(slot.page) + 32;
      if (held === undefined || slot.seq >= held.seq) this.slots.set(key, slot);
    }
    this.upTo = next.range.upTo;
  }

  /** The merged delta. */
  delta(): Delta {
    return { range: { replica: this.replica, after: this.after, upTo: this.upTo }, slots: [...this.slots.values()] };
  }
}

/** Merges a replica's contiguous deltas, in order, into one (the first's start, the last's end). */
export function coalesce(deltas: readonly Delta[]): Delta {
  if (deltas.length === 0) throw new Error('nothing to coalesce');
  const merged = new CoalescedDelta(deltas[0]!);
  for (const next of deltas.slice(1)) merged.add(next);
  return merged.delta();
}
