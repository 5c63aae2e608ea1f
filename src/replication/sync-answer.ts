/**
 * What a node sends a peer whose version vector it just received: every slot of each replica
 * beyond the peer's entry, in chunks, and the ranges the whole answer covers.
 *
 * Why the whole answer and not chunk by chunk: a slot keeps only the seq of its *last* raise, so a
 * slot raised at seq 3 and again at seq 9 is stored under 9. A chunk holding "seqs 1–5" would miss
 * it, and a receiver that advanced its vector to 5 after that chunk would break the invariant. The
 * answer therefore reads each replica's slots after the peer's entry to the end, and claims the
 * range `(peer's entry, our entry]` only once all of them were sent (the `covered` message).
 * Slots raised while the answer is being read move to a later seq and are read again further on;
 * reading stops when a page comes back short, so every slot raised by our entry at the start was
 * sent with a value at least as high as it had then.
 *
 * Slots nobody can cover: a node may hold slots of a replica past its own entry (a delta past a
 * gap, a round whose `covered` never came: a peer that died, or lied). When no node's entry
 * reaches them, no range ever names them, and without more they would stay on the node that got
 * them (digests differ for ever). So an answer also sends, without a range, the slots of each
 * replica held beyond the peer's entry where our own entry is not beyond it (`spread`): the
 * values spread, no vector moves (the receiver merges them as any uncovered slots). Each session
 * sends a replica's such slots once, and again only after SPREAD_INTERVAL_MS if the state changed
 * meanwhile (sync-sender.ts), so a gap that never fills costs a bounded resend, not one per round.
 */
import type { Slot } from '../crdt/g-counter.js';
import { rangesBeyond, seqOf, type SeqRange, type VersionVector } from '../crdt/version-vector.js';
import type { ReplicaId } from '../ids.js';
import type { SlotCursor, Store } from '../store/store.js';

/** Slots per `slots` chunk: a page name is at most 256 bytes, so a chunk stays far below the frame limit. */
export const SYNC_CHUNK_SLOTS = 1000;

export interface SyncAnswer {
  /** Ranges covered once every chunk is merged, captured before reading. */
  readonly ranges: readonly SeqRange[];
  /** Replicas whose slots beyond the peer's entry are sent too, with no range (see above). */
  readonly spread: readonly ReplicaId[];
  /** Lazily read chunks; each read is one bounded query. */
  readonly chunks: Iterable<Slot[]>;
}

/**
 * Replicas of which we hold slots beyond the peer's entry while our own entry is not beyond it:
 * no range of ours names those slots (`held`: per replica, the highest seq of a slot held).
 */
export function uncoveredBeyond(local: VersionVector, held: VersionVector, peerVv: VersionVector): ReplicaId[] {
  const out: ReplicaId[] = [];
  for (const [replica, highest] of held) {
    const theirs = seqOf(peerVv, replica);
    if (highest > theirs && seqOf(local, replica) <= theirs) out.push(replica);
  }
  return out;
}

/** `spreadable` says which replicas' uncovered slots this answer may send (the sender's resend bound). */
export function planSyncAnswer(store: Store, peerVv: VersionVector, chunkSlots = SYNC_CHUNK_SLOTS, spreadable: (replica: ReplicaId) => boolean = () => true): SyncAnswer {
  const local = store.versionVector();
  const ranges = rangesBeyond(peerVv, local);
  const spread = uncoveredBeyond(local, store.highestSlotSeqs(), peerVv).filter(spreadable);
  const reads = [...ranges, ...spread.map((replica) => ({ replica, after: seqOf(peerVv, replica) }))];
  return { ranges, spread, chunks: readChunks(store, reads, chunkSlots) };
}

function* readChunks(store: Store, ranges: ReadonlyArray<Pick<SeqRange, 'replica' | 'after'>>, chunkSlots: number): Generator<Slot[]> {
  let buffer: Slot[] = [];
  for (const range of ranges) {
    let cursor: SlotCursor = { seq: range.after };
    for (;;) {
      const rows = store.slotsAfter(range.replica, cursor, chunkSlots);
      for (const row of rows) {
        buffer.push(row);
        if (buffer.length >= chunkSlots) {
          yield buffer;
          buffer = [];
        }
      }
      const last = rows[rows.length - 1];
      if (rows.length < chunkSlots || last === undefined) break;
      // Slots of every kind, in (seq, page, kind, t) order: the cursor names the last one read.
      cursor = { seq: last.seq, page: last.page, kind: last.kind ?? 0, t: last.t ?? 0 };
    }
  }
  if (buffer.length > 0) yield buffer;
}
