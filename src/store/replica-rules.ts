/**
 * The rules of a replica's identity that both stores (SqliteStore and its twin MemoryStore) apply,
 * as pure functions over what each store holds: minting an id the database has never seen, and
 * the own-seq check that proves a database went back in time. Their tunables live here too.
 */
import type { Slot } from '../crdt/g-counter.js';
import type { SeqRange } from '../crdt/version-vector.js';
import { AppError } from '../errors.js';
import { newReplicaId, pageNameProblem, type PageName, type RandomBytes, type ReplicaId } from '../ids.js';
import type { IdentityDecision } from './identity.js';
import { MAX_RESET_PAGES, type IdentityInfo } from './store.js';

/** Attempts at drawing a replica id that this database has not seen (only a broken random repeats). */
const MINT_ATTEMPTS = 16;

/** Slot keys remembered for the digest (about 0.5 MB at most with short page names). */
export const SLOT_KEY_CACHE_ENTRIES = 4096;

/** A replica id for which `known` is false: never one the database has seen. */
export function mintReplicaId(random: RandomBytes, known: (id: ReplicaId) => boolean): ReplicaId {
  for (let attempt = 0; attempt < MINT_ATTEMPTS; attempt++) {
    const id = newReplicaId(random);
    if (!known(id)) return id;
  }
  throw new AppError('internal', `the random source repeated known replica ids ${MINT_ATTEMPTS} times`);
}

/**
 * The own-seq check of a merge. A peer holding more of this replica's own id than it ever
 * committed (a slot or a range of `own` beyond `localSeq`) proves this database went back in
 * time: it must stop counting under that id (the slots stay valid state). Returns the reason to
 * mint with, or undefined when the merge proves nothing.
 */
export function ownSeqProblem(own: ReplicaId, localSeq: number, slots: readonly Slot[], ranges: readonly SeqRange[]): string | undefined {
  let seen = 0;
  for (const slot of slots) if (slot.replica === own && slot.seq > seen) seen = slot.seq;
  for (const range of ranges) if (range.replica === own && range.upTo > seen) seen = range.upTo;
  return seen > localSeq ? `a peer holds seq ${seen} of this replica, beyond its local seq ${localSeq}` : undefined;
}

/** The identity after a mid-run mint: a new id, the same epoch. */
export function mintedIdentity(current: IdentityInfo, replicaId: ReplicaId, reason: string): IdentityInfo {
  return { replicaId, outcome: 'minted', reason, previous: current.replicaId, epoch: current.epoch };
}

/**
 * The identity a store opens with, from `decideIdentity`'s decision: the stored id when kept,
 * else a fresh one from `mint` (created for a new database, minted after possible data loss).
 */
export function openedIdentity(decision: IdentityDecision, stored: ReplicaId | undefined, mint: () => ReplicaId): IdentityInfo {
  if (decision.action === 'keep') {
    if (stored === undefined) throw new AppError('internal', 'kept an identity the database does not hold');
    return { replicaId: stored, outcome: 'kept', epoch: decision.epoch };
  }
  const replicaId = mint();
  if (decision.action === 'create') return { replicaId, outcome: 'created', epoch: decision.epoch };
  return { replicaId, outcome: 'minted', reason: decision.reason, previous: stored, epoch: decision.epoch };
}

/** The pages of one reset, each once, all checked first (nothing is reset when one is bad). */
export function checkResetPages(pages: readonly PageName[]): PageName[] {
  if (pages.length > MAX_RESET_PAGES) throw new AppError('bad_request', `a reset names at most ${MAX_RESET_PAGES} pages, got ${pages.length}`);
  for (const page of pages) {
    const problem = pageNameProblem(page);
    if (problem !== undefined) throw new AppError('bad_page_name', problem);
  }
  return [...new Set(pages)];
}
