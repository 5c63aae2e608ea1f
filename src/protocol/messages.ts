/**
 * The peer protocol's messages as plain data. `codec.ts` turns them into lib0-encoded frames and
 * back; `PROTOCOL.md` documents every byte. Every frame starts with the protocol version.
 */
import type { Slot } from '../crdt/g-counter.js';
import type { SeqRange } from '../crdt/version-vector.js';
import type { PageName, ReplicaId } from '../ids.js';

/**
 * 2: slots carry the page's reset epoch (resets, src/crdt/reset.ts), and sessions are authenticated
 * (every frame after a side's auth is sealed, session-mac.ts). Version 1 nodes refuse its frames.
 * 3: slots carry a kind (the total, an hour or day bucket, a visitor-sketch register: series.ts).
 * 4: quiet at rest — anti-entropy sends a `digest` first (the vector only on a mismatch) and
 * presence renewals ride on the session instead of frames (PROTOCOL.md §4, §5). Version 3 nodes
 * refuse its frames.
 * 5: a `delta` leaves out its replica when it is the sender's own and carries its seqs as
 * distances from upTo: 20 bytes fewer per live delta, a third of the frame (issue 18's wire
 * bytes). Version 4 nodes refuse its frames.
 * 6: a `delta` names a page the session carried before by its entry in the session's page table
 * (page-table.ts), a new one by what it does not share with the previous new one, a node's own
 * delta by how far it starts past the previous (origin 2; 3 for a lone slot, without its span,
 * slot count and back), and a slot's kind and epoch share a byte: 19 bytes fewer per one-slot delta on
 * a page seen before (27 → 8 before the MAC at seq 1,234,567 and a 2-byte count). Version 5 nodes
 * refuse its frames.
 */
export const PROTOCOL_VERSION = 6;
/** Bytes of an anti-entropy digest (`digest`, SyncDigest in src/crdt/version-vector.ts). */
export const DIGEST_BYTES = 16;
/** Largest frame accepted or sent, in bytes. Sync answers are chunked below it. */
export const MAX_FRAME_BYTES = 1024 * 1024;
/**
 * Most entries one `slots`, `delta`, `vv` or `vvPart` frame may list. Decoding costs per entry,
 * not per byte (about 0.6 µs a slot or vector entry here: a 1 MiB frame of 150,000 short slots
 * took 90 ms, one turn of the event loop), so the byte limit alone let one frame hold the loop
 * for 90 ms. At 4,096 a frame decodes in about 2.5 ms; honest senders stay far below it (sync
 * chunks and deltas carry at most 1,000 slots, vectors go in parts of VV_CHUNK_ENTRIES).
 */
export const MAX_FRAME_ENTRIES = 4_096;
/** Most ranges one `ihave` or `graft` frame may list (broadcast.ts). */
export const MAX_ANNOUNCED_RANGES = 256;
export const NONCE_BYTES = 16;
export const PROOF_BYTES = 32;
export const MAX_CLUSTER_NAME_BYTES = 128;
export const MAX_NODE_NAME_BYTES = 256;
export const MAX_REASON_BYTES = 512;

export type RejectCode =
  | 'protocol_version' // the peer speaks another protocol version
  | 'cluster' // another cluster name
  | 'auth' // the HMAC proof of CLUSTER_SECRET did not match
  | 'self' // the peer is this very node
  | 'duplicate' // a connection between these two nodes already exists
  | 'bad_frame' // a frame failed validation
  | 'shutting_down'
  | 'full'; // bounded-degree mode: the node keeps as many peers as it takes; dial another

/** A slot of the replica named by the enclosing message. */
export interface ReplicaSlot {
  readonly page: PageName;
  readonly count: number;
  readonly seq: number;
  /** The page's reset epoch the slot counts in; absent = 0. */
  readonly epoch?: number;
  /** The slot's kind and key (series.ts); absent for the page's total. */
  readonly kind?: 1 | 2 | 3;
  readonly t?: number;
}

export type Message =
  /** First frame on both sides: who I am, and a challenge for the peer. */
  | {
      readonly type: 'hello';
      readonly cluster: string;
      readonly replica: ReplicaId;
      readonly node: string;
      readonly nonce: Uint8Array;
    }
  /** HMAC-SHA256 over the peer's challenge, proving knowledge of CLUSTER_SECRET. */
  | { readonly type: 'auth'; readonly proof: Uint8Array }
  /** The connection is refused; the sender closes the socket after it. */
  | { readonly type: 'reject'; readonly code: RejectCode; readonly reason: string }
  /** The sender's version vector: the receiver answers with what the sender lacks. */
  | { readonly type: 'vv'; readonly vv: ReadonlyMap<ReplicaId, number> }
  /** Entries of the sender's next `vv`, for a vector too big for one frame: the `vv` that follows ends it. */
  | { readonly type: 'vvPart'; readonly vv: ReadonlyMap<ReplicaId, number> }
  /** One chunk of a sync answer (any replicas). Safe to merge on its own; advances nothing. */
  | { readonly type: 'slots'; readonly round: number; readonly index: number; readonly slots: readonly Slot[] }
  /** End of a sync answer: `chunks` chunks were sent; once all are merged, `ranges` are covered. */
  | { readonly type: 'covered'; readonly round: number; readonly chunks: number; readonly ranges: readonly SeqRange[] }
  /** A live delta: every slot the replica raised in `range`, self-contained. */
  | { readonly type: 'delta'; readonly range: SeqRange; readonly slots: readonly ReplicaSlot[] }
  /** A y-protocols awareness update (node presence), relayed across the cluster. */
  | { readonly type: 'awareness'; readonly update: Uint8Array }
  /** Anti-entropy, first step: a hash of the sender's vector and state; a receiver that differs answers with its `vv`. */
  | { readonly type: 'digest'; readonly digest: Uint8Array }
  /** Bounded-degree mode (broadcast-tree.ts): the sender holds these deltas, by `(replica, after, upTo)`. */
  | { readonly type: 'ihave'; readonly ranges: readonly SeqRange[] }
  /** Bounded-degree mode: send me these announced deltas, and push deltas to me eagerly from now on. */
  | { readonly type: 'graft'; readonly ranges: readonly SeqRange[] }
  /** Bounded-degree mode: stop pushing deltas to me eagerly (announce them instead). */
  | { readonly type: 'prune' }
  | { readonly type: 'ping'; readonly id: number }
  | { readonly type: 'pong'; readonly id: number };

export type MessageType = Message['type'];
