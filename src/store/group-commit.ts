/**
 * Group commit, shared by both stores: increments from concurrent callers are queued and
 * committed together on the next turn of the event loop, in one transaction under one seq (with
 * `atOnceAfterIdleMs`, a unit that arrives alone on an idle store commits at once instead, at
 * most once per loop turn). A flush may return a promise (the SQLite store spreads a large
 * commit over several loop turns): the next flush starts only once it settled.
 * `planFlush` is the pure part: it checks each unit against the running totals of the flush, so
 * one unit that would overflow is refused alone while the others commit.
 */
import { AppError } from '../errors.js';
import { pageNameProblem, type PageName } from '../ids.js';
import { runSteps, type Steps } from '../steps.js';
import type { Increment, PageCount } from './store.js';

export interface PendingUnit {
  readonly increments: readonly Increment[];
  resolve(counts: PageCount[]): void;
  reject(error: Error): void;
}

export interface PageAddition {
  /** How much this flush adds to the page (and to this replica's slot of it). */
  by: number;
  /** The page's total after the flush. */
  total: number;
}

export interface FlushPlan {
  readonly accepted: PendingUnit[];
  readonly rejected: { readonly unit: PendingUnit; readonly error: AppError }[];
  /** Every page the accepted units raise, in first-touched order. */
  readonly pages: Map<PageName, PageAddition>;
}

/** Why an increment cannot be counted at all (bad input), or undefined. */
function incrementProblem(increment: Increment): AppError | undefined {
  const { page, by } = increment;
  if (!Number.isSafeInteger(by) || by < 1) return new AppError('bad_increment', `increment of page ${JSON.stringify(page)} must be a positive integer, got ${String(by)}`);
  const problem = pageNameProblem(page);
  if (problem !== undefined) return new AppError('bad_page_name', problem);
  return undefined;
}

/**
 * Decides which units of a flush commit. A unit is all-or-nothing: it is refused when any of its
 * pages' totals would pass Number.MAX_SAFE_INTEGER, counting what earlier units of the same
 * flush added. A slot never exceeds its page's total, so checking totals covers the slots too.
 */
export function planFlush(units: readonly PendingUnit[], currentTotal: (page: PageName) => number): FlushPlan {
  return runSteps(planFlushSteps(units, currentTotal));
}

/** Increments checked in one step of `planFlushSteps` (a page name check is 1–3 µs). */
const PLAN_INCREMENTS_PER_STEP = 64;

/** `planFlush` in steps (src/steps.ts): a spread commit lets the loop turn within a maximal batch's checks too. */
export function* planFlushSteps(units: readonly PendingUnit[], currentTotal: (page: PageName) => number): Steps<FlushPlan> {
  let checked = 0;
  const pages = new Map<PageName, PageAddition>();
  const accepted: PendingUnit[] = [];
  const rejected: { unit: PendingUnit; error: AppError }[] = [];
  // Additions of the unit being checked, applied to `pages` only once the whole unit passes.
  const trial = new Map<PageName, number>();
  for (const unit of units) {
    trial.clear();
    let error: AppError | undefined;
    for (const increment of unit.increments) {
      error = incrementProblem(increment);
      if (error !== undefined) break;
      const { page, by } = increment;
      const base = pages.get(page)?.total ?? currentTotal(page);
      const before = base + (trial.get(page) ?? 0);
      if (by > Number.MAX_SAFE_INTEGER - before) {
        error = new AppError('counter_overflow', `page ${JSON.stringify(page)} would pass ${Number.MAX_SAFE_INTEGER} views: increment refused`);
        break;
      }
      trial.set(page, (trial.get(page) ?? 0) + by);
      if (++checked % PLAN_INCREMENTS_PER_STEP === 0) yield;
    }
    if (error !== undefined) {
      rejected.push({ unit, error });
      continue;
    }
    accepted.push(unit);
    for (const [page, by] of trial) {
      const current = pages.get(page);
      if (current === undefined) pages.set(page, { by, total: currentTotal(page) + by });
      else {
        current.by += by;
        current.total += by;
      }
    }
  }
  return { accepted, rejected, pages };
}

/** The answer to one unit: each increment's page total after the flush, in input order. */
export function unitCounts(unit: PendingUnit, pages: ReadonlyMap<PageName, PageAddition>): PageCount[] {
  return unit.increments.map(({ page }) => ({ page, count: pages.get(page)?.total ?? 0 }));
}

/**
 * Increments waiting for a commit, at most (the default; `MEMORY_BUDGET_MB` sets it in a node).
 * About 200 bytes each with their page name and promise, so 100,000 hold some 20 MB. Past it an
 * increment is refused at once with 503 `overloaded` instead of growing the queue: 64 concurrent
 * batches of 10,000 views used to queue 640,000 at once, 344 MB and a 5.9 s commit.
 */
export const DEFAULT_MAX_QUEUED_INCREMENTS = 100_000;
/**
 * Increments per transaction, at most: a flush takes whole units from the queue up to this many
 * (at least one unit), the rest waits for the next turn of the event loop. An increment of a page
 * already held costs about 2 µs; one of a new page with analytics on (a page row, its slot, hour
 * and day buckets, the site's) costs tens of µs, so a maximal batch (MAX_BATCH_VIEWS, 10,000) of
 * new pages is one commit of a few hundred ms and commits alone: a bound of 20,000 let two such
 * batches share one, and the loop waited for both.
 */
export const MAX_FLUSH_INCREMENTS = 10_000;

/**
 * How a flush may commit: `spread` over several loop turns when it is large (the flush then
 * returns a promise), `now` synchronously whatever its size (flushNow(), at close).
 */
export type FlushMode = 'spread' | 'now';

/**
 * Increments a node lets wait for a commit, at most, whatever its memory budget allows
 * (node.ts takes the smaller): three maximal flushes behind the one committing. A unit waits
 * for everything ahead of it, and a flush of 10,000 new pages takes 1–4 s of wall time on a busy
 * host: with the budget's 83,886 (eight maximal batches) the last of them waited 30 s and more,
 * its client gave up, and the batch was counted all the same. Past it: 503 `overloaded` at once.
 */
export const MAX_QUEUED_INCREMENTS_FOR_LATENCY = 3 * MAX_FLUSH_INCREMENTS;

export interface GroupCommitOptions {
  /** Increments waiting at most; past it enqueue() rejects with `overloaded`. */
  readonly maxQueuedIncrements?: number;
  /**
   * When set: a unit that finds the queue empty and no commit for this many ms is committed at
   * once, inside enqueue(), instead of on the next turn (see AT_ONCE_AFTER_IDLE_MS). Undefined:
   * every unit waits for the turn, so the units of one tick always share a commit.
   */
  readonly atOnceAfterIdleMs?: number;
}

/**
 * The idle time after which a lone unit commits at once (what node.ts passes). Measured at 1,000
 * increments/s on 3 nodes (issue 19): a unit arriving alone waited 1.2 ms at the median, 14 ms
 * at p95, for the turn, behind every other callback of a busy loop, to share a commit with
 * nobody. Under load commits follow each other closer than this, so they keep grouping.
 */
export const AT_ONCE_AFTER_IDLE_MS = 1;

/** The queue: `flush` is called with the units queued since the last flush, up to MAX_FLUSH_INCREMENTS. */
export class GroupCommit {
  private queue: PendingUnit[] = [];
  private queuedIncrements = 0;
  private scheduled: ReturnType<typeof setImmediate> | undefined;
  private readonly maxQueued: number;
  private readonly atOnceAfterIdleMs: number | undefined;
  /** performance.now() at the end of the last flush. */
  private lastFlushAt = Number.NEGATIVE_INFINITY;
  /** A flush spread over loop turns that has not settled yet: no other flush starts meanwhile. */
  private inFlight: Promise<void> | undefined;
  /**
   * Set by a commit at once until the loop turns: one I/O phase can complete many request bodies,
   * and each found the queue empty and the last commit (its own predecessor's) a parse ago, so
   * they all committed at once, one after the other, in that one phase: the loop waited 25 s for
   * 25 maximal batches, and /healthz with it. The next one waits for the turn instead.
   */
  private atOnceThisTurn = false;

  constructor(
    private readonly flush: (units: PendingUnit[], mode: FlushMode) => void | Promise<void>,
    options: GroupCommitOptions = {},
  ) {
    this.maxQueued = options.maxQueuedIncrements ?? DEFAULT_MAX_QUEUED_INCREMENTS;
    this.atOnceAfterIdleMs = options.atOnceAfterIdleMs;
  }

  enqueue(increments: readonly Increment[]): Promise<PageCount[]> {
    // An empty queue takes any one unit, so a unit larger than the bound is not refused forever.
    if (this.queue.length > 0 && this.queuedIncrements + increments.length > this.maxQueued) {
      return Promise.reject(new AppError('overloaded', `more than ${this.maxQueued} increments are waiting for a commit: retry shortly`));
    }
    return new Promise<PageCount[]>((resolve, reject) => {
      this.queue.push({ increments, resolve, reject });
      this.queuedIncrements += increments.length;
      if (
        this.scheduled === undefined &&
        this.inFlight === undefined &&
        !this.atOnceThisTurn &&
        this.queue.length === 1 &&
        this.atOnceAfterIdleMs !== undefined &&
        performance.now() - this.lastFlushAt >= this.atOnceAfterIdleMs
      ) {
        this.atOnceThisTurn = true;
        setImmediate(this.turned);
        this.flushSome('spread');
        return;
      }
      this.scheduled ??= setImmediate(this.run);
    });
  }

  /**
   * Flushes everything queued now, synchronously, in as many commits as it takes (close() uses
   * it, after idle()). Throws while a spread flush is open.
   */
  flushNow(): void {
    if (this.inFlight !== undefined) throw new Error('flushNow() while a spread commit is open: await idle() first');
    if (this.scheduled !== undefined) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    while (this.queue.length > 0) this.flushSome('now');
  }

  /** Resolves once no flush is open (at once when none is). */
  idle(): Promise<void> {
    return this.inFlight ?? Promise.resolve();
  }

  /** Drops what is queued without committing it (a crash), rejecting each unit with `error`. */
  drop(error: Error): void {
    if (this.scheduled !== undefined) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    const units = this.queue;
    this.queue = [];
    this.queuedIncrements = 0;
    for (const unit of units) unit.reject(error);
  }

  get pending(): number {
    return this.queue.length;
  }

  private readonly turned = (): void => {
    this.atOnceThisTurn = false;
  };

  private readonly run = (): void => {
    this.scheduled = undefined;
    this.flushSome('spread');
    // What did not fit waits one turn, so requests and frames get the loop in between (after a
    // spread flush, the turn after it settled).
    if (this.queue.length > 0 && this.inFlight === undefined) this.scheduled = setImmediate(this.run);
  };

  private flushSome(mode: FlushMode): void {
    if (this.queue.length === 0 || this.inFlight !== undefined) return;
    let take = 0;
    let increments = 0;
    while (take < this.queue.length && (take === 0 || increments + (this.queue[take] as PendingUnit).increments.length <= MAX_FLUSH_INCREMENTS)) {
      increments += (this.queue[take] as PendingUnit).increments.length;
      take++;
    }
    const units = take === this.queue.length ? this.queue : this.queue.slice(0, take);
    this.queue = take === this.queue.length ? [] : this.queue.slice(take);
    this.queuedIncrements -= increments;
    let spread: void | Promise<void>;
    try {
      spread = this.flush(units, mode);
    } finally {
      this.lastFlushAt = performance.now();
    }
    if (spread === undefined) return;
    const settled = (): void => {
      this.inFlight = undefined;
      this.lastFlushAt = performance.now();
      if (this.queue.length > 0) this.scheduled ??= setImmediate(this.run);
    };
    this.inFlight = spread.then(settled, settled);
  }
}
