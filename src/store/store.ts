/**
 * The store: one replica's G-Counter state, its version vector and its identity. Implemented by
 * `SqliteStore` (the real one) and `MemoryStore` (its twin for fast tests of what sits above);
 * both pass `test/store/store-contract.ts` (its parts in test/store/contract/).
 */
import type { Slot } from '../crdt/g-counter.js';
import type { SeqRange, VersionVector } from '../crdt/version-vector.js';
import type { VisitorRegister } from '../crdt/hyperloglog.js';
import type { PageName, ReplicaId } from '../ids.js';
import type { WriteBlock } from './write-health.js';

export interface Increment {
  readonly page: PageName;
  /** A positive safe integer. */
  readonly by: number;
  /** The visitor's register in the day's sketch (hyperloglog.ts), for a view by a visitor. */
  readonly visitor?: VisitorRegister;
}

export type SeriesStep = 'hour' | 'day';

/** Points `[from, to)` in hours or days since the epoch (UTC), of one page or (no page) the site. */
export interface SeriesRange {
  readonly page?: PageName;
  readonly step: SeriesStep;
  readonly from: number;
  readonly to: number;
}

export interface SeriesPoint {
  /** The hour or day since the epoch. */
  readonly t: number;
  readonly views: number;
  /** Unique visitors of the day (estimated); only for step `day`. */
  readonly visitors?: number;
}

/** Pages by views in the hours `[fromHour, toHour)`, at most `limit`. */
export interface TopRange {
  readonly fromHour: number;
  readonly toHour: number;
  readonly limit: number;
}

export interface PageReset {
  readonly page: PageName;
  /** The page's reset epoch after the reset. */
  readonly epoch: number;
}

/** Pages one reset commit may name: its delta stays far below the frame limit (≤ ~270 bytes a page). */
export const MAX_RESET_PAGES = 1000;

export interface PageCount {
  readonly page: PageName;
  readonly count: number;
}

/** How the replica id was chosen when the store opened. */
export interface IdentityInfo {
  readonly replicaId: ReplicaId;
  /** `created`: a new database; `kept`: same identity as last run; `minted`: new id after possible data loss. */
  readonly outcome: 'created' | 'kept' | 'minted';
  /** Human-readable reason when minted (e.g. "identity file missing"). */
  readonly reason?: string;
  /** The id this replica had before, when minted. */
  readonly previous?: ReplicaId;
  readonly epoch: number;
}

/** One local commit (or several coalesced): the slots this replica raised in seqs `(after, upTo]`. */
export interface Delta {
  readonly range: SeqRange;
  /** Every slot of `range.replica` raised in the range, with its value as of `range.upTo`. */
  readonly slots: readonly Slot[];
}

export interface MergeResult {
  /** Pages whose total changed (went up, or went to 0 by a reset), with the new totals. */
  readonly changed: readonly PageCount[];
  /** Ranges that advanced the version vector. */
  readonly advanced: readonly SeqRange[];
  /** Set when the merge proved this replica went back in time and a new id was minted. */
  readonly identityChanged?: IdentityInfo;
}

/**
 * Where to continue reading one replica's slots (of every kind, in (seq, page, kind, t) order,
 * kind 0 being the page's total): after `seq`, or after `(seq, page, kind, t)` (kind and t 0
 * when absent).
 */
export interface SlotCursor {
  readonly seq: number;
  readonly page?: PageName;
  readonly kind?: number;
  readonly t?: number;
}

export interface StoreStats {
  readonly pages: number;
  readonly slots: number;
  readonly replicas: number;
  /** Bytes of the database on disk (0 for the memory twin). */
  readonly bytes: number;
}

export interface Store {
  /** The current replica id: changes only when the store proves it went back in time. */
  readonly replicaId: ReplicaId;
  readonly identity: IdentityInfo;

  /**
   * Counts the increments as one all-or-nothing unit. Units arriving while a commit is pending
   * are committed together in one transaction under one seq (group commit; up to
   * MAX_FLUSH_INCREMENTS per transaction, whole units). Resolves after the commit with each
   * increment's page total (in input order, a page listed twice gets its final total twice).
   * Rejects with AppError `counter_overflow` (nothing counted) when a slot or a page total would
   * pass Number.MAX_SAFE_INTEGER, `overloaded` when the queue holds its bound already,
   * `disk_full` / `database_gone` while writes are blocked, and `shutting_down` after close().
   */
  increment(increments: readonly Increment[]): Promise<PageCount[]>;

  /**
   * Resets each page to zero as one local commit (one seq), whatever is queued: each page moves
   * to its next reset epoch and this replica's slot of it becomes the tombstone `(epoch, 0)` (see
   * src/crdt/reset.ts). The commit goes out like any other (onCommit). Returns each page's new
   * epoch, in input order. At most MAX_RESET_PAGES pages per call; a page listed twice is reset
   * once. Throws AppError `bad_page_name` (nothing reset), `shutting_down` after close().
   */
  reset(pages: readonly PageName[]): PageReset[];

  /** The page's total (0 for an unknown page). */
  count(page: PageName): number;
  /**
   * Views (and for days, unique visitors) per bucket of the range, every step a point (zeros
   * included), ascending (series.ts). Hours before the retention read 0 (they are pruned).
   */
  series(range: SeriesRange): SeriesPoint[];
  /** Pages by views in the range, most first (ties in name order), pages at 0 left out. */
  top(range: TopRange): PageCount[];
  /** Deletes hour buckets past the retention now (the store also does it by itself); returns how many. */
  pruneSeries(): number;
  /**
   * Pages with a count above 0 in name order (byte order of UTF-8), after `after`, at most
   * `limit`. `withResets`: pages reset to zero too (count 0), for copying the whole state.
   */
  listPages(options: { after?: PageName; limit: number; withResets?: boolean }): PageCount[];
  /** Per replica, how much of its slots this page holds: `{replica → count}` (for per-node breakdown). */
  pageSlots(page: PageName): Slot[];

  /** The highest seq this replica has committed. Equals `versionVector().get(replicaId) ?? 0`. */
  localSeq(): number;
  versionVector(): VersionVector;
  /** One entry of `versionVector()`: the seq up to which this node holds every change of `replica` (0 when none). */
  vectorEntry(replica: ReplicaId): number;
  /**
   * Per replica, the highest seq among the slots of every kind held (replicas without a slot left out). Above
   * `versionVector()` for a replica whose slots arrived past a gap nobody covered (sync-answer.ts).
   */
  highestSlotSeqs(): VersionVector;
  /** Slots of `replica` of every kind after the cursor, ordered by (seq, page, kind, t), at most `limit`. */
  slotsAfter(replica: ReplicaId, cursor: SlotCursor, limit: number): Slot[];

  /**
   * One bounded transaction: max-merges `slots`, then advances the version vector over each of
   * `ranges` that starts at or below its entry. The caller passes a range only once every slot
   * of it has been merged (in this call or an earlier one). Slots or ranges of this replica's own
   * id beyond its local seq prove it went back in time: a new id is minted in the same
   * transaction (`identityChanged`).
   */
  merge(slots: readonly Slot[], ranges: readonly SeqRange[]): MergeResult;

  /** Mints a new replica id now (a peer proved this one went back in time). */
  rotateIdentity(reason: string): IdentityInfo;

  /**
   * Why writes are refused now, or undefined: `disk_full` (lifted by itself once there is room)
   * or `database_gone` (the file was deleted or replaced under the running node). While set,
   * increment() rejects and merge() and rotateIdentity() throw AppError with that code; reads
   * go on.
   */
  writeBlocked(): WriteBlock | undefined;

  /**
   * While a large local commit is spread over loop turns (SqliteStore): a promise resolved once
   * it committed or rolled back. Until then merge(), reset() and rotateIdentity() throw AppError
   * `store_busy`, so writers wait for it first; reads go on and see only what is committed.
   * Undefined (or absent: the memory twin commits at once) when writes can go ahead now.
   */
  writesHeld?(): Promise<void> | undefined;

  /**
   * Digest of all counts: equal on nodes that have converged. While a SqliteStore recounts it in
   * the background after an unclean stop, `recounting:<replica id>`: equal to no other node's.
   */
  digest(): string;
  stats(): StoreStats;

  /** Called after each local commit with what it raised. Returns an unsubscribe function. */
  onCommit(listener: (delta: Delta) => void): () => void;
  /** Called after any commit (local or merge) that changed page totals (a reset lowers them to 0). */
  onChange(listener: (changed: readonly PageCount[], origin: 'local' | 'merge') => void): () => void;

  /** Commits what is queued, then closes. Idempotent. */
  close(): Promise<void>;
}
