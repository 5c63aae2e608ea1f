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
 */
import type { Slot } from '../crdt/g-counter.js';
import { rangesBeyond, type SeqRange, type VersionVector } from '../crdt/version-vector.js';
import type { SlotCursor, Store } from '../store/store.js';

/** Slots per `slots` chunk: a page name is at most 256 bytes, so a chunk stays far below the frame limit. */
export const SYNC_CHUNK_SLOTS = 1000;

export interface SyncAnswer {
  /** Ranges covered once every chunk is merged, captured before reading. */
  readonly ranges: readonly SeqRange[];
  /** Lazily read chunks; each read is one bounded query. */
  readonly chunks: Iterable<Slot[]>;
}

export function planSyncAnswer(store: Store, peerVv: VersionVector, chunkSlots = SYNC_CHUNK_SLOTS): SyncAnswer {
  const ranges = rangesBeyond(peerVv, store.versionVector());
  return { ranges, chunks: readChunks(store, ranges, chunkSlots) };
}

function* readChunks(store: Store, ranges: readonly SeqRange[], chunkSlots: number): Generator<Slot[]> {
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
