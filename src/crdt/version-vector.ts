/**
 * Version vectors: per replica, the highest seq up to which a node holds *all* of that replica's
 * changes. The invariant every caller protects: if `vv[R] = s`, every slot of R here is at least
 * what R had written by its commit s. Merging slot values is always safe; advancing an entry is
 * not: only a contiguous range applied in full, starting at or below the current entry, may
 * advance it. A range past a gap leaves the entry where it is (anti-entropy fills the gap).
 */
import { createHash } from 'node:crypto';
import type { ReplicaId } from '../ids.js';
import { compareUtf8 } from '../utf8.js';

export type VersionVector = ReadonlyMap<ReplicaId, number>;

/** The seqs `(after, upTo]` of one replica. */
export interface SeqRange {
  readonly replica: ReplicaId;
  readonly after: number;
  readonly upTo: number;
}

export function seqOf(vv: VersionVector, replica: ReplicaId): number {
  return vv.get(replica) ?? 0;
}

/** True when applying `range` in full lets `vv[range.replica]` move to `range.upTo`. */
export function canAdvance(vv: VersionVector, range: SeqRange): boolean {
  return range.after <= seqOf(vv, range.replica) && range.upTo > seqOf(vv, range.replica);
}

/** Advances `vv` in place over `range` when that keeps the invariant; returns whether it moved. */
export function advance(vv: Map<ReplicaId, number>, range: SeqRange): boolean {
  if (!canAdvance(vv, range)) return false;
  vv.set(range.replica, range.upTo);
  return true;
}

/** What `remote` holds beyond `local`, as one range per replica. */
export function rangesBeyond(local: VersionVector, remote: VersionVector): SeqRange[] {
  const out: SeqRange[] = [];
  for (const [replica, upTo] of remote) {
    const after = seqOf(local, replica);
    if (upTo > after) out.push({ replica, after, upTo });
  }
  return out;
}

/** How many seqs `local` is behind `remote`, summed over replicas (0 when it has everything). */
export function lagBehind(local: VersionVector, remote: VersionVector): number {
  let lag = 0;
  for (const range of rangesBeyond(local, remote)) lag += range.upTo - range.after;
  return lag;
}

/** True when `a` has everything `b` has. */
export function dominates(a: VersionVector, b: VersionVector): boolean {
  return rangesBeyond(a, b).length === 0;
}

/** Entry-wise max. Only meaningful for vectors whose states were merged as well. */
export function mergeVectors(a: VersionVector, b: VersionVector): Map<ReplicaId, number> {
  const out = new Map(a);
  for (const [replica, seq] of b) if (seq > seqOf(out, replica)) out.set(replica, seq);
  return out;
}

export function vectorToObject(vv: VersionVector): Record<string, number> {
  return Object.fromEntries([...vv].sort(([a], [b]) => compareUtf8(a, b)));
}

/**
 * The anti-entropy digest (protocol 4): 16 bytes of SHA-256 over the vector's entries in replica
 * order and the store's state digest. Two nodes with equal digests hold the same vector and the
 * same slots, so neither has anything to send the other; any difference — an entry, or slots
 * merged past a gap that no vector shows — makes them exchange vectors.
 */
export function syncDigest(vv: VersionVector, stateDigest: string): Uint8Array {
  const hash = createHash('sha256');
  const replicas = [...vv.keys()].sort();
  for (const replica of replicas) hash.update(`${replica}:${vv.get(replica)}\n`);
  hash.update(stateDigest);
  return new Uint8Array(hash.digest().subarray(0, 16));
}
