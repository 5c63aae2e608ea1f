/**
 * The real store: one replica's G-Counter in a SQLite file (better-sqlite3, WAL). Increments are
 * group-committed (one transaction and one seq per turn of the event loop); merges from peers
 * run in one transaction per call (the caller bounds their size); reads are synchronous lookups.
 *
 * Around it: the file and its pragmas in sqlite-connection.ts, the SQL in sqlite-statements.ts,
 * the rules it shares with its twin in src/crdt and replica-rules.ts. What stays here (about 370
 * lines) is one class on purpose: its methods share the interning cache, the digest sum and the
 * identity, and the orders that keep them true (the digest moves only after a commit, the cache
 * is rebuilt after a rollback, the database before the identity file) are checked in one place.
 */
import type Database from 'better-sqlite3';
import { advance, type SeqRange, type VersionVector } from '../crdt/version-vector.js';
import { addToDigest, epochOf, formatDigest, MAX_TOTAL, saturatingTotal, pageEpochDigestTerm, parseDigest, SlotKeyCache, slotDigestTerm, slotEffect, supersedes, valueOf, type Slot } from '../crdt/g-counter.js';
import { resetSlot } from '../crdt/reset.js';
import { dayOf, expired, hourlyCutoff, hourOf } from '../crdt/series.js';
import { AppError, isAppError } from '../errors.js';
import { cryptoRandom, type PageName, type RandomBytes, type ReplicaId } from '../ids.js';
import type { LatencyProbe } from '../latency-probe.js';
import { noLog, type Log } from '../log.js';
import { GroupCommit, planFlush, unitCounts, type PendingUnit } from './group-commit.js';
import { decideIdentity, diskIdentityFile, identityFilePath, type DatabaseIdentity, type IdentityFile } from './identity.js';
import { checkResetPages, mintedIdentity, mintReplicaId, openedIdentity, ownSeqProblem, SLOT_KEY_CACHE_ENTRIES } from './replica-rules.js';
import { databaseBytes, openConnection, readPragmas, type ConnectionOptions, type ConnectionPragmas } from './sqlite-connection.js';
import { prepareStatements, type Statements } from './sqlite-statements.js';
import type { IdentityInfo, Increment, MergeResult, PageCount, PageReset, SeriesPoint, SeriesRange, SlotCursor, Store, StoreStats, TopRange } from './store.js';
import { mergeByCursorOrder, SeriesTables } from './sqlite-series.js';
import { DEFAULT_HOURLY_RETENTION_DAYS, SERIES_PRUNE_INTERVAL_MS, visitorsByPage } from './series-rules.js';
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
   * The digest sum of every slot (see g-counter.ts), kept up to date so digest() reads no slot.
   * Invariant: equals `digestSum` over the slots committed in the database. Each transaction
   * collects its change and adds it only after the commit (a rollback leaves it untouched). The
   * database's copy (store_stats.digest) is NULL or equal to it: a commit's slot triggers clear
   * it, `storeDigest` writes it again within DIGEST_STORE_DELAY_MS, and close() before the end.
   */
  private digestSum: bigint;
  private readonly slotKeys = new SlotKeyCache(SLOT_KEY_CACHE_ENTRIES);
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
  private readonly pruneTimer: NodeJS.Timeout | undefined;
  private readonly tables: SeriesTables;
  private readonly now: () => number;
  private readonly retentionDays: number;
  private readonly analytics: boolean;

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
    this.now = options.now ?? Date.now;
    this.retentionDays = options.hourlyRetentionDays ?? DEFAULT_HOURLY_RETENTION_DAYS;
    this.analytics = options.analytics ?? true;
    this.reloadInterned();
    this.groupCommit = new GroupCommit((units) => this.flush(units), {
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
    // Read from the database (migration 0003); scanned only when unknown, stored by the commit.
    const known = this.knownDigestSum();
    this.digestSum = known ?? this.scanDigestSum();
    this.digestStored = known !== undefined;
    try {
      this.commitIdentity();
    } catch (error) {
      if (!isDiskFull(error)) throw error;
      // Serve reads; writes wait for space (checkWrites). No crash, so no restart loop.
      this.block(diskFullBlock(options.path), error);
    }
    const identity = this.currentIdentity;
    const level = identity.outcome === 'minted' ? 'warn' : 'info';
    this.log[level]({ path: options.path, ...identity, ...(this.identityPending ? { pending: 'disk full' } : {}) }, `store opened: replica id ${identity.outcome}`);
    const interval = options.writeHealthIntervalMs ?? WRITE_HEALTH_INTERVAL_MS;
    if (interval > 0) {
      this.healthTimer = setInterval(() => this.checkWrites(), interval);
      this.healthTimer.unref();
    }
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
    if (this.blocked !== undefined) return 0;
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
    return this.tables.points(range);
  }

  top(range: TopRange): PageCount[] {
    this.assertOpen();
    return this.tables.top(range);
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
      if (!this.digestStored) {
        if (s.storedStats.get() === undefined) s.recountStats.run();
        s.setDigest.run(formatDigest(this.digestSum));
      }
    });
    if (!this.digestStored) this.log.info({ path: this.options.path }, 'digest sum scanned from every slot and stored');
    this.digestStored = true;
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
    return this.statements.total.get(page) ?? 0;
  }

  listPages(options: { after?: PageName; limit: number; withResets?: boolean }): PageCount[] {
    this.assertOpen();
    const s = this.statements;
    const limit = Math.max(0, Math.floor(options.limit));
    if (options.withResets === true) return options.after === undefined ? s.allPagesFirst.all(limit) : s.allPagesAfter.all(options.after, limit);
    if (options.after === undefined) return s.pagesFirst.all(limit);
    return s.pagesAfter.all(options.after, limit);
  }

  pageSlots(page: PageName): Slot[] {
    this.assertOpen();
    return this.statements.pageSlots.all(page).map((row) => ({ page: row.page, replica: row.replica, ...valueOf(row) }));
  }

  localSeq(): number {
    return this.seq;
  }

  versionVector(): VersionVector {
    this.assertOpen();
    const vv = new Map<ReplicaId, number>();
    for (const { replicaId, seq } of this.statements.versionVector.iterate()) vv.set(replicaId, seq);
    return vv;
  }

  highestSlotSeqs(): VersionVector {
    this.assertOpen();
    const out = new Map<ReplicaId, number>();
    for (const [replica, id] of this.interned) {
      // Series slots share the seqs of totals, but one can arrive without its total (a lost chunk).
      const seq = Math.max(this.statements.highestSeq.get(id)?.seq ?? 0, this.tables.highestSeq(id));
      if (seq > 0) out.set(replica, seq);
    }
    return out;
  }

  slotsAfter(replica: ReplicaId, cursor: SlotCursor, limit: number): Slot[] {
    this.assertOpen();
    const id = this.interned.get(replica);
    if (id === undefined) return [];
    const rows =
      cursor.page === undefined
        ? this.statements.slotsAfterSeq.all(id, cursor.seq, limit)
        : this.statements.slotsAfterPage.all(id, cursor.seq, cursor.page, limit);
    const totals: Slot[] = rows.map((row) => ({ page: row.page, replica, ...valueOf(row) }));
    // A cursor past a page's total (kind > 0) has passed it: the total comes first at (seq, page).
    const series: Slot[] = this.tables.after(id, cursor, limit).map((row) => ({ page: row.page, replica, ...valueOf(row), kind: row.kind, t: row.t }));
    return mergeByCursorOrder(totals, series, limit);
  }

  merge(slots: readonly Slot[], ranges: readonly SeqRange[]): MergeResult {
    this.assertOpen();
    this.assertWritable();
    const s = this.statements;
    const result = this.transaction(() => {
      const { changed, digestChange } = this.applyInTransaction(slots);
      this.tables.finish();

      // Advance the vv only now that every slot of this call is in (the caller guarantees the
      // rest of each range was merged earlier).
      const vv = new Map<ReplicaId, number>();
      const advanced: SeqRange[] = [];
      for (const range of ranges) {
        const replica = this.intern(range.replica);
        if (!vv.has(range.replica)) vv.set(range.replica, s.vvEntry.get(replica) ?? 0);
        if (advance(vv, range)) advanced.push(range);
      }
      for (const range of advanced) s.setVv.run(range.upTo, this.intern(range.replica));

      // In the same transaction: a merge proving this database went back in time mints.
      const wentBack = ownSeqProblem(this.replicaId, this.seq, slots, ranges);
      const identityChanged = wentBack === undefined ? undefined : this.mintInTransaction(wentBack);
      return { changed, advanced, identityChanged, digestChange };
    });
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
      this.statements.setVv.run(seq, this.self);
      return { tombstones, ...applied };
    });
    this.seq = seq;
    this.digestSum = addToDigest(this.digestSum, result.digestChange);
    this.digestChanged();
    this.events.emitCommit({ range: { replica, after: seq - 1, upTo: seq }, slots: result.tombstones });
    if (result.changed.length > 0) this.events.emitChange(result.changed, 'local');
    const epochs = new Map(result.tombstones.map((slot) => [slot.page, epochOf(slot)]));
    return pages.map((page) => ({ page, epoch: epochs.get(page) ?? 0 }));
  }

  /**
   * Inside a transaction: max-merges `slots` with the reset rule (slotEffect, supersedes), keeping
   * each page's total and epoch in its row. Returns the pages whose total changed and the digest
   * change, to add once the transaction commits.
   */
  private applyInTransaction(slots: readonly Slot[]): { changed: PageCount[]; digestChange: bigint } {
    const s = this.statements;
    // `recount`: the running total may have passed MAX_TOTAL, where it is no longer exact; the
    // page's total is then summed again from its rows once its slots are in (rare: near 2^53 only).
    const heads = new Map<PageName, { total: number; epoch: number; exists: boolean; before: number; recount: boolean }>();
    const cutoff = this.hourCutoff();
    let digestChange = 0n;
    const applyTotal = (slot: Slot, head: { total: number; epoch: number; exists: boolean; recount: boolean }): void => {
      const epoch = epochOf(slot);
      const effect = slotEffect(epoch, head.epoch, head.exists);
      if (effect === 'drop') return;
      const replica = this.intern(slot.replica);
      if (effect === 'reset') {
        for (const row of s.pageSlotRows.all(slot.page)) digestChange -= slotDigestTerm(slot.page, row.replicaId, row.count, row.epoch);
        s.deletePageSlots.run(slot.page);
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
    return { changed, digestChange };
  }

  rotateIdentity(reason: string): IdentityInfo {
    this.assertOpen();
    this.assertWritable();
    const identity = this.transaction(() => this.mintInTransaction(reason));
    this.adoptIdentity(identity);
    return identity;
  }

  digest(): string {
    this.assertOpen();
    return formatDigest(this.digestSum);
  }

  /** One row read (the counts the triggers of migration 0003 keep) and two stat calls: no count(*). */
  stats(): StoreStats {
    this.assertOpen();
    const row = this.statements.storedStats.get();
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
    clearInterval(this.pruneTimer);
    this.accepting = false;
    this.groupCommit.drop(new AppError('shutting_down', 'the store was killed'));
    this.open = false;
    this.closing ??= Promise.resolve();
    this.db.close();
  }

  private async shutdown(): Promise<void> {
    clearInterval(this.healthTimer);
    clearInterval(this.pruneTimer);
    this.accepting = false;
    if (!this.open) return;
    this.groupCommit.flushNow();
    clearTimeout(this.digestTimer);
    if (this.digestTimer !== undefined) this.storeDigest();
    this.open = false;
    // No stop record for an identity never committed, nor for a file deleted or replaced under
    // us: what is at the path does not hold the commits made since (the next start mints).
    if (!this.identityPending && this.blocked?.code !== 'database_gone') this.writeStopRecord();
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
    if (!this.open || this.blocked !== undefined) return;
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

  /** One group commit: every accepted unit of `units` under one new seq, in one transaction. */
  private flush(units: PendingUnit[]): void {
    if (!this.open || this.blocked !== undefined) {
      const error = this.blocked !== undefined ? blockError(this.blocked) : new AppError('shutting_down', 'the store is closed');
      for (const unit of units) unit.reject(error);
      return;
    }
    const s = this.statements;
    const self = this.self;
    const seq = this.seq + 1;
    let outcome: { plan: ReturnType<typeof planFlush>; raised: Slot[]; digestChange: bigint };
    try {
      outcome = this.transaction(() => {
        // planFlush asks for a page's total up to twice: one SELECT each is enough.
        const totals = new Map<PageName, number>();
        const epochs = new Map<PageName, number>();
        const plan = planFlush(units, (page) => {
          let total = totals.get(page);
          if (total === undefined) {
            const head = s.pageHead.get(page);
            total = head?.total ?? 0;
            totals.set(page, total);
            epochs.set(page, head?.epoch ?? 0);
          }
          return total;
        });
        const raised: Slot[] = [];
        let digestChange = 0n;
        if (plan.pages.size === 0) return { plan, raised, digestChange };
        const replica = this.replicaId;
        const time = this.now();
        const now = { hour: hourOf(time), day: dayOf(time) };
        const visitors = this.analytics ? visitorsByPage(plan.accepted) : undefined;
        for (const [page, { by, total }] of plan.pages) {
          const epoch = epochs.get(page) ?? 0;
          const count = s.addToSlot.get(page, self, by, seq, epoch) ?? by;
          s.setPageHead.run(page, total, epoch);
          raised.push({ page, replica, ...valueOf({ count, seq, epoch }) });
          // Within the page's epoch the own slot only rises (the SQL applies incrementedSlot of
          // src/crdt/reset.ts): the change is `by` at that epoch's key.
          digestChange += BigInt(by) * this.slotKeys.key(page, replica, epoch);
          // The page's buckets and sketch under the same seq, right behind its total (series.ts).
          if (this.analytics) digestChange += this.tables.addLocal(page, replica, self, epoch, seq, by, now, visitors?.get(page), raised);
        }
        this.tables.finish();
        s.setVv.run(seq, self);
        return { plan, raised, digestChange };
      });
    } catch (error) {
      const failure = isAppError(error) ? error : new AppError('internal', 'committing increments failed', { cause: error });
      this.log.error({ err: error, units: units.length }, 'group commit failed');
      for (const unit of units) unit.reject(failure);
      return;
    }
    const { plan, raised } = outcome;
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
    try {
      return this.immediate(body) as T;
    } catch (error) {
      this.tables.abandon();
      if (this.db.open) this.reloadInterned();
      if (isDiskFull(error)) {
        const block = diskFullBlock(this.options.path);
        this.block(block, error);
        throw new AppError(block.code, block.reason, { cause: error });
      }
      throw error;
    }
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
