/**
 * The store's in-memory twin, built on the pure CRDT of src/crdt (the oracle). Same interface,
 * same group commit and identity rules as SqliteStore, passes the same contract suite, and is
 * what the replication layer's property tests run on: deterministic (inject `random`), fast, no
 * I/O. Its `MemoryDisk` (memory-disk.ts) stands for the database file and the identity file. A
 * crash is dropping the store without close() (or `kill()`): the file keeps its running record.
 * The rules it shares with SqliteStore live in src/crdt (slots, vv) and replica-rules.ts. A bit
 * over 300 lines as one class: it mirrors SqliteStore method for method, which is what makes the
 * two easy to hold side by side.
 */
import { allSlots, applySlots, epochOf, pageEpoch, pageTotal, valueOf, type Slot, type SlotValue } from '../crdt/g-counter.js';
import { addToDigest, formatDigest, pageEpochDigestTerm, SlotKeyCache, stateDigestSum } from '../crdt/digest.js';
import { incrementedSlot, resetSlot } from '../crdt/reset.js';
import { dayOf, expired, hourlyCutoff, hourOf } from '../crdt/series.js';
import { advance, type SeqRange, type VersionVector } from '../crdt/version-vector.js';
import { AppError } from '../errors.js';
import { cryptoRandom, type PageName, type RandomBytes, type ReplicaId } from '../ids.js';
import { noLog, type Log } from '../log.js';
import { compareUtf8 } from '../utf8.js';
import { GroupCommit, planFlush, unitCounts, type PendingUnit } from './group-commit.js';
import { decideIdentity, type IdentityFile } from './identity.js';
import { MEMORY_SCHEMA_VERSION, MemoryDisk, type MemoryDatabase } from './memory-disk.js';
import { checkResetPages, mintedIdentity, mintReplicaId, openedIdentity, ownSeqProblem, SLOT_KEY_CACHE_ENTRIES } from './replica-rules.js';
import type { IdentityInfo, Increment, MergeResult, PageCount, PageReset, SeriesPoint, SeriesRange, SlotCursor, Store, StoreStats, TopRange } from './store.js';
import { MemorySeries } from './memory-series.js';
import { DEFAULT_HOURLY_RETENTION_DAYS, mergeByCursorOrder, visitorsByPage } from './series-rules.js';
import { StoreEvents, type ChangeListener, type CommitListener } from './store-events.js';

// The disk is part of the twin's interface: tests build one, crash stores on it and reopen.
export { MemoryDisk, type MemoryDatabaseSnapshot } from './memory-disk.js';

export interface MemoryStoreOptions {
  readonly random?: RandomBytes;
  readonly log?: Log;
  /** The clock of the buckets (default Date.now). */
  readonly now?: () => number;
  readonly hourlyRetentionDays?: number;
  /** False: local views raise no buckets and no sketch. Default true. */
  readonly analytics?: boolean;
}

export async function openMemoryStore(disk: MemoryDisk = new MemoryDisk(), options: MemoryStoreOptions = {}): Promise<MemoryStore> {
  return MemoryStore.open(disk, options);
}

export class MemoryStore implements Store {
  private readonly random: RandomBytes;
  private readonly log: Log;
  private readonly db: MemoryDatabase;
  private readonly groupCommit: GroupCommit;
  private readonly events: StoreEvents;
  /** Derived from `db.state`, rebuilt at open: page totals and each replica's slots. */
  private readonly totals = new Map<PageName, number>();
  private readonly byReplica = new Map<ReplicaId, Map<PageName, SlotValue>>();
  /** Page names in UTF-8 order; undefined when a new page invalidated it. */
  private sortedPages: PageName[] | undefined;
  /**
   * The digest sum of `db.state` (see crdt/digest.ts), kept up to date so digest() reads no slot.
   * Changed together with the state: the twin has no transaction to roll back.
   */
  private digestSum: bigint;
  private readonly slotKeys = new SlotKeyCache(SLOT_KEY_CACHE_ENTRIES);
  private currentIdentity: IdentityInfo;
  private readonly seriesSlots: MemorySeries;
  private readonly now: () => number;
  private readonly retentionDays: number;
  private readonly analytics: boolean;
  private accepting = true;
  private open = true;
  private closing: Promise<void> | undefined;

  /** Opens synchronously (property tests open many); refuses a database newer than the code. */
  static open(disk: MemoryDisk, options: MemoryStoreOptions = {}): MemoryStore {
    if (disk.database.schemaVersion > MEMORY_SCHEMA_VERSION) {
      throw new AppError(
        'database_too_new',
        `the database has schema version ${disk.database.schemaVersion}, newer than this code's newest migration ${MEMORY_SCHEMA_VERSION}: run a newer version of distributed-sqlite`,
      );
    }
    disk.database.schemaVersion = MEMORY_SCHEMA_VERSION;
    return new MemoryStore(disk, options);
  }

  private constructor(
    private readonly disk: MemoryDisk,
    options: MemoryStoreOptions,
  ) {
    this.random = options.random ?? cryptoRandom;
    this.log = options.log ?? noLog;
    this.events = new StoreEvents(this.log);
    this.db = disk.database;
    for (const slot of allSlots(this.db.state)) this.index(slot.page, slot.replica, slot);
    this.now = options.now ?? Date.now;
    this.retentionDays = options.hourlyRetentionDays ?? DEFAULT_HOURLY_RETENTION_DAYS;
    this.analytics = options.analytics ?? true;
    this.seriesSlots = new MemorySeries(this.db.series, this.slotKeys);
    this.digestSum = addToDigest(stateDigestSum(this.db.state), this.seriesSlots.digestTerms());
    for (const page of this.db.state.keys()) {
      const total = pageTotal(this.db.state, page);
      // Like the SQLite store's pages table: a page exists once something raised its total.
      if (total > 0) this.totals.set(page, total);
    }
    this.groupCommit = new GroupCommit((units) => this.flush(units));

    const stored = this.db.identity;
    const decision = decideIdentity(
      stored === undefined ? undefined : { ...stored, localSeq: this.db.vv.get(stored.replicaId) ?? 0 },
      this.identityFile().read(),
    );
    const identity = openedIdentity(decision, stored?.replicaId, () => this.mintReplicaId());
    this.db.replicas.add(identity.replicaId);
    // Database first, then the file, running: no stop record until close() (see identity.ts).
    this.db.identity = { replicaId: identity.replicaId, epoch: identity.epoch };
    this.identityFile().write(this.db.identity);
    this.currentIdentity = identity;
    this.log[identity.outcome === 'minted' ? 'warn' : 'info']({ ...identity }, `store opened: replica id ${identity.outcome}`);
  }

  get replicaId(): ReplicaId {
    return this.currentIdentity.replicaId;
  }

  get identity(): IdentityInfo {
    return this.currentIdentity;
  }

  increment(increments: readonly Increment[]): Promise<PageCount[]> {
    if (!this.accepting) return Promise.reject(new AppError('shutting_down', 'the store is closing'));
    return this.groupCommit.enqueue(increments);
  }

  count(page: PageName): number {
    this.assertOpen();
    return this.totals.get(page) ?? 0;
  }

  listPages(options: { after?: PageName; limit: number; withResets?: boolean }): PageCount[] {
    this.assertOpen();
    // With resets: every page holding a slot (a reset page holds its tombstone), sorted per call.
    const pages = options.withResets === true ? [...this.db.state.keys()].filter((page) => (this.db.state.get(page)?.size ?? 0) > 0).sort(compareUtf8) : (this.sortedPages ??= [...this.totals.keys()].sort(compareUtf8));
    const after = options.after;
    let start = 0;
    if (after !== undefined) {
      // First page strictly after `after` (binary search).
      let high = pages.length;
      while (start < high) {
        const middle = (start + high) >>> 1;
        if (compareUtf8(pages[middle] as PageName, after) <= 0) start = middle + 1;
        else high = middle;
      }
    }
    const limit = Math.max(0, Math.floor(options.limit));
    return pages.slice(start, start + limit).map((page) => ({ page, count: this.totals.get(page) ?? 0 }));
  }

  pageSlots(page: PageName): Slot[] {
    this.assertOpen();
    const slots = this.db.state.get(page);
    if (slots === undefined) return [];
    return [...slots]
      .map(([replica, value]) => ({ page, replica, ...valueOf(value) }))
      .sort((x, y) => compareUtf8(x.replica, y.replica));
  }

  localSeq(): number {
    return this.db.vv.get(this.replicaId) ?? 0;
  }

  versionVector(): VersionVector {
    this.assertOpen();
    return new Map(this.db.vv);
  }

  vectorEntry(replica: ReplicaId): number {
    this.assertOpen();
    return this.db.vv.get(replica) ?? 0;
  }

  highestSlotSeqs(): VersionVector {
    this.assertOpen();
    const out = new Map<ReplicaId, number>();
    for (const [replica, slots] of this.byReplica) {
      let highest = 0;
      for (const value of slots.values()) if (value.seq > highest) highest = value.seq;
      if (highest > 0) out.set(replica, highest);
    }
    // Series slots share the seqs of totals, but one can arrive without its total (a lost chunk).
    for (const replica of this.seriesSlots.replicas()) {
      const highest = this.seriesSlots.highestSeq(replica);
      if (highest > (out.get(replica) ?? 0)) out.set(replica, highest);
    }
    return out;
  }

  slotsAfter(replica: ReplicaId, cursor: SlotCursor, limit: number): Slot[] {
    this.assertOpen();
    const slots = this.byReplica.get(replica);
    if (slots === undefined) return [];
    const out: Slot[] = [];
    for (const [page, value] of slots) {
      const after =
        value.seq > cursor.seq || (cursor.page !== undefined && value.seq === cursor.seq && compareUtf8(page, cursor.page) > 0);
      if (after) out.push({ page, replica, ...valueOf(value) });
    }
    out.sort((x, y) => x.seq - y.seq || compareUtf8(x.page, y.page));
    return mergeByCursorOrder(out.slice(0, Math.max(0, Math.floor(limit))), this.seriesSlots.after(replica, cursor, limit), limit);
  }

  series(range: SeriesRange): SeriesPoint[] {
    this.assertOpen();
    return this.seriesSlots.points(range);
  }

  top(range: TopRange): PageCount[] {
    this.assertOpen();
    return this.seriesSlots.top(range, (page) => this.totals.get(page));
  }

  pruneSeries(): number {
    this.assertOpen();
    return this.seriesSlots.prune(hourlyCutoff(this.now(), this.retentionDays));
  }

  merge(slots: readonly Slot[], ranges: readonly SeqRange[]): MergeResult {
    this.assertOpen();
    const own = this.replicaId;
    const ownSeq = this.localSeq();
    for (const slot of slots) this.db.replicas.add(slot.replica);
    const changed = this.applyAll(slots);
    const advanced: SeqRange[] = [];
    for (const range of ranges) {
      this.db.replicas.add(range.replica);
      if (advance(this.db.vv, range)) advanced.push(range);
    }
    const wentBack = ownSeqProblem(own, ownSeq, slots, ranges);
    const identityChanged = wentBack === undefined ? undefined : this.mint(wentBack);
    if (changed.length > 0) this.events.emitChange(changed, 'merge');
    return identityChanged === undefined ? { changed, advanced } : { changed, advanced, identityChanged };
  }

  reset(pages: readonly PageName[]): PageReset[] {
    this.assertOpen();
    if (!this.accepting) throw new AppError('shutting_down', 'the store is closing');
    const unique = checkResetPages(pages);
    if (unique.length === 0) return [];
    const replica = this.replicaId;
    const seq = this.localSeq() + 1;
    const tombstones = unique.map((page) => resetSlot(page, replica, seq, pageEpoch(this.db.state, page)));
    const changed = this.applyAll(tombstones);
    this.db.vv.set(replica, seq);
    this.events.emitCommit({ range: { replica, after: seq - 1, upTo: seq }, slots: tombstones });
    if (changed.length > 0) this.events.emitChange(changed, 'local');
    const epochs = new Map(tombstones.map((slot) => [slot.page, slot.epoch ?? 0]));
    return pages.map((page) => ({ page, epoch: epochs.get(page) ?? 0 }));
  }

  /**
   * Applies slots one at a time with the pure rule (applySlots), keeping the index, the totals and
   * the digest in step with each page's slots before and after. Returns the pages whose total
   * changed, with the new totals.
   */
  private applyAll(slots: readonly Slot[]): PageCount[] {
    const before = new Map<PageName, number>();
    const cutoff = hourlyCutoff(this.now(), this.retentionDays);
    let digestChange = 0n;
    const applyTotal = (slot: Slot): void => {
      const old = new Map(this.db.state.get(slot.page) ?? []);
      const oldEpoch = pageEpoch(this.db.state, slot.page);
      const hadSlots = old.size > 0;
      applySlots(this.db.state, [slot]);
      const now = this.db.state.get(slot.page) ?? new Map<ReplicaId, SlotValue>();
      for (const [replica, value] of old) {
        if (!now.has(replica)) {
          this.unindex(slot.page, replica);
          digestChange += this.slotKeys.slotChange(slot.page, replica, value, undefined);
        }
      }
      for (const [replica, value] of now) {
        const previous = old.get(replica);
        if (previous === value) continue;
        this.index(slot.page, replica, value);
        digestChange += this.slotKeys.slotChange(slot.page, replica, previous, value);
      }
      const newEpoch = pageEpoch(this.db.state, slot.page);
      if (newEpoch !== oldEpoch) digestChange += pageEpochDigestTerm(slot.page, newEpoch) - pageEpochDigestTerm(slot.page, oldEpoch);
      // The page's series slots of older epochs go with its totals (series.ts).
      if (newEpoch > oldEpoch || (!hadSlots && now.size > 0)) digestChange += this.seriesSlots.dropBelow(slot.page, newEpoch);
      this.setTotal(slot.page, pageTotal(this.db.state, slot.page));
    };
    for (const slot of slots) {
      if (!before.has(slot.page)) before.set(slot.page, this.totals.get(slot.page) ?? 0);
      if (slot.kind === undefined) {
        applyTotal(slot);
        continue;
      }
      if (expired(slot, cutoff)) continue;
      const epoch = epochOf(slot);
      const hasSlots = (this.db.state.get(slot.page)?.size ?? 0) > 0;
      const current = pageEpoch(this.db.state, slot.page);
      if (hasSlots && epoch < current) continue;
      // A newer epoch than the page holds: the replica's total slot there is at least (0, seq).
      if (epoch > current) applyTotal({ page: slot.page, replica: slot.replica, count: 0, seq: slot.seq, epoch });
      digestChange += this.seriesSlots.merge(slot);
    }
    this.digestSum = addToDigest(this.digestSum, digestChange);
    const changed: PageCount[] = [];
    for (const [page, total] of before) {
      const count = this.totals.get(page) ?? 0;
      if (count !== total) changed.push({ page, count });
    }
    return changed;
  }

  rotateIdentity(reason: string): IdentityInfo {
    this.assertOpen();
    return this.mint(reason);
  }

  digest(): string {
    this.assertOpen();
    return formatDigest(this.digestSum);
  }

  /** The twin's disk never fills and its file is never replaced. */
  writeBlocked(): undefined {
    return undefined;
  }

  stats(): StoreStats {
    this.assertOpen();
    let slots = 0;
    for (const page of this.db.state.values()) slots += page.size;
    return { pages: this.totals.size, slots, replicas: this.db.replicas.size, bytes: 0 };
  }

  onCommit(listener: CommitListener): () => void {
    return this.events.onCommit(listener);
  }

  onChange(listener: ChangeListener): () => void {
    return this.events.onChange(listener);
  }

  close(): Promise<void> {
    if (this.closing === undefined) {
      this.accepting = false;
      if (this.open) {
        this.groupCommit.flushNow();
        // The clean-stop record, after the last commit (see identity.ts).
        this.identityFile().write({ replicaId: this.replicaId, epoch: this.currentIdentity.epoch, stoppedAtSeq: this.localSeq() });
      }
      this.open = false;
      this.closing = Promise.resolve();
    }
    return this.closing;
  }

  /**
   * A crash: queued increments are lost (rejected with `shutting_down`), committed ones stay, and
   * no clean-stop record is written (the next open mints a new id).
   */
  kill(): void {
    if (!this.open) return;
    this.accepting = false;
    this.open = false;
    this.groupCommit.drop(new AppError('shutting_down', 'the store was killed'));
    this.closing ??= Promise.resolve();
  }

  private flush(units: PendingUnit[]): void {
    if (!this.open) {
      for (const unit of units) unit.reject(new AppError('shutting_down', 'the store is closed'));
      return;
    }
    const plan = planFlush(units, (page) => this.totals.get(page) ?? 0);
    for (const { unit, error } of plan.rejected) unit.reject(error);
    if (plan.pages.size > 0) {
      const replica = this.replicaId;
      const seq = this.localSeq() + 1;
      const raised: Slot[] = [];
      const series: Slot[] = [];
      let digestChange = 0n;
      const time = this.now();
      const now = { hour: hourOf(time), day: dayOf(time) };
      const visitors = this.analytics ? visitorsByPage(plan.accepted) : undefined;
      for (const [page, { by, total }] of plan.pages) {
        const own = this.db.state.get(page)?.get(replica);
        const epoch = pageEpoch(this.db.state, page);
        const value = incrementedSlot(own, epoch, by, seq);
        raised.push({ page, replica, ...value });
        this.setTotal(page, total);
        digestChange += this.slotKeys.slotChange(page, replica, own, value);
        if (this.analytics) digestChange += this.seriesSlots.addLocal(page, replica, epoch, seq, by, now, visitors?.get(page), series);
      }
      applySlots(this.db.state, raised);
      this.digestSum = addToDigest(this.digestSum, digestChange);
      for (const slot of raised) this.index(slot.page, replica, slot);
      // Each page's series slots right behind its total, as the SQLite store sends them.
      if (series.length > 0) {
        const ordered: Slot[] = [];
        for (const slot of raised) {
          ordered.push(slot);
          for (const extra of series) if (extra.page === slot.page) ordered.push(extra);
        }
        raised.length = 0;
        raised.push(...ordered);
      }
      this.db.vv.set(replica, seq);
      this.events.emitCommit({ range: { replica, after: seq - 1, upTo: seq }, slots: raised });
      this.events.emitChange(
        raised.filter((slot) => slot.kind === undefined).map(({ page }) => ({ page, count: plan.pages.get(page)?.total ?? 0 })),
        'local',
      );
    }
    for (const unit of plan.accepted) unit.resolve(unitCounts(unit, plan.pages));
  }

  private identityFile(): IdentityFile {
    return { read: () => this.disk.identityFile, write: (identity) => this.disk.writeIdentityFile(identity) };
  }

  private mintReplicaId(): ReplicaId {
    return mintReplicaId(this.random, (id) => this.db.replicas.has(id));
  }

  private mint(reason: string): IdentityInfo {
    const identity = mintedIdentity(this.currentIdentity, this.mintReplicaId(), reason);
    this.db.replicas.add(identity.replicaId);
    this.db.identity = { replicaId: identity.replicaId, epoch: identity.epoch };
    this.disk.writeIdentityFile(this.db.identity);
    this.currentIdentity = identity;
    this.log.warn({ ...identity }, 'replica id minted');
    return identity;
  }

  private index(page: PageName, replica: ReplicaId, value: SlotValue): void {
    let slots = this.byReplica.get(replica);
    if (slots === undefined) {
      slots = new Map();
      this.byReplica.set(replica, slots);
    }
    slots.set(page, valueOf(value));
  }

  private unindex(page: PageName, replica: ReplicaId): void {
    this.byReplica.get(replica)?.delete(page);
  }

  /** Like the SQLite store's listing: a page is listed while its total is above 0. */
  private setTotal(page: PageName, total: number): void {
    if (total === 0) {
      if (this.totals.delete(page)) this.sortedPages = undefined;
      return;
    }
    if (!this.totals.has(page)) this.sortedPages = undefined;
    this.totals.set(page, total);
  }

  private assertOpen(): void {
    if (!this.open) throw new AppError('shutting_down', 'the store is closed');
  }
}

