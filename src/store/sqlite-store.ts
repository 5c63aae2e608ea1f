/**
 * The real store: one replica's G-Counter in a SQLite file (better-sqlite3, WAL). Increments are
 * group-committed (one transaction and one seq per turn of the event loop); merges from peers
 * run in one transaction per call (the caller bounds their size); reads are synchronous lookups.
 *
 * Around it: the file and its pragmas in sqlite-connection.ts, the SQL in sqlite-statements.ts,
 * the rules it shares with its twin in src/crdt, replica-rules.ts and series-rules.ts. What stays
 * here is one class on purpose: its methods share the interning cache, the digest sum and the
 * identity, and the orders that keep them true (the digest moves only after a commit, the cache
 * is rebuilt after a rollback, the database before the identity file) are checked in one place.
 * It is about 1,100 lines (it was ~370 when this reason was first written): spread commits over
 * loop turns, the background digest recount, write health (blocked writes) and the series calls
 * came since, and each adds to the same shared state; the spread commit and the recount's driving
 * are the parts that could still move out behind a narrow view of that state.
 */
import Database from 'better-sqlite3';
import { advance, type SeqRange, type VersionVector } from '../crdt/version-vector.js';
import { epochOf, MAX_TOTAL, saturatingTotal, slotEffect, supersedes, valueOf, type Slot } from '../crdt/g-counter.js';
import { addToDigest, formatDigest, pageEpochDigestTerm, parseDigest, SlotKeyCache, slotDigestTerm } from '../crdt/digest.js';
import { resetSlot } from '../crdt/reset.js';
import { dayOf, expired, hourlyCutoff, hourOf } from '../crdt/series.js';
import { AppError, isAppError } from '../errors.js';
import { cryptoRandom, type PageName, type RandomBytes, type ReplicaId } from '../ids.js';
import type { LatencyProbe } from '../latency-probe.js';
import { runSteps, type Steps } from '../steps.js';
import { noLog, type Log } from '../log.js';
import { GroupCommit, planFlushSteps, unitCounts, type FlushMode, type FlushPlan, type PendingUnit } from './group-commit.js';
import { DigestRecount, RECOUNT_SLICE_ROWS } from './digest-recount.js';
import { decideIdentity, diskIdentityFile, identityFilePath, type DatabaseIdentity, type IdentityFile } from './identity.js';
import { checkResetPages, mintedIdentity, mintReplicaId, openedIdentity, ownSeqProblem, SLOT_KEY_CACHE_ENTRIES } from './replica-rules.js';
import { BUSY_TIMEOUT_MS } from './migrate.js';
import { databaseBytes, openConnection, readPragmas, type ConnectionOptions, type ConnectionPragmas } from './sqlite-connection.js';
import { PageSlotCache } from './page-slot-cache.js';
import { prepareStatements, type Statements } from './sqlite-statements.js';
import type { IdentityInfo, Increment, MergeResult, PageCount, PageReset, SeriesPoint, SeriesRange, SlotCursor, Store, StoreStats, TopRange } from './store.js';
import { SeriesTables } from './sqlite-series.js';
import { DEFAULT_HOURLY_RETENTION_DAYS, mergeByCursorOrder, SERIES_PRUNE_INTERVAL_MS, visitorSteps, type CommitVisitors } from './series-rules.js';
import { StoreEvents, type ChangeListener, type CommitListener } from './store-events.js';
import {
  blockError,
  databaseGoneBlock,
  DISK_HEADROOM_BYTES,
  diskFullBlock,
  fileIdentity,
  freeBytes,
  isDiskFull,
  WRITE_HEALTH_INTERVAL_MS,
  type FileIdentity,
  type WriteBlock,
} from './write-health.js';

export interface SqliteStoreOptions extends ConnectionOptions {
  readonly random?: RandomBytes;
  readonly log?: Log;
  /** How often `checkWrites()` runs by itself (default WRITE_HEALTH_INTERVAL_MS; 0: only when called). */
  readonly writeHealthIntervalMs?: number;
  /** Increments waiting for a commit at most (default DEFAULT_MAX_QUEUED_INCREMENTS); past it `overloaded`. */
  readonly maxQueuedIncrements?: number;
  /** See GroupCommitOptions.atOnceAfterIdleMs (node.ts: AT_ONCE_AFTER_IDLE_MS); undefined: always the next turn. */
  readonly commitAtOnceAfterIdleMs?: number;
  /** Stamps `queued`, `committed` and `merged` of sampled pages (bench diagnostics); undefined: off. */
  readonly probe?: LatencyProbe;
  /**
   * When the database does not hold the digest sum (an unclean stop within DIGEST_STORE_DELAY_MS
   * of a commit, a restore, a first open after migration 0003): `at-open` (default) scans every
   * slot before the store opens; `background` opens at once and recounts it in slices while the
   * store serves (digest-recount.ts; the node's choice, so a start does not grow with pages).
   */
  readonly digestRecount?: 'at-open' | 'background';
  /** The clock of the buckets (default Date.now). */
  readonly now?: () => number;
  /** Days hour buckets are kept (default DEFAULT_HOURLY_RETENTION_DAYS). */
  readonly hourlyRetentionDays?: number;
  /**
   * False: local views raise no buckets and no sketch (the bench's "analytics off" side; merged
   * series slots from peers are still kept). Default true.
   */
  readonly analytics?: boolean;
  /** How often hour buckets past the retention are pruned by themselves (default SERIES_PRUNE_INTERVAL_MS; 0: only when called). */
  readonly pruneIntervalMs?: number;
}

/**
 * Increments above which a group commit is spread over several loop turns (SqliteStore.spreadFlush):
 * below it one synchronous transaction is short already (a new page with analytics costs 67–114 µs,
 * so 64 of them some 4–7 ms).
 */
export const SPREAD_ABOVE_INCREMENTS = 64;
/** A spread commit works this long, then lets the loop turn (requests, frames, timers) before its next slice. */
export const SPREAD_SLICE_MS = 4;
/** Pages (or page reads) between two looks at the clock in a spread commit. */
const SPREAD_CLOCK_EVERY = 16;

/** What one local commit hands from its transaction to what follows the commit. */
interface LocalCommit {
  readonly plan: FlushPlan;
  readonly raised: Slot[];
  readonly digestChange: bigint;
}

/** What every page of one local commit shares (SqliteStore.localContext). */
interface LocalContext {
  readonly self: number;
  readonly replica: ReplicaId;
  readonly now: { readonly hour: number; readonly day: number };
  readonly visitors: CommitVisitors | undefined;
}

/** A digest recount running in the background (SqliteStore.recount). */
interface BackgroundRecount {
  readonly job: DigestRecount;
  readonly started: number;
  next: NodeJS.Immediate | undefined;
  readonly done: Promise<void>;
  resolve: () => void;
}

/** Statements to read with: the writer's own, or while a spread commit is open a read-only connection's. */
interface ReadSide {
  readonly s: Statements;
  readonly t: SeriesTables;
}

/** How long after a commit the digest sum is written to the database (see `digestChanged`). */
export const DIGEST_STORE_DELAY_MS = 1_000;

export async function openSqliteStore(options: SqliteStoreOptions): Promise<SqliteStore> {
  const db = openConnection(options, options.log ?? noLog);
  try {
    return new SqliteStore(db, options, diskIdentityFile(identityFilePath(options.path)));
  } catch (error) {
    db.close();
    throw error;
  }
}

export class SqliteStore implements Store {
  private readonly statements: Statements;
  private readonly random: RandomBytes;
  private readonly log: Log;
  private readonly groupCommit: GroupCommit;
  private readonly events: StoreEvents;
  /** replica id → interned integer; reloaded from the database after a failed transaction. */
  private interned = new Map<ReplicaId, number>();
  /** This replica's interned id; -1 while the identity of this start is not committed yet. */
  private self = -1;
  private seq: number;
  private currentIdentity: IdentityInfo;
  /**
   * The digest sum of every slot (see crdt/digest.ts), kept up to date so digest() reads no slot.
   * Invariant: equals `digestSum` over the slots committed in the database. Each transaction
   * collects its change and adds it only after the commit (a rollback leaves it untouched). The
   * database's copy (store_stats.digest) is NULL or equal to it: a commit's slot triggers clear
   * it, `storeDigest` writes it again within DIGEST_STORE_DELAY_MS, and close() before the end.
   */
  private digestSum: bigint;
  private readonly slotKeys = new SlotKeyCache(SLOT_KEY_CACHE_ENTRIES);
  /** Recently read pages' slots, updated after each commit (see page-slot-cache.ts), emptied after a rollback. */
  private readonly slotCache = new PageSlotCache();
  /**
   * Version-vector entries read or written, by interned id: a merge reads its replica's entry
   * without a SELECT. Written in the transaction that writes the row, emptied when one fails.
   */
  private vvCache = new Map<number, number>();
  private accepting = true;
  private open = true;
  private closing: Promise<void> | undefined;
  /** Why writes are refused now (a full disk, the file gone), or undefined. See write-health.ts. */
  private blocked: WriteBlock | undefined;
  /**
   * True until this start's identity (epoch, maybe a new id) is committed and the identity file
   * written: on a full disk at open that waits for space, and no stop record is written meanwhile
   * (the file keeps what led to this start's decision, so the next start decides the same).
   */
  private identityPending = true;
  /** Whether the database holds `digestSum` (migration 0003), or the next commit must store it. */
  private digestStored: boolean;
  /** The file opened, to notice it deleted or replaced under the running node. */
  private readonly openedFile: FileIdentity | undefined;
  private readonly healthTimer: NodeJS.Timeout | undefined;
  /** `BEGIN IMMEDIATE … COMMIT` around a body; built once (better-sqlite3 builds five wrappers per `db.transaction()`). */
  private readonly immediate: (body: () => unknown) => unknown;
  /** Set while commits since the digest was last stored are not in the database's digest row yet. */
  private digestTimer: NodeJS.Timeout | undefined;
  /**
   * While the digest sum is recounted in the background: `digestSum` then holds only the changes
   * committed since the recount's snapshot, and is neither shown nor stored until it ends.
   */
  private recount: BackgroundRecount | undefined;
  private readonly pruneTimer: NodeJS.Timeout | undefined;
  private readonly tables: SeriesTables;
  private readonly now: () => number;
  private readonly retentionDays: number;
  private readonly analytics: boolean;
  /** What reads use when no spread commit is open: the writer's statements. */
  private readonly ownSide: ReadSide;
  /**
   * A read-only connection of its own (opened with the store, so on the file the writer has open,
   * not on whatever is at the path by the first spread; undefined when it cannot be opened, as
   * for ':memory:': then no commit is spread): while a spread commit is open the
   * writer's connection sees that commit's rows before COMMIT, so every read goes here instead,
   * to the last committed state (WAL snapshot isolation). Nothing uncommitted is ever read.
   */
  private readonly reader: (ReadSide & { readonly db: Database.Database }) | undefined;
  /** The spread commit open now (see spreadFlush), resolved when it committed or rolled back. */
  private spread: { readonly done: Promise<void>; readonly resolve: () => void } | undefined;

  /** Use `openSqliteStore`: it sets the pragmas and migrates first. */
  constructor(
    private readonly db: Database.Database,
    private readonly options: SqliteStoreOptions,
    private readonly identityFile: IdentityFile,
  ) {
    this.random = options.random ?? cryptoRandom;
    this.log = options.log ?? noLog;
    this.events = new StoreEvents(this.log);
    this.statements = prepareStatements(db);
    this.immediate = db.transaction((body: () => unknown) => body()).immediate;
    this.tables = new SeriesTables(db, this.slotKeys);
    this.ownSide = { s: this.statements, t: this.tables };
    this.now = options.now ?? Date.now;
    this.retentionDays = options.hourlyRetentionDays ?? DEFAULT_HOURLY_RETENTION_DAYS;
    this.analytics = options.analytics ?? true;
    this.reloadInterned();
    this.groupCommit = new GroupCommit((units, mode) => this.flush(units, mode), {
      maxQueuedIncrements: options.maxQueuedIncrements,
      ...(options.commitAtOnceAfterIdleMs !== undefined ? { atOnceAfterIdleMs: options.commitAtOnceAfterIdleMs } : {}),
    });
    this.openedFile = fileIdentity(options.path);

    const row = this.statements.identity.get();
    const stored: DatabaseIdentity | undefined = row === undefined ? undefined : { replicaId: row.replicaId, epoch: row.epoch, localSeq: row.seq };
    const decision = decideIdentity(stored, identityFile.read());
    // Decided, and a new id drawn, before anything is written: a start whose commit fails on a
    // full disk keeps this identity and commits it once space returns, drawing no other.
    this.currentIdentity = openedIdentity(decision, stored?.replicaId, () => this.mintReplicaId());
    this.seq = this.currentIdentity.outcome === 'kept' ? (stored?.localSeq ?? 0) : 0;
    // Read from the database (migration 0003); when unknown, scanned now or recounted in the
    // background (its snapshot taken here, before this store commits anything).
    const known = this.knownDigestSum();
    const job = known === undefined && options.digestRecount === 'background' ? this.startRecount() : undefined;
    if (job !== undefined) {
      this.digestSum = 0n;
      let resolve = (): void => undefined;
      const done = new Promise<void>((r) => (resolve = r));
      this.recount = { job, started: performance.now(), next: undefined, done, resolve };
      this.log.info({ path: options.path }, 'digest sum not stored (a new database, an unclean stop or a restore): recounting it in the background while serving');
    } else {
      this.digestSum = known ?? this.scanDigestSum();
    }
    this.digestStored = known !== undefined;
    try {
      this.commitIdentity();
    } catch (error) {
      if (!isDiskFull(error)) throw error;
      // Serve reads; writes wait for space (checkWrites). No crash, so no restart loop.
      this.block(diskFullBlock(options.path), error);
    }
    this.reader = this.openReader();
    const identity = this.currentIdentity;
    const level = identity.outcome === 'minted' ? 'warn' : 'info';
    this.log[level]({ path: options.path, ...identity, ...(this.identityPending ? { pending: 'disk full' } : {}) }, `store opened: replica id ${identity.outcome}`);
    const interval = options.writeHealthIntervalMs ?? WRITE_HEALTH_INTERVAL_MS;
    if (interval > 0) {
      this.healthTimer = setInterval(() => this.checkWrites(), interval);
      this.healthTimer.unref();
    }
    if (this.recount !== undefined) this.recountSlice();
    const pruneInterval = options.pruneIntervalMs ?? SERIES_PRUNE_INTERVAL_MS;
    if (pruneInterval > 0) {
      this.pruneTimer = setInterval(() => this.pruneQuietly(), pruneInterval);
      this.pruneTimer.unref();
    }
  }

  private pruneQuietly(): void {
    try {
      this.pruneSeries();
    } catch (error) {
      this.log.warn({ err: error }, 'pruning hour buckets failed');
    }
  }

  pruneSeries(): number {
    this.assertOpen();
    // While a spread commit holds the writer, the next prune tick does it.
    if (this.blocked !== undefined || this.spread !== undefined) return 0;
    const removed = this.transaction(() => this.tables.pruneHours(this.hourCutoff()));
    if (removed > 0) this.log.info({ removed }, 'hour buckets past the retention pruned');
    return removed;
  }

  /** The first hour bucket kept now. */
  private hourCutoff(): number {
    return hourlyCutoff(this.now(), this.retentionDays);
  }

  series(range: SeriesRange): SeriesPoint[] {
    this.assertOpen();
    return this.reads().t.points(range);
  }

  top(range: TopRange): PageCount[] {
    this.assertOpen();
    return this.reads().t.top(range);
  }

  /**
   * While a spread commit is open: a promise resolved once it committed or rolled back, and no
   * other write (merge, reset, rotateIdentity) may run before (they throw `store_busy`). Undefined
   * when writes can go ahead now. Reads never wait: they see the last commit.
   */
  writesHeld(): Promise<void> | undefined {
    return this.spread?.done;
  }

  /** The statements reads use now (see `reader`). */
  private reads(): ReadSide {
    return this.spread === undefined ? this.ownSide : (this.reader ?? this.ownSide);
  }

  /** The read-only connection, opened once at open; undefined (logged once) when it cannot be opened: then no commit is spread. */
  private openReader(): (ReadSide & { readonly db: Database.Database }) | undefined {
    let db: Database.Database | undefined;
    try {
      db = new Database(this.options.path, { readonly: true, fileMustExist: true });
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      return { db, s: prepareStatements(db), t: new SeriesTables(db, this.slotKeys) };
    } catch (error) {
      db?.close();
      this.log.warn({ err: error }, 'cannot open a read-only connection: large commits are not spread over loop turns');
      return undefined;
    }
  }

  /** One slice of the background recount; the next in a later loop turn, until it ends. */
  private recountSlice(): void {
    const recount = this.recount;
    if (recount === undefined) return;
    recount.next = undefined;
    let done: boolean;
    try {
      done = recount.job.step(RECOUNT_SLICE_ROWS);
    } catch (error) {
      // The running sum holds only the changes since the snapshot: scan now rather than show it.
      this.log.error({ err: error }, 'recounting the digest sum in the background failed: scanning every slot now');
      this.scanAfterFailedRecount(recount);
      return;
    }
    if (!done) {
      recount.next = setImmediate(() => this.recountSlice());
      recount.next.unref();
      return;
    }
    // The snapshot's sum plus every change committed since: the sum of the slots now.
    this.digestSum = addToDigest(recount.job.snapshotSum, this.digestSum);
    this.endRecount();
    this.digestStored = true;
    this.log.info({ path: this.options.path, rows: recount.job.rows, ms: Math.round(performance.now() - recount.started) }, 'digest sum recounted in the background and stored');
    this.storeDigest();
  }

  /**
   * The fallback of a failed recount: every slot scanned on the writer's connection. Not while a
   * spread commit is open: the writer would see that commit's rows before its COMMIT, and the
   * commit then adds its change to the sum once more (a wrong digest, stored for good). So it
   * waits for the commit to end; until then the recount stays on and digest() says so.
   */
  private scanAfterFailedRecount(recount: BackgroundRecount): void {
    if (this.recount !== recount || !this.open) return;
    const held = this.writesHeld();
    if (held !== undefined) {
      void held.then(() => this.scanAfterFailedRecount(recount));
      return;
    }
    this.endRecount();
    this.digestSum = this.scanDigestSum();
    this.digestStored = true;
    this.storeDigest();
  }

  /** The background recount's connection and snapshot, or undefined (logged) when it cannot be had: then the caller scans. */
  private startRecount(): DigestRecount | undefined {
    try {
      return new DigestRecount(this.options.path);
    } catch (error) {
      this.log.warn({ err: error }, 'cannot recount the digest sum in the background: scanning every slot at open');
      return undefined;
    }
  }

  private endRecount(): void {
    const recount = this.recount;
    if (recount === undefined) return;
    this.recount = undefined;
    if (recount.next !== undefined) clearImmediate(recount.next);
    recount.job.close();
    recount.resolve();
  }

  /**
   * Resolves once the digest sum is known (at once unless a background recount runs, or the store
   * closed first). For tests and tools that need digest() to be the digest.
   */
  digestKnown(): Promise<void> {
    return this.recount?.done ?? Promise.resolve();
  }

  /**
   * This start's identity into the database, then the identity file (see identity.ts for why this
   * order). Re-runnable: after a failure on a full disk, checkWrites() runs it again as it is.
   */
  private commitIdentity(): void {
    const identity = this.currentIdentity;
    const s = this.statements;
    this.transaction(() => {
      s.setMeta.run(this.intern(identity.replicaId), identity.epoch);
      if (!this.digestStored && s.storedStats.get() === undefined) s.recountStats.run();
      if (!this.digestStored && this.recount === undefined) s.setDigest.run(formatDigest(this.digestSum));
    });
    if (!this.digestStored && this.recount === undefined) {
      this.log.info({ path: this.options.path }, 'digest sum scanned from every slot and stored');
      this.digestStored = true;
    }
    // Running: no stop record until close() writes one (a crash from here on mints next time).
    this.identityFile.write({ replicaId: identity.replicaId, epoch: identity.epoch });
    this.self = this.intern(identity.replicaId);
    this.identityPending = false;
  }

  get replicaId(): ReplicaId {
    return this.currentIdentity.replicaId;
  }

  get identity(): IdentityInfo {
    return this.currentIdentity;
  }

  increment(increments: readonly Increment[]): Promise<PageCount[]> {
    if (!this.accepting) return Promise.reject(new AppError('shutting_down', 'the store is closing'));
    if (this.blocked !== undefined) return Promise.reject(blockError(this.blocked));
    this.options.probe?.markAll('queued', increments);
    return this.groupCommit.enqueue(increments);
  }

  writeBlocked(): WriteBlock | undefined {
    return this.blocked;
  }

  /**
   * The write-health tick (every `writeHealthIntervalMs`; tests call it): checks that the file at
   * the path is still the one open, and while the disk is full tries one write once the
   * filesystem reports room, lifting the block when it goes through. Returns what still blocks.
   */
  checkWrites(): WriteBlock | undefined {
    if (!this.open) return this.blocked;
    const gone = this.openedFile === undefined ? undefined : databaseGoneBlock(this.options.path, this.openedFile);
    if (gone !== undefined) {
      this.block(gone);
      return this.blocked;
    }
    if (this.blocked?.code === 'database_gone') this.unblock('the database file at the path is the open one again');
    if (this.blocked === undefined && !this.identityPending) return undefined;
    if (freeBytes(this.options.path) < DISK_HEADROOM_BYTES) {
      this.block(diskFullBlock(this.options.path));
      return this.blocked;
    }
    // A spread commit holds the writer (the probe would throw store_busy): the next tick probes.
    if (this.spread !== undefined) return this.blocked;
    try {
      if (this.identityPending) this.commitIdentity();
      else this.transaction(() => this.statements.touchStats.run());
    } catch (error) {
      if (!isDiskFull(error)) this.log.warn({ err: error }, 'probe write failed');
      return this.blocked;
    }
    this.unblock('the disk has room again');
    return undefined;
  }

  /** Writes refused from now on, logged once per reason. */
  private block(block: WriteBlock, error?: unknown): void {
    if (this.blocked?.code === block.code) return;
    this.blocked = block;
    this.log.error({ err: error, path: this.options.path, code: block.code }, block.reason);
  }

  private unblock(why: string): void {
    if (this.blocked === undefined) return;
    this.log.warn({ path: this.options.path, was: this.blocked.code }, `writes accepted again: ${why}`);
    this.blocked = undefined;
  }

  private assertWritable(): void {
    if (this.blocked !== undefined) throw blockError(this.blocked);
  }

  count(page: PageName): number {
    this.assertOpen();
    return this.reads().s.total.get(page) ?? 0;
  }

  listPages(options: { after?: PageName; limit: number; withResets?: boolean }): PageCount[] {
    this.assertOpen();
    const s = this.reads().s;
    const limit = Math.max(0, Math.floor(options.limit));
    if (options.withResets === true) return options.after === undefined ? s.allPagesFirst.all(limit) : s.allPagesAfter.all(options.after, limit);
    if (options.after === undefined) return s.pagesFirst.all(limit);
    return s.pagesAfter.all(options.after, limit);
  }

  pageSlots(page: PageName): Slot[] {
    this.assertOpen();
    const held = this.slotCache.get(page);
    if (held !== undefined) return held;
    const slots = this.reads().s.pageSlots.all(page).map((row) => ({ page: row.page, replica: row.replica, ...valueOf(row) }));
    this.slotCache.fill(page, slots);
    return slots;
  }

  localSeq(): number {
    return this.seq;
  }

  versionVector(): VersionVector {
    this.assertOpen();
    const vv = new Map<ReplicaId, number>();
    for (const { replicaId, seq } of this.reads().s.versionVector.iterate()) vv.set(replicaId, seq);
    return vv;
  }

  vectorEntry(replica: ReplicaId): number {
    this.assertOpen();
    const id = this.interned.get(replica);
    return id === undefined ? 0 : (this.reads().s.vvEntry.get(id) ?? 0);
  }

  highestSlotSeqs(): VersionVector {
    this.assertOpen();
    const out = new Map<ReplicaId, number>();
    const { s, t } = this.reads();
    for (const [replica, id] of this.interned) {
      // Series slots share the seqs of totals, but one can arrive without its total (a lost chunk).
      const seq = Math.max(s.highestSeq.get(id)?.seq ?? 0, t.highestSeq(id));
      if (seq > 0) out.set(replica, seq);
    }
    return out;
  }

  slotsAfter(replica: ReplicaId, cursor: SlotCursor, limit: number): Slot[] {
    this.assertOpen();
    const id = this.interned.get(replica);
    if (id === undefined) return [];
    const { s, t } = this.reads();
    const rows = cursor.page === undefined ? s.slotsAfterSeq.all(id, cursor.seq, limit) : s.slotsAfterPage.all(id, cursor.seq, cursor.page, limit);
    const totals: Slot[] = rows.map((row) => ({ page: row.page, replica, ...valueOf(row) }));
    // A cursor past a page's total (kind > 0) has passed it: the total comes first at (seq, page).
    const series: Slot[] = t.after(id, cursor, limit).map((row) => ({ page: row.page, replica, ...valueOf(row), kind: row.kind, t: row.t }));
    return mergeByCursorOrder(totals, series, limit);
  }

  merge(slots: readonly Slot[], ranges: readonly SeqRange[]): MergeResult {
    this.assertOpen();
    this.assertWritable();
    const result = this.transaction(() => {
      const { changed, digestChange, written, replaced } = this.applyInTransaction(slots);
      this.tables.finish();

      // Advance the vv only now that every slot of this call is in (the caller guarantees the
      // rest of each range was merged earlier).
      const vv = new Map<ReplicaId, number>();
      const advanced: SeqRange[] = [];
      for (const range of ranges) {
        const replica = this.intern(range.replica);
        if (!vv.has(range.replica)) vv.set(range.replica, this.vvEntry(replica));
        if (advance(vv, range)) advanced.push(range);
      }
      for (const range of advanced) this.setVv(this.intern(range.replica), range.upTo);

      // In the same transaction: a merge proving this database went back in time mints.
      const wentBack = ownSeqProblem(this.replicaId, this.seq, slots, ranges);
      const identityChanged = wentBack === undefined ? undefined : this.mintInTransaction(wentBack);
      return { changed, advanced, identityChanged, digestChange, written, replaced };
    });
    this.slotsCommitted(result.written, result.replaced);
    this.digestSum = addToDigest(this.digestSum, result.digestChange);
    if (slots.length > 0) this.digestChanged();
    this.options.probe?.markAll('merged', result.changed);
    if (result.identityChanged !== undefined) this.adoptIdentity(result.identityChanged);
    if (result.changed.length > 0) this.events.emitChange(result.changed, 'merge');
    const { changed, advanced, identityChanged } = result;
    return identityChanged === undefined ? { changed, advanced } : { changed, advanced, identityChanged };
  }

  reset(pages: readonly PageName[]): PageReset[] {
    this.assertOpen();
    if (!this.accepting) throw new AppError('shutting_down', 'the store is closing');
    this.assertWritable();
    const unique = checkResetPages(pages);
    if (unique.length === 0) return [];
    const replica = this.replicaId;
    const seq = this.seq + 1;
    const result = this.transaction(() => {
      const tombstones = unique.map((page) => resetSlot(page, replica, seq, this.statements.pageHead.get(page)?.epoch ?? 0));
      const applied = this.applyInTransaction(tombstones);
      this.tables.finish();
      this.setVv(this.self, seq);
      return { tombstones, ...applied };
    });
    this.seq = seq;
    this.slotsCommitted(result.written, result.replaced);
    this.digestSum = addToDigest(this.digestSum, result.digestChange);
    this.digestChanged();
    this.events.emitCommit({ range: { replica, after: seq - 1, upTo: seq }, slots: result.tombstones });
    if (result.changed.length > 0) this.events.emitChange(result.changed, 'local');
    const epochs = new Map(result.tombstones.map((slot) => [slot.page, epochOf(slot)]));
    return pages.map((page) => ({ page, epoch: epochs.get(page) ?? 0 }));
  }

  /**
   * Inside a transaction: max-merges `slots` with the reset rule (slotEffect, supersedes), keeping
   * each page's total and epoch in its row. Returns the pages whose total changed, the digest
   * change, the slots written and the pages whose slots a reset replaced, for after the commit.
   */
  private applyInTransaction(slots: readonly Slot[]): { changed: PageCount[]; digestChange: bigint; written: Slot[]; replaced: PageName[] } {
    const s = this.statements;
    // `recount`: the running total may have passed MAX_TOTAL, where it is no longer exact; the
    // page's total is then summed again from its rows once its slots are in (rare: near 2^53 only).
    const heads = new Map<PageName, { total: number; epoch: number; exists: boolean; before: number; recount: boolean }>();
    const cutoff = this.hourCutoff();
    let digestChange = 0n;
    const written: Slot[] = [];
    const replaced: PageName[] = [];
    const applyTotal = (slot: Slot, head: { total: number; epoch: number; exists: boolean; recount: boolean }): void => {
      const epoch = epochOf(slot);
      const effect = slotEffect(epoch, head.epoch, head.exists);
      if (effect === 'drop') return;
      const replica = this.intern(slot.replica);
      if (effect === 'reset') {
        for (const row of s.pageSlotRows.all(slot.page)) digestChange -= slotDigestTerm(slot.page, row.replicaId, row.count, row.epoch);
        s.deletePageSlots.run(slot.page);
        replaced.push(slot.page);
        head.total = 0;
      }
      if (head.epoch !== epoch) {
        digestChange += pageEpochDigestTerm(slot.page, epoch) - pageEpochDigestTerm(slot.page, head.epoch);
        // The page's series slots of older epochs go with its totals (series.ts).
        digestChange += this.tables.dropBelow(slot.page, epoch);
      }
      head.epoch = epoch;
      head.exists = true;
      const current = effect === 'reset' ? undefined : s.slot.get(slot.page, replica);
      if (!supersedes(slot, current)) return;
      s.setSlot.run(slot.page, replica, slot.count, slot.seq, epoch);
      written.push({ page: slot.page, replica: slot.replica, ...valueOf(slot) });
      digestChange += this.slotKeys.slotChange(slot.page, slot.replica, current, slot);
      // A total at MAX_TOTAL may be a saturated one (more than it shows): recount it too.
      if (head.total >= MAX_TOTAL || head.total + slot.count - (current?.count ?? 0) > MAX_TOTAL) head.recount = true;
      head.total += slot.count - (current?.count ?? 0);
    };
    for (const slot of slots) {
      let head = heads.get(slot.page);
      if (head === undefined) {
        const row = s.pageHead.get(slot.page);
        head = row === undefined ? { total: 0, epoch: 0, exists: false, before: 0, recount: false } : { ...row, exists: true, before: row.total, recount: false };
        heads.set(slot.page, head);
      }
      if (slot.kind === undefined) {
        applyTotal(slot, head);
        continue;
      }
      if (expired(slot, cutoff)) continue;
      const epoch = epochOf(slot);
      if (head.exists && epoch < head.epoch) continue;
      // A newer epoch than the page holds: the replica's total slot there is at least (0, seq).
      if (epoch > head.epoch) applyTotal({ page: slot.page, replica: slot.replica, count: 0, seq: slot.seq, epoch }, head);
      digestChange += this.tables.merge(slot, this.intern(slot.replica));
    }
    const changed: PageCount[] = [];
    for (const [page, head] of heads) {
      if (!head.exists) continue;
      if (head.recount) head.total = saturatingTotal(s.pageSlotRows.all(page).map((row) => row.count));
      s.setPageHead.run(page, head.total, head.epoch);
      if (head.total !== head.before) changed.push({ page, count: head.total });
    }
    return { changed, digestChange, written, replaced };
  }

  /** After a commit: the slot cache follows what it wrote (pages a reset replaced are dropped, not patched). */
  private slotsCommitted(written: readonly Slot[], replaced: readonly PageName[]): void {
    for (const page of replaced) this.slotCache.dropPage(page);
    for (const slot of written) this.slotCache.written(slot);
  }

  rotateIdentity(reason: string): IdentityInfo {
    this.assertOpen();
    this.assertWritable();
    const identity = this.transaction(() => this.mintInTransaction(reason));
    this.adoptIdentity(identity);
    return identity;
  }

  /**
   * The digest; while a background recount runs, `recounting:<replica id>` instead (never equal
   * to another node's digest, so nobody takes the two for converged: the digest is not known).
   */
  digest(): string {
    this.assertOpen();
    if (this.recount !== undefined) return `recounting:${this.currentIdentity.replicaId}`;
    return formatDigest(this.digestSum);
  }

  /** One row read (the counts the triggers of migration 0003 keep) and two stat calls: no count(*). */
  stats(): StoreStats {
    this.assertOpen();
    const row = this.reads().s.storedStats.get();
    return { pages: row?.pages ?? 0, slots: row?.slots ?? 0, replicas: row?.replicas ?? 0, bytes: databaseBytes(this.options.path) };
  }

  onCommit(listener: CommitListener): () => void {
    return this.events.onCommit(listener);
  }

  onChange(listener: ChangeListener): () => void {
    return this.events.onChange(listener);
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /** The connection's pragmas, for diagnostics and tests. */
  pragmas(): ConnectionPragmas {
    this.assertOpen();
    return readPragmas(this.db);
  }

  /**
   * Test hook: stops as a killed process would. Queued increments are dropped (rejected with
   * `shutting_down`), committed ones stay; nothing else runs (no clean-stop record, so the next
   * open mints a new id).
   */
  kill(): void {
    if (!this.open) return;
    clearInterval(this.healthTimer);
    clearTimeout(this.digestTimer);
    this.endRecount();
    clearInterval(this.pruneTimer);
    this.accepting = false;
    this.groupCommit.drop(new AppError('shutting_down', 'the store was killed'));
    this.open = false;
    this.closing ??= Promise.resolve();
    // A spread commit still open is rolled back with the connection (as a killed process's is).
    // The reader first: the last connection to close checkpoints the WAL, and a read-only one cannot.
    this.reader?.db.close();
    this.db.close();
  }

  private async shutdown(): Promise<void> {
    clearInterval(this.healthTimer);
    clearInterval(this.pruneTimer);
    this.accepting = false;
    if (!this.open) return;
    // A spread commit ends first (committed or rolled back); what queued meanwhile commits now.
    await this.groupCommit.idle();
    if (!this.open) return;
    this.groupCommit.flushNow();
    clearTimeout(this.digestTimer);
    if (this.recount !== undefined) this.log.info({ path: this.options.path }, 'closing before the digest recount ended: the next start recounts');
    this.endRecount();
    if (this.digestTimer !== undefined) this.storeDigest();
    this.open = false;
    // No stop record for an identity never committed, nor for a file deleted or replaced under
    // us: what is at the path does not hold the commits made since (the next start mints).
    if (!this.identityPending && this.blocked?.code !== 'database_gone') this.writeStopRecord();
    // The reader first: SQLite checkpoints and removes the WAL when the last connection closes,
    // and only the writer can (recover.ts counts on a clean stop leaving no -wal behind).
    this.reader?.db.close();
    this.db.close();
    this.log.info({ path: this.options.path }, 'store closed');
  }

  /**
   * A commit changed the digest sum. It is stored later, off the commit path: writing it in every
   * transaction dirtied one more page of six (store_stats) for every commit and merge, measured
   * as ~15 µs of each ~100 µs transaction (issue 19). Until it is stored the database's row is
   * NULL (the slot triggers clear it in the commit itself), so a crash before then costs one
   * scan of the slots at the next open, never a wrong digest.
   */
  private digestChanged(): void {
    if (this.digestTimer !== undefined) return;
    this.digestTimer = setTimeout(() => this.storeDigest(), DIGEST_STORE_DELAY_MS);
    this.digestTimer.unref();
  }

  /** Writes `digestSum` to the database's row (a failure leaves it NULL: the next open scans). */
  private storeDigest(): void {
    this.digestTimer = undefined;
    // During a recount the running sum is only the changes since its snapshot: nothing to store.
    if (!this.open || this.blocked !== undefined || !this.digestStored) return;
    // A spread commit holds the writer: try again a moment later.
    if (this.spread !== undefined) {
      this.digestChanged();
      return;
    }
    try {
      this.transaction(() => this.statements.setDigest.run(formatDigest(this.digestSum)));
    } catch (error) {
      if (!isAppError(error)) this.log.warn({ err: error }, 'storing the digest sum failed: the next open scans the slots');
    }
  }

  /**
   * At a clean stop, after the last commit and before the database closes: the stop record that
   * lets the next start keep the id (see identity.ts). If it cannot be written the next start
   * mints, which is safe, so closing goes on.
   */
  private writeStopRecord(): void {
    try {
      const stoppedAtSeq = this.statements.vvEntry.get(this.self) ?? 0;
      this.identityFile.write({ replicaId: this.replicaId, epoch: this.currentIdentity.epoch, stoppedAtSeq });
    } catch (error) {
      this.log.error({ err: error }, 'writing the clean-stop record failed: the next start will mint a new replica id');
    }
  }

  /**
   * One group commit: every accepted unit of `units` under one new seq, in one transaction. A
   * large one (`spread` mode, more than SPREAD_ABOVE_INCREMENTS increments) is spread over loop
   * turns (spreadFlush) and returns a promise; else it commits before returning.
   */
  private flush(units: PendingUnit[], mode: FlushMode): void | Promise<void> {
    if (!this.open || this.blocked !== undefined) {
      const error = this.blocked !== undefined ? blockError(this.blocked) : new AppError('shutting_down', 'the store is closed');
      for (const unit of units) unit.reject(error);
      return;
    }
    if (mode === 'spread') {
      let increments = 0;
      for (const unit of units) increments += unit.increments.length;
      if (increments > SPREAD_ABOVE_INCREMENTS && this.reader !== undefined) return this.spreadFlush(units);
    }
    const seq = this.seq + 1;
    let outcome: LocalCommit;
    try {
      outcome = this.transaction(() => runSteps(this.commitSteps(units, seq)));
    } catch (error) {
      this.flushFailed(units, error);
      return;
    }
    this.localCommitted(outcome, seq);
  }

  /**
   * A large group commit as one transaction spread over loop turns: `BEGIN IMMEDIATE` by hand,
   * then the commit's steps (commitSteps) in slices of SPREAD_SLICE_MS, each followed by a turn
   * of the event loop, then `COMMIT`, and only then the answers, the digest, the caches and the
   * delta and change events, as for any commit. One maximal batch of new pages (~1 s of CPU with
   * analytics on) held the loop in one piece; now requests, peers' frames and timers run every
   * few ms. While it is open (`spread`): reads go to the read-only connection (the last commit:
   * nothing of this one is visible before COMMIT, and nothing at all after a rollback), other
   * writes wait for `writesHeld()` (group commit does not start another flush; a write that did
   * not wait throws `store_busy`), and no delta or change leaves before COMMIT.
   */
  private async spreadFlush(units: PendingUnit[]): Promise<void> {
    const seq = this.seq + 1;
    let resolve = (): void => undefined;
    const done = new Promise<void>((r) => (resolve = r));
    let outcome: LocalCommit;
    try {
      this.db.exec('BEGIN IMMEDIATE');
    } catch (error) {
      this.flushFailed(units, error);
      return;
    }
    this.spread = { done, resolve };
    try {
      const steps = this.commitSteps(units, seq);
      let sliceStarted = performance.now();
      for (let step = 1; ; step++) {
        const next = steps.next();
        if (next.done === true) {
          outcome = next.value;
          break;
        }
        if (step % SPREAD_CLOCK_EVERY !== 0 || performance.now() - sliceStarted < SPREAD_SLICE_MS) continue;
        await new Promise<void>((r) => setImmediate(r));
        // Killed (or closed by force) meanwhile: the connection is gone and so is the transaction.
        if (!this.open) throw new AppError('shutting_down', 'the store was closed during a commit');
        sliceStarted = performance.now();
      }
      this.db.exec('COMMIT');
    } catch (error) {
      this.spread = undefined;
      try {
        this.rolledBack();
      } finally {
        // Even when the cleanup throws: the units get their answer and whoever waits goes on.
        resolve();
        this.flushFailed(units, isDiskFull(error) ? this.diskFullError(error) : error);
      }
      return;
    }
    this.spread = undefined;
    resolve();
    this.localCommitted(outcome, seq);
  }

  /**
   * One local commit inside its transaction, in steps (src/steps.ts) of one page or one write
   * each: every page's head read once, the plan (pure work on the heads: no other writer
   * meanwhile), every page written with its series, the series tables finished, then the vector
   * entry. `flush` drains them in one piece; `spreadFlush` lets the loop turn between slices.
   */
  private *commitSteps(units: readonly PendingUnit[], seq: number): Steps<LocalCommit> {
    const s = this.statements;
    const heads = new Map<PageName, { total: number; epoch: number }>();
    for (const unit of units) {
      for (const { page } of unit.increments) {
        // Not even a string (a Store API caller's `true` or `{}`): not read, since it would not
        // bind and the throw would roll back every unit; the plan refuses its unit alone
        // (bad_page_name). Any string binds, so the full name check stays the plan's alone.
        if (heads.has(page) || typeof page !== 'string') continue;
        this.pageHeadOf(s, heads, page);
        yield;
      }
    }
    const plan = yield* planFlushSteps(units, (page) => heads.get(page)?.total ?? 0);
    const raised: Slot[] = [];
    let digestChange = 0n;
    if (plan.pages.size === 0) return { plan, raised, digestChange };
    const local = yield* this.localContext(plan);
    for (const [page, { by, total }] of plan.pages) {
      digestChange += this.writeLocal(local, page, by, total, heads.get(page)?.epoch ?? 0, seq, raised);
      yield;
    }
    yield* this.tables.finishSteps();
    this.setVv(this.self, seq);
    return { plan, raised, digestChange };
  }

  /** A page's total and epoch as the transaction sees them, read once into `heads`. */
  private pageHeadOf(s: Statements, heads: Map<PageName, { total: number; epoch: number }>, page: PageName): { total: number; epoch: number } {
    let head = heads.get(page);
    if (head === undefined) {
      const row = s.pageHead.get(page);
      head = { total: row?.total ?? 0, epoch: row?.epoch ?? 0 };
      heads.set(page, head);
    }
    return head;
  }

  /** What every page of one local commit shares (the visitors gathered in steps: one per increment). */
  private *localContext(plan: FlushPlan): Steps<LocalContext> {
    const time = this.now();
    return {
      self: this.self,
      replica: this.replicaId,
      now: { hour: hourOf(time), day: dayOf(time) },
      visitors: this.analytics ? yield* visitorSteps(plan.accepted) : undefined,
    };
  }

  /** Inside the commit's transaction: one page raised by `by` to `total`; returns the digest change. */
  private writeLocal(local: LocalContext, page: PageName, by: number, total: number, epoch: number, seq: number, raised: Slot[]): bigint {
    const s = this.statements;
    const { self, replica } = local;
    const count = s.addToSlot.get(page, self, by, seq, epoch) ?? by;
    s.setPageHead.run(page, total, epoch);
    raised.push({ page, replica, ...valueOf({ count, seq, epoch }) });
    // Within the page's epoch the own slot only rises (the SQL applies incrementedSlot of
    // src/crdt/reset.ts): the change is `by` at that epoch's key.
    let digestChange = BigInt(by) * this.slotKeys.key(page, replica, epoch);
    // The page's buckets and sketch under the same seq, right behind its total (series.ts).
    if (this.analytics) digestChange += this.tables.addLocal(page, replica, self, epoch, seq, by, local.now, local.visitors?.get(page), raised);
    return digestChange;
  }

  private flushFailed(units: readonly PendingUnit[], error: unknown): void {
    const failure = isAppError(error) ? error : new AppError('internal', 'committing increments failed', { cause: error });
    this.log.error({ err: error, units: units.length }, 'group commit failed');
    for (const unit of units) unit.reject(failure);
  }

  /** After a local commit: caches, digest, events, then the answers. */
  private localCommitted(outcome: LocalCommit, seq: number): void {
    const { plan, raised } = outcome;
    for (const slot of raised) this.slotCache.written(slot);
    this.options.probe?.markAll('committed', raised);
    this.digestSum = addToDigest(this.digestSum, outcome.digestChange);
    if (raised.length > 0) this.digestChanged();
    for (const { unit, error } of plan.rejected) unit.reject(error);
    if (raised.length > 0) {
      this.seq = seq;
      this.events.emitCommit({ range: { replica: this.replicaId, after: seq - 1, upTo: seq }, slots: raised });
      this.events.emitChange(
        raised.filter((slot) => slot.kind === undefined).map(({ page }) => ({ page, count: plan.pages.get(page)?.total ?? 0 })),
        'local',
      );
    }
    for (const unit of plan.accepted) unit.resolve(unitCounts(unit, plan.pages));
  }

  /**
   * The digest sum the database stores (one row), or undefined when it is not known: the first
   * open after migration 0003, or a slot written by something other than this store. Then the
   * caller scans every slot (0.6–0.8 s at 300,000 slots, most of it hashing) and stores the sum.
   */
  private knownDigestSum(): bigint | undefined {
    const stored = this.statements.storedStats.get()?.digest;
    return stored === null || stored === undefined ? undefined : parseDigest(stored);
  }

  /** The digest sum from every slot, from scratch. */
  private scanDigestSum(): bigint {
    let sum = 0n;
    for (const [page, replica, count, epoch] of this.statements.countedSlots.iterate()) sum += slotDigestTerm(page, replica, count, epoch);
    for (const [page, epoch] of this.statements.resetPages.iterate()) sum += pageEpochDigestTerm(page, epoch);
    sum += this.tables.scanDigestTerms();
    return addToDigest(0n, sum);
  }

  /**
   * Runs `body` in an IMMEDIATE transaction; after a failure the interning cache is rebuilt. A
   * full disk blocks writes from here on and is thrown as AppError `disk_full` (503).
   */
  private transaction<T>(body: () => T): T {
    if (this.spread !== undefined) throw new AppError('store_busy', 'a large commit is being written: wait for writesHeld() and retry');
    try {
      return this.immediate(body) as T;
    } catch (error) {
      this.rolledBack();
      if (isDiskFull(error)) throw this.diskFullError(error);
      throw error;
    }
  }

  /** After a failed transaction (rolled back): the caches that may hold its writes are emptied. */
  private rolledBack(): void {
    if (this.db.open && this.db.inTransaction) this.db.exec('ROLLBACK');
    this.slotCache.clear();
    this.vvCache = new Map();
    this.tables.abandon();
    if (this.db.open) this.reloadInterned();
  }

  /** A full disk: writes blocked from now on, and the AppError `disk_full` to throw. */
  private diskFullError(error: unknown): AppError {
    const block = diskFullBlock(this.options.path);
    this.block(block, error);
    return new AppError(block.code, block.reason, { cause: error });
  }

  /** The version-vector entry of an interned replica (0: nothing complete). */
  private vvEntry(id: number): number {
    let seq = this.vvCache.get(id);
    if (seq === undefined) {
      seq = this.statements.vvEntry.get(id) ?? 0;
      this.vvCache.set(id, seq);
    }
    return seq;
  }

  /** Inside a transaction: the entry's row, then the cache (a rollback empties the cache). */
  private setVv(id: number, seq: number): void {
    this.statements.setVv.run(seq, id);
    this.vvCache.set(id, seq);
  }

  private reloadInterned(): void {
    this.interned = new Map(this.statements.replicas.all().map((row) => [row.replicaId, row.id]));
  }

  private intern(replica: ReplicaId): number {
    let id = this.interned.get(replica);
    if (id === undefined) {
      id = this.statements.intern.get(replica)?.id;
      if (id === undefined) throw new AppError('internal', `interning replica ${replica} returned no id`);
      this.interned.set(replica, id);
    }
    return id;
  }

  /** A replica id this database has never seen (every id it has seen is interned). */
  private mintReplicaId(): ReplicaId {
    return mintReplicaId(this.random, (id) => this.interned.has(id));
  }

  /** Inside a transaction: switches the database to a new replica id (same epoch). */
  private mintInTransaction(reason: string): IdentityInfo {
    const identity = mintedIdentity(this.currentIdentity, this.mintReplicaId(), reason);
    this.statements.setMeta.run(this.intern(identity.replicaId), identity.epoch);
    return identity;
  }

  /** After the mint committed: the file follows the database, then memory follows. */
  private adoptIdentity(identity: IdentityInfo): void {
    this.self = this.intern(identity.replicaId);
    this.seq = 0;
    this.currentIdentity = identity;
    try {
      this.identityFile.write({ replicaId: identity.replicaId, epoch: identity.epoch });
    } catch (error) {
      // Safe to go on: at the next start the file's other id mints once more.
      this.log.error({ err: error }, 'writing the identity file failed');
    }
    this.log.warn({ ...identity }, 'replica id minted');
  }

  private assertOpen(): void {
    if (!this.open) throw new AppError('shutting_down', 'the store is closed');
  }
}
