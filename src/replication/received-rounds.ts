/**
 * The sync rounds a peer is sending us, chunk by chunk: a round's `covered` ranges count only when
 * every one of its chunks arrived on the same session (a round cut short by a reconnect, or a
 * stray duplicated chunk, must not advance the version vector), and then only as far as the slots
 * the round delivered justify (see `justified`).
 */
import type { Slot } from '../crdt/g-counter.js';
import type { SeqRange } from '../crdt/version-vector.js';
import type { ReplicaId } from '../ids.js';

/**
 * Sync rounds of a peer tracked at once. Past it the oldest is forgotten: that costs only the
 * version-vector advance of a round that was probably abandoned (a duplicated stray chunk), never
 * a value, and keeps a peer from growing our memory.
 */
export const MAX_OPEN_ROUNDS = 64;

interface Round {
  readonly chunks: Set<number>;
  /** Per replica, the highest seq among the slots this round delivered (and we accepted). */
  readonly highest: Map<ReplicaId, number>;
}

/**
 * The claim check for coverage: a range `(after, upTo]` of replica R is justified only by a slot of
 * R at seq ≥ upTo among the slots delivered with it. An honest sender always has one: the commit
 * `upTo` of R raised some slot, and the sender holds that slot at seq ≥ upTo (a slot's seq only
 * grows with its value), and a sync answer sends every slot of R after `after`, a delta every slot
 * raised in its range. A claim without it (an empty delta "covering" a billion seqs) moves nothing.
 */
export function justified(ranges: readonly SeqRange[], highest: ReadonlyMap<ReplicaId, number>): SeqRange[] {
  return ranges.filter((range) => (highest.get(range.replica) ?? 0) >= range.upTo);
}

/** Per replica, the highest seq among `slots`. */
export function highestSeqs(slots: readonly Slot[], into = new Map<ReplicaId, number>()): Map<ReplicaId, number> {
  for (const slot of slots) if (slot.seq > (into.get(slot.replica) ?? 0)) into.set(slot.replica, slot.seq);
  return into;
}

export class ReceivedRounds {
  private readonly rounds = new Map<number, Round>();

  /** Records that chunk `index` of round `round` arrived with `slots` (those we accepted). */
  chunkArrived(round: number, index: number, slots: readonly Slot[] = []): void {
    let entry = this.rounds.get(round);
    if (entry === undefined) {
      if (this.rounds.size >= MAX_OPEN_ROUNDS) this.rounds.delete(this.rounds.keys().next().value!);
      entry = { chunks: new Set(), highest: new Map() };
      this.rounds.set(round, entry);
    }
    entry.chunks.add(index);
    highestSeqs(slots, entry.highest);
  }

  /** True when chunks 0..count-1 of the round all arrived; forgets the round either way. */
  complete(round: number, count: number): boolean {
    return this.finish(round, count) !== undefined;
  }

  /**
   * The ranges of a finished round that count: none unless chunks 0..count-1 all arrived, and of
   * those only the ones its slots justify. Forgets the round either way.
   */
  covered(round: number, count: number, ranges: readonly SeqRange[]): SeqRange[] | undefined {
    const highest = this.finish(round, count);
    return highest === undefined ? undefined : justified(ranges, highest);
  }

  private finish(round: number, count: number): ReadonlyMap<ReplicaId, number> | undefined {
    const entry = this.rounds.get(round);
    this.rounds.delete(round);
    if (count === 0) return new Map();
    if (entry === undefined || entry.chunks.size < count) return undefined;
    for (let i = 0; i < count; i++) if (!entry.chunks.has(i)) return undefined;
    return entry.highest;
  }
}
