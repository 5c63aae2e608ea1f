/**
 * The SQLite store's series slots (src/crdt/series.ts): hour and day buckets and visitor-sketch
 * registers, with the site-wide tables derived from them (migrations 0004–0006). Every method
 * runs inside the store's transaction; what it changes in the digest it returns, for the store to
 * add after the commit. What a transaction changes in the derived tables is gathered and written
 * once at `finish()`: the site's buckets per (kind, t), each touched sketch's histogram per
 * page-day (not per register). The site's registers of recent days and recently written
 * histograms stay in memory between transactions (bounded, below), so a commit by new visitors
 * writes what it must and reads little; `abandon()` after a failed transaction forgets them.
 *
 * Over 300 lines: about 90 are the prepared statements, which the one class uses under the store's
 * transaction.
 */
import type Database from 'better-sqlite3';
import { epochOf, MAX_TOTAL, supersedes, type Slot } from '../crdt/g-counter.js';
import { SlotKeyCache } from '../crdt/digest.js';
import { decodeHistogram, emptyHistogram, encodeHistogram, estimateFromHistogram, HLL_REGISTERS, histogramOf, raiseInHistogram, type Histogram } from '../crdt/hyperloglog.js';
import { registerDay, registerIndex, registerT, SERIES_DAY, SERIES_HOUR, SERIES_REGISTER } from '../crdt/series.js';
import type { PageName, ReplicaId } from '../ids.js';
import { runSteps, type Steps } from '../steps.js';
import { compareUtf8 } from '../utf8.js';
import { splitHours, topViews } from './series-rules.js';
import type { PageCount, SeriesPoint, SeriesRange, SlotCursor, TopRange } from './store.js';

/** The site's sketch histograms are stored under this page name, which no page can have. */
const SITE = '';

/**
 * Every sum of buckets saturates at MAX_TOTAL, as a page's total does (g-counter.ts): a point, a
 * page's views in a range, a site bucket. In SQL as `min(MAX, total(count))`: `sum()` throws
 * "integer overflow" past 2^63 (1,025 slots near 2^53 from a peer do it) and past 2^53 its
 * integers are no longer exact in JavaScript; `total()` adds exactly in 64 bits and turns the
 * sum into a double, which rounds a sum above MAX to 2^53 or more (monotonic), so the cap is
 * exact and the same on every node. Only the merged slots decide it, never the order.
 */
const MAX = String(MAX_TOTAL);

interface SeriesRow {
  page: PageName;
  kind: 1 | 2 | 3;
  t: number;
  count: number;
  seq: number;
  epoch: number;
}

/**
 * The slot at (page, kind, t, replica), one statement per kind with the kind written out: with
 * `kind = ?` SQLite re-prepares the statement at every execution, since a bound kind could make a
 * partial index of migration 0004 (`WHERE kind = 1`, `WHERE kind = 3`) usable (it marks such
 * parameters, and binding one expires the plan). Measured: 10–15 µs per lookup instead of 2.
 */
function prepareSlotReads(db: Database.Database) {
  const read = (kind: 1 | 2 | 3) =>
    db.prepare<[PageName, number, number], { count: number; seq: number; epoch: number }>(`SELECT count, seq, epoch FROM series_slots WHERE page = ? AND kind = ${kind} AND t = ? AND replica = ?`);
  return { [SERIES_HOUR]: read(SERIES_HOUR), [SERIES_DAY]: read(SERIES_DAY), [SERIES_REGISTER]: read(SERIES_REGISTER) } as const;
}

function prepare(db: Database.Database) {
  return {
    slot: prepareSlotReads(db),
    setSlot: db.prepare<[PageName, number, number, number, number, number, number]>(
      'INSERT INTO series_slots (page, kind, t, replica, count, seq, epoch) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (page, kind, t, replica) DO UPDATE SET count = excluded.count, seq = excluded.seq, epoch = excluded.epoch',
    ),
    /** A local view within the page's epoch (an own slot of an older epoch restarts), like addToSlot. */
    addToSlot: db
      .prepare<[PageName, number, number, number, number, number, number], number>(
        'INSERT INTO series_slots (page, kind, t, replica, count, seq, epoch) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (page, kind, t, replica) DO UPDATE SET count = CASE WHEN epoch = excluded.epoch THEN count + excluded.count ELSE excluded.count END, seq = excluded.seq, epoch = excluded.epoch RETURNING count',
      )
      .pluck(),
    /** Every replica's row of one register (one seek: a register has a row per replica that raised it). */
    registerRows: db
      .prepare<[PageName, number], [number, number, number, number]>('SELECT replica, count, seq, epoch FROM series_slots WHERE page = ? AND kind = 3 AND t = ?')
      .raw(),
    siteDay: db.prepare<[number], [number, number]>('SELECT idx, rank FROM site_registers WHERE day = ?').raw(),
    setSiteRegister: db.prepare<[number, number, number]>('INSERT INTO site_registers (day, idx, rank) VALUES (?, ?, ?) ON CONFLICT (day, idx) DO UPDATE SET rank = excluded.rank'),
    // views and the added count are at most MAX: their sum fits 64 bits, and min() keeps the cap
    // (on a new row too: a transaction's sum for one bucket can pass MAX).
    addSiteBucket: db.prepare<[number, number, number]>(
      `INSERT INTO site_buckets (kind, t, views) VALUES (?, ?, min(${MAX}, ?)) ON CONFLICT (kind, t) DO UPDATE SET views = min(${MAX}, views + excluded.views)`,
    ),
    /** Exact below the cap only: a saturated bucket is left alone (no change) and summed again. */
    subtractSiteBucket: db.prepare<[number, number, number]>(`UPDATE site_buckets SET views = max(0, views - ?) WHERE kind = ? AND t = ? AND views < ${MAX}`),
    setSiteBucket: db.prepare<[number, number, number]>('INSERT INTO site_buckets (kind, t, views) VALUES (?, ?, ?) ON CONFLICT (kind, t) DO UPDATE SET views = excluded.views'),
    // Literal kinds, so each reads its partial index (series_hours_by_t, series_days_by_t).
    hourBucketSum: db.prepare<[number], number>(`SELECT min(${MAX}, total(count)) FROM series_slots WHERE kind = 1 AND t = ?`).pluck(),
    dayBucketSum: db.prepare<[number], number>(`SELECT min(${MAX}, total(count)) FROM series_slots WHERE kind = 2 AND t = ?`).pluck(),
    sketch: db.prepare<[PageName, number], Buffer>('SELECT histogram FROM sketches WHERE page = ? AND day = ?').pluck(),
    setSketch: db.prepare<[PageName, number, Buffer]>('INSERT INTO sketches (page, day, histogram) VALUES (?, ?, ?) ON CONFLICT (page, day) DO UPDATE SET histogram = excluded.histogram'),
    deleteSketch: db.prepare<[PageName, number]>('DELETE FROM sketches WHERE page = ? AND day = ?'),
    pageSeriesBelow: db.prepare<[PageName, number], { kind: number; t: number; replicaId: ReplicaId; count: number; epoch: number }>(
      'SELECT s.kind AS kind, s.t AS t, r.replica_id AS replicaId, s.count AS count, s.epoch AS epoch FROM series_slots s JOIN replicas r ON r.id = s.replica WHERE s.page = ? AND s.epoch < ?',
    ),
    deletePageSeriesBelow: db.prepare<[PageName, number]>('DELETE FROM series_slots WHERE page = ? AND epoch < ?'),
    deletePageSketches: db.prepare<[PageName]>('DELETE FROM sketches WHERE page = ?'),
    deleteSiteDay: db.prepare<[number]>('DELETE FROM site_registers WHERE day = ?'),
    rebuildSiteDay: db.prepare<[{ day: number; from: number; to: number }]>(
      // The pages with a sketch that day (sketches_by_day), each one's registers of the day by the primary key.
      `INSERT INTO site_registers (day, idx, rank)
         SELECT @day, s.t - @day * ${HLL_REGISTERS}, max(s.count) FROM sketches k JOIN series_slots s ON s.page = k.page AND s.kind = 3 AND s.t >= @from AND s.t < @to
         WHERE k.day = @day AND k.page <> '' GROUP BY s.t`,
    ),
    pruneHours: db.prepare<[number]>('DELETE FROM series_slots WHERE kind = 1 AND t < ?'),
    pruneSiteHours: db.prepare<[number]>('DELETE FROM site_buckets WHERE kind = 1 AND t < ?'),
    /** Served by series_slots_by_replica_seq: one probe per replica. */
    highestSeq: db.prepare<[number], number | null>('SELECT max(seq) FROM series_slots WHERE replica = ?').pluck(),
    afterSeq: db.prepare<[number, number, number], SeriesRow>('SELECT page, kind, t, count, seq, epoch FROM series_slots WHERE replica = ? AND seq > ? ORDER BY seq, page, kind, t LIMIT ?'),
    afterCursor: db.prepare<[number, number, PageName, number, number, number], SeriesRow>(
      'SELECT page, kind, t, count, seq, epoch FROM series_slots WHERE replica = ? AND (seq, page, kind, t) > (?, ?, ?, ?) ORDER BY seq, page, kind, t LIMIT ?',
    ),
    // Hour and day points apart, each with its kind written out (see prepareSlotReads).
    pagePoints: {
      [SERIES_HOUR]: db.prepare<[PageName, number, number], [number, number]>(`SELECT t, min(${MAX}, total(count)) FROM series_slots WHERE page = ? AND kind = ${SERIES_HOUR} AND t >= ? AND t < ? GROUP BY t`).raw(),
      [SERIES_DAY]: db.prepare<[PageName, number, number], [number, number]>(`SELECT t, min(${MAX}, total(count)) FROM series_slots WHERE page = ? AND kind = ${SERIES_DAY} AND t >= ? AND t < ? GROUP BY t`).raw(),
    },
    sitePoints: db.prepare<[number, number, number], [number, number]>('SELECT t, views FROM site_buckets WHERE kind = ? AND t >= ? AND t < ?').raw(),
    sketchDays: db.prepare<[PageName, number, number], [number, Buffer]>('SELECT day, histogram FROM sketches WHERE page = ? AND day >= ? AND day < ?').raw(),
    // A page's views in a range: a seek into its day buckets and at most two into its hour
    // buckets (the range's partial days at either end).
    pageRange: db
      .prepare<[{ page: PageName; d1: number; d2: number; h1: number; h2: number; h3: number; h4: number }], number>(
        `SELECT min(${MAX}, (SELECT total(count) FROM series_slots WHERE page = @page AND kind = 2 AND t >= @d1 AND t < @d2)
           + (SELECT total(count) FROM series_slots WHERE page = @page AND kind = 1 AND t >= @h1 AND t < @h2)
           + (SELECT total(count) FROM series_slots WHERE page = @page AND kind = 1 AND t >= @h3 AND t < @h4))`,
      )
      .pluck(),
    // Candidates of the top list, largest total first (pages reset to zero left out, as in listings).
    pagesByTotal: db.prepare<[], PageCount>('SELECT page, total AS count FROM pages WHERE total > 0 ORDER BY total DESC'),
    counted: db
      .prepare<[], [PageName, ReplicaId, number, number, number, number]>(
        'SELECT s.page, r.replica_id, s.count, s.epoch, s.kind, s.t FROM series_slots s JOIN replicas r ON r.id = s.replica WHERE s.kind <> 1',
      )
      .raw(),
  };
}

/** Most views first, then name order (UTF-8 bytes, as SQLite compares them). */
function byViews(a: PageCount, b: PageCount): number {
  return b.count - a.count || compareUtf8(a.page, b.page);
}

/** Sketch histograms (page-days) held between transactions, at most: ~0.5 KB each, so ~2 MB. */
export const HISTOGRAM_CACHE_ENTRIES = 4096;
/** Days of the site's sketch held in memory, at most (16 KB each: one byte per register). */
export const SITE_DAYS_CACHED = 4;

export class SeriesTables {
  private readonly s: ReturnType<typeof prepare>;
  /** Histograms read or changed in this transaction: `${day}:${page}` → histogram. */
  private histograms = new Map<string, { page: PageName; day: number; histogram: Histogram; dirty: boolean }>();
  /**
   * Committed histograms of recently touched page-days (and the site's), so a commit does not
   * read back the row it wrote the commit before. Invariant: an entry equals its `sketches` row
   * (absent row: the empty histogram) as of the last commit. `finish()` puts what it writes here
   * before COMMIT, so a failed transaction must end in `abandon()`, which empties it. Bounded by
   * HISTOGRAM_CACHE_ENTRIES; the oldest put go first.
   */
  private committedHistograms = new Map<string, { page: PageName; histogram: Histogram }>();
  /**
   * The site's registers of recently touched days (index → rank, 0 for none), read once per day
   * instead of once per register. Invariant: equal to `site_registers` as of the last commit plus
   * this transaction's raises (which the same transaction writes); emptied by `abandon()`, and a
   * day rebuilt at `finish()` is dropped. At most SITE_DAYS_CACHED days.
   */
  private siteDays = new Map<number, Uint8Array>();
  /** Views this transaction adds to (or, after a reset, takes from) the site's buckets: `${kind}:${t}` → change. */
  /** Net change per site bucket in this transaction, exact (BigInt: raises and a reset's drops of slots near 2^53 mix). */
  private siteBuckets = new Map<string, { kind: number; t: number; views: bigint }>();
  /** Days whose site sketch must be rebuilt at finish (a reset dropped registers of them). */
  private rebuildDays = new Set<number>();

  constructor(
    db: Database.Database,
    private readonly slotKeys: SlotKeyCache,
  ) {
    this.s = prepare(db);
  }

  /**
   * A local commit's series for one page: `by` views in the hour and the day, the visitors'
   * registers (index → rank) of the day. Pushes the raised slots onto `raised`; returns the
   * digest change.
   */
  addLocal(
    page: PageName,
    replica: ReplicaId,
    self: number,
    epoch: number,
    seq: number,
    by: number,
    now: { hour: number; day: number },
    registers: ReadonlyMap<number, number> | undefined,
    raised: Slot[],
  ): bigint {
    const s = this.s;
    const hourCount = s.addToSlot.get(page, SERIES_HOUR, now.hour, self, by, seq, epoch) ?? by;
    const dayCount = s.addToSlot.get(page, SERIES_DAY, now.day, self, by, seq, epoch) ?? by;
    const epochPart = epoch === 0 ? {} : { epoch };
    raised.push({ page, replica, count: hourCount, seq, ...epochPart, kind: SERIES_HOUR, t: now.hour });
    const daySlot: Slot = { page, replica, count: dayCount, seq, ...epochPart, kind: SERIES_DAY, t: now.day };
    raised.push(daySlot);
    this.addToSite(SERIES_HOUR, now.hour, by);
    this.addToSite(SERIES_DAY, now.day, by);
    let digestChange = BigInt(by) * this.slotKeys.anyKey(daySlot);
    if (registers !== undefined) {
      for (const [index, rank] of registers) {
        const t = registerT(now.day, index);
        const { merged, own } = this.register(page, t, self);
        // Only a rank above the merged sketch's changes anything: else the own register stays.
        if (rank <= merged) continue;
        const slot: Slot = { page, replica, count: rank, seq, ...epochPart, kind: SERIES_REGISTER, t };
        s.setSlot.run(page, SERIES_REGISTER, t, self, rank, seq, epoch);
        raised.push(slot);
        digestChange += this.slotKeys.slotChangeAny(slot, own);
        this.raiseRegister(page, now.day, index, merged, rank);
      }
    }
    return digestChange;
  }

  /**
   * Merges one series slot of a page whose epoch equals the slot's (the store checked it; an
   * expired hour bucket was dropped). Returns the digest change.
   */
  merge(slot: Slot, replica: number): bigint {
    const s = this.s;
    const kind = slot.kind as 1 | 2 | 3;
    const t = slot.t ?? 0;
    let current: { count: number; seq: number; epoch: number } | undefined;
    let merged = 0;
    if (kind === SERIES_REGISTER) ({ merged, own: current } = this.register(slot.page, t, replica));
    else current = s.slot[kind].get(slot.page, t, replica);
    if (!supersedes(slot, current)) return 0n;
    s.setSlot.run(slot.page, kind, t, replica, slot.count, slot.seq, epochOf(slot));
    if (kind === SERIES_REGISTER) {
      if (slot.count > merged) this.raiseRegister(slot.page, registerDay(t), registerIndex(t), merged, slot.count);
    } else {
      const before = current === undefined || current.epoch !== epochOf(slot) ? 0 : current.count;
      if (slot.count > before) this.addToSite(kind, t, slot.count - before);
    }
    return this.slotKeys.slotChangeAny(slot, current);
  }

  /** The page's epoch rose to `epoch`: its series slots of older epochs go. Returns the digest change. */
  dropBelow(page: PageName, epoch: number): bigint {
    const s = this.s;
    let digestChange = 0n;
    let any = false;
    for (const row of s.pageSeriesBelow.all(page, epoch)) {
      any = true;
      if (row.kind === SERIES_REGISTER) this.rebuildDays.add(registerDay(row.t));
      else this.addToSite(row.kind, row.t, -row.count);
      if (row.kind !== SERIES_HOUR) digestChange -= BigInt(row.count) * this.slotKeys.anyKey({ page, replica: row.replicaId, kind: row.kind as 2 | 3, t: row.t, epoch: row.epoch });
    }
    if (!any) return 0n;
    s.deletePageSeriesBelow.run(page, epoch);
    s.deletePageSketches.run(page);
    for (const key of [...this.histograms.keys()]) if (this.histograms.get(key)?.page === page) this.histograms.delete(key);
    for (const [key, held] of [...this.committedHistograms]) if (held.page === page) this.committedHistograms.delete(key);
    return digestChange;
  }

  /** End of a transaction's series work: histograms written, site sketches and saturated buckets rebuilt. */
  finish(): void {
    runSteps(this.finishSteps());
  }

  /**
   * `finish()` in steps (src/steps.ts), one write each: a spread commit (sqlite-store.ts) lets the
   * loop turn between them (a maximal batch of new pages writes ~10,000 histograms here). Nothing
   * else uses these tables until the transaction ends (the store holds other writes meanwhile).
   */
  *finishSteps(): Steps<void> {
    const s = this.s;
    const max = BigInt(MAX_TOTAL);
    // Saturated site buckets a reset dropped slots of, `${kind}:${t}`: summed again below.
    const resumBuckets = new Map<string, { kind: 1 | 2; t: number }>();
    for (const { kind, t, views } of this.siteBuckets.values()) {
      if (views > 0n) s.addSiteBucket.run(kind, t, Number(views < max ? views : max));
      else if (views < 0n) {
        // Exact below the cap only: a saturated bucket (or none), or a fall past the cap, is summed again from its slots.
        if (-views > max || s.subtractSiteBucket.run(Number(-views), kind, t).changes === 0) resumBuckets.set(`${kind}:${t}`, { kind: kind as 1 | 2, t });
      }
      yield;
    }
    for (const { kind, t } of resumBuckets.values()) {
      const views = (kind === SERIES_HOUR ? s.hourBucketSum.get(t) : s.dayBucketSum.get(t)) ?? 0;
      s.setSiteBucket.run(kind, t, views);
      yield;
    }
    // The pages' histograms first: a site day is rebuilt from the pages whose sketch row exists.
    for (const day of this.rebuildDays) this.histograms.delete(`${day}:${SITE}`);
    yield* this.writeHistograms();
    for (const day of this.rebuildDays) {
      s.deleteSiteDay.run(day);
      s.rebuildSiteDay.run({ day, from: registerT(day, 0), to: registerT(day + 1, 0) });
      this.siteDays.delete(day);
      const histogram = histogramOf(this.siteDay(day));
      this.histograms.set(`${day}:${SITE}`, { page: SITE as PageName, day, histogram, dirty: true });
      yield;
    }
    yield* this.writeHistograms();
    this.rebuildDays = new Set();
    this.siteBuckets = new Map();
  }

  /** Writes the transaction's changed histograms, one step each, and holds them as committed (see committedHistograms). */
  private *writeHistograms(): Steps<void> {
    const s = this.s;
    for (const [key, entry] of this.histograms) {
      if (!entry.dirty) continue;
      if ((entry.histogram[0] ?? 0) === HLL_REGISTERS) s.deleteSketch.run(entry.page, entry.day);
      else s.setSketch.run(entry.page, entry.day, encodeHistogram(entry.histogram));
      // Held as written; should COMMIT still fail, transaction() calls abandon(), which empties it.
      this.committedHistograms.delete(key);
      this.committedHistograms.set(key, { page: entry.page, histogram: entry.histogram });
      yield;
    }
    while (this.committedHistograms.size > HISTOGRAM_CACHE_ENTRIES) this.committedHistograms.delete(this.committedHistograms.keys().next().value as string);
    this.histograms = new Map();
  }

  /** Forgets what this transaction gathered and every cache that may hold its changes (after a rollback). */
  abandon(): void {
    this.histograms = new Map();
    this.rebuildDays = new Set();
    this.siteBuckets = new Map();
    this.committedHistograms = new Map();
    this.siteDays = new Map();
  }

  /** Deletes hour buckets before `cutoffHour` (and the site's). Returns whether any went. */
  pruneHours(cutoffHour: number): number {
    const removed = this.s.pruneHours.run(cutoffHour).changes;
    this.s.pruneSiteHours.run(cutoffHour);
    return removed;
  }

  /** The highest seq of a series slot of the interned replica (0 without one). */
  highestSeq(replica: number): number {
    return this.s.highestSeq.get(replica) ?? 0;
  }

  /** Series slots of the interned replica after the cursor, in (seq, page, kind, t) order. */
  after(replica: number, cursor: SlotCursor, limit: number): SeriesRow[] {
    if (cursor.page === undefined) return this.s.afterSeq.all(replica, cursor.seq, limit);
    return this.s.afterCursor.all(replica, cursor.seq, cursor.page, cursor.kind ?? 0, cursor.t ?? 0, limit);
  }

  /** Every point of the range (zeros included), ascending. */
  points(range: SeriesRange): SeriesPoint[] {
    const kind = range.step === 'hour' ? SERIES_HOUR : SERIES_DAY;
    const views = new Map<number, number>();
    const rows = range.page === undefined ? this.s.sitePoints.iterate(kind, range.from, range.to) : this.s.pagePoints[kind].iterate(range.page, range.from, range.to);
    for (const [t, n] of rows) views.set(t, n);
    const visitors = new Map<number, number>();
    if (range.step === 'day') {
      for (const [day, bytes] of this.s.sketchDays.iterate(range.page ?? (SITE as PageName), range.from, range.to)) visitors.set(day, estimateFromHistogram(decodeHistogram(bytes)));
    }
    const out: SeriesPoint[] = [];
    for (let t = range.from; t < range.to; t++) {
      out.push(range.step === 'day' ? { t, views: views.get(t) ?? 0, visitors: visitors.get(t) ?? 0 } : { t, views: views.get(t) ?? 0 });
    }
    return out;
  }

  /**
   * Pages by views in the range, most first, ties in name order. A page's views in a range count
   * at most its total (`topViews`), so pages are read largest total first and the reading stops
   * at the first whose total is below the last place's views: with the usual skew a few dozen
   * range reads, not one per page (at 10,000 pages and 10 million views, 30 days: 10,000 pages ×
   * three seeks took ~60 ms unloaded, 200+ ms on a busy host).
   */
  top(range: TopRange): PageCount[] {
    const { days, hours } = splitHours(range.fromHour, range.toHour);
    const bounds = { d1: days[0], d2: days[1], h1: hours[0][0], h2: hours[0][1], h3: hours[1][0], h4: hours[1][1] };
    const best: PageCount[] = [];
    for (const candidate of this.s.pagesByTotal.iterate()) {
      const last = best[range.limit - 1];
      if (last !== undefined && candidate.count < last.count) break;
      const count = topViews(this.s.pageRange.get({ page: candidate.page, ...bounds }) ?? 0, candidate.count);
      if (count === 0) continue;
      const entry = { page: candidate.page, count };
      let at = best.length;
      while (at > 0 && byViews(entry, best[at - 1] as PageCount) < 0) at--;
      if (at < range.limit) {
        best.splice(at, 0, entry);
        if (best.length > range.limit) best.pop();
      }
    }
    return best;
  }

  /** The digest sum's series terms, from scratch (day buckets and registers). */
  scanDigestTerms(): bigint {
    let sum = 0n;
    for (const [page, replica, count, epoch, kind, t] of this.s.counted.iterate()) sum += BigInt(count) * this.slotKeys.anyKey({ page, replica, epoch, kind: kind as 2 | 3, t });
    return sum;
  }

  /** The merged register at (page, day, index) went from `before` to `after`: page and site histograms follow. */
  private raiseRegister(page: PageName, day: number, index: number, before: number, after: number): void {
    raiseInHistogram(this.histogram(page, day), before, after);
    if (this.rebuildDays.has(day)) return; // rebuilt from the registers at finish
    const ranks = this.siteDay(day);
    const site = ranks[index] ?? 0;
    if (after <= site) return;
    this.s.setSiteRegister.run(day, index, after);
    ranks[index] = after;
    raiseInHistogram(this.histogram(SITE as PageName, day), site, after);
  }

  /** The merged rank of a page's register (the max over replicas, 0 for none) and `replica`'s own row of it. */
  private register(page: PageName, t: number, replica: number): { merged: number; own: { count: number; seq: number; epoch: number } | undefined } {
    let merged = 0;
    let own: { count: number; seq: number; epoch: number } | undefined;
    for (const [holder, count, seq, epoch] of this.s.registerRows.iterate(page, t)) {
      if (count > merged) merged = count;
      if (holder === replica) own = { count, seq, epoch };
    }
    return { merged, own };
  }

  /** The views of a site bucket change by `views` at finish. */
  private addToSite(kind: number, t: number, views: number): void {
    const key = `${kind}:${t}`;
    const entry = this.siteBuckets.get(key);
    if (entry === undefined) this.siteBuckets.set(key, { kind, t, views: BigInt(views) });
    else entry.views += BigInt(views);
  }

  /** The site's registers of a day (index → rank), from the cache or read once. */
  private siteDay(day: number): Uint8Array {
    let ranks = this.siteDays.get(day);
    if (ranks === undefined) {
      ranks = new Uint8Array(HLL_REGISTERS);
      for (const [index, rank] of this.s.siteDay.iterate(day)) if (index >= 0 && index < HLL_REGISTERS) ranks[index] = rank;
      if (this.siteDays.size >= SITE_DAYS_CACHED) this.siteDays.delete(this.siteDays.keys().next().value as number);
      this.siteDays.set(day, ranks);
    }
    return ranks;
  }

  private histogram(page: PageName, day: number): Histogram {
    const key = `${day}:${page}`;
    let entry = this.histograms.get(key);
    if (entry === undefined) {
      const held = this.committedHistograms.get(key);
      let histogram: Histogram;
      if (held !== undefined) histogram = held.histogram.slice();
      else {
        const bytes = this.s.sketch.get(page, day);
        histogram = bytes === undefined ? emptyHistogram() : decodeHistogram(bytes);
      }
      entry = { page, day, histogram, dirty: true };
      this.histograms.set(key, entry);
    }
    entry.dirty = true;
    return entry.histogram;
  }
}
