/**
 * The sync rounds a peer is sending us, chunk by chunk: a round's `covered` ranges count only when
 * every one of its chunks arrived on the same session (a round cut short by a reconnect, or a
 * stray duplicated chunk, must not advance the version vector).
 */

/**
 * Sync rounds of a peer tracked at once. Past it the oldest is forgotten: that costs only the
 * version-vector advance of a round that was probably abandoned (a duplicated stray chunk), never
 * a value, and keeps a peer from growing our memory.
 */
export const MAX_OPEN_ROUNDS = 64;

export class ReceivedRounds {
  private readonly rounds = new Map<number, Set<number>>();

  /** Records that chunk `index` of round `round` arrived. */
  chunkArrived(round: number, index: number): void {
    let chunks = this.rounds.get(round);
    if (chunks === undefined) {
      if (this.rounds.size >= MAX_OPEN_ROUNDS) this.rounds.delete(this.rounds.keys().next().value!);
      chunks = new Set();
      this.rounds.set(round, chunks);
    }
    chunks.add(index);
  }

  /** True when chunks 0..count-1 of the round all arrived; forgets the round either way. */
  complete(round: number, count: number): boolean {
    const chunks = this.rounds.get(round);
    this.rounds.delete(round);
    if (count === 0) return true;
    if (chunks === undefined || chunks.size < count) return false;
    for (let i = 0; i < count; i++) if (!chunks.has(i)) return false;
    return true;
  }
}
