/**
 * Views over time and unique visitors, as slots of the page (see `Slot.kind` in g-counter.ts).
 * Every view also raises the committing replica's slot of its page's hour bucket and day bucket
 * (UTC), and every view with a visitor raises that replica's register of the page's day sketch
 * (hyperloglog.ts). These slots are the page's like its total slot: the same owner, the same seq
 * (one commit raises the total, the buckets and the registers under one seq), the same reset
 * epoch, the same max-merge, the same version vectors. So `vv[R] = s` promises every slot of R
 * of every kind, as R had it at commit s, is held here at least as high (hour buckets older
 * than the retention excepted: they are expired, see below).
 *
 * Rules written once (both stores and the property model apply them):
 * - A page's slots of every kind share its reset epoch. A series slot of an older epoch is
 *   dropped. A series slot of a newer epoch than the page holds proves that its replica counted
 *   at that epoch, so the replica's total slot there is at least (count 0, the same seq): that
 *   lower bound is applied as a total slot first (it resets the page as a tombstone would), then
 *   the series slot merges. In a well-formed stream the total slot travels with its buckets, so
 *   the lower bound only matters when chunks arrive out of order; it never exceeds the truth.
 * - When a page's epoch rises, every series slot of an older epoch goes with its total slots.
 * - Hour buckets are kept for the retention (HOURLY_RETENTION_DAYS): an hour bucket before
 *   `hourlyCutoff(now)` is pruned and one arriving is dropped. The rule is a function of the
 *   bucket's hour and the clock only, so every node prunes the same buckets (within its clock's
 *   skew) and, since the version vectors already cover them, no one sends them again.
 * - Every sum of buckets shown (a point, a site bucket, a page's views in a top list) saturates
 *   at MAX_TOTAL, as a page's total does; a top list counts a page at most at its total (a peer
 *   can send buckets above its total slot; refusing them would depend on arrival order). Both are
 *   functions of the merged slots alone (sqlite-series.ts `topViews`).
 * - A register's rank is 1–HLL_MAX_RANK (`seriesSlotProblem`): the codec refuses a peer's frame
 *   holding another, the recovery union a backup holding one.
 */
import type { Slot } from './g-counter.js';
import { HLL_MAX_RANK, HLL_REGISTERS } from './hyperloglog.js';

export const SERIES_HOUR = 1;
export const SERIES_DAY = 2;
export const SERIES_REGISTER = 3;
export type SeriesKind = typeof SERIES_HOUR | typeof SERIES_DAY | typeof SERIES_REGISTER;

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/** The UTC hour (hours since the epoch) of a time in ms. */
export function hourOf(ms: number): number {
  return Math.floor(ms / HOUR_MS);
}

/** The UTC day (days since the epoch) of a time in ms. */
export function dayOf(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

/** The `t` of a register slot: its day and its index in one integer. */
export function registerT(day: number, index: number): number {
  return day * HLL_REGISTERS + index;
}

export function registerDay(t: number): number {
  return Math.floor(t / HLL_REGISTERS);
}

export function registerIndex(t: number): number {
  return t % HLL_REGISTERS;
}

/** The first hour kept at time `nowMs` with `retentionDays` of hour buckets. */
export function hourlyCutoff(nowMs: number, retentionDays: number): number {
  return hourOf(nowMs) - retentionDays * 24;
}

/** The key fields of a slot, to spread into a copy (`{}` for a total). */
export function keyOf(slot: Pick<Slot, 'kind' | 't'>): { kind?: SeriesKind; t?: number } {
  return slot.kind === undefined ? {} : { kind: slot.kind, t: slot.t ?? 0 };
}

/** Whether a series slot has expired at the hour cutoff (only hour buckets expire). */
export function expired(slot: Pick<Slot, 'kind' | 't'>, cutoffHour: number): boolean {
  return slot.kind === SERIES_HOUR && (slot.t ?? 0) < cutoffHour;
}

/** A series slot's identity within its page: replica, kind and t. */
export function seriesKey(replica: string, kind: number, t: number): string {
  return `${kind}:${t}:${replica}`;
}

/** The largest `t` a series slot may carry (a register's day × 16,384 + index stays far below). */
export const MAX_SERIES_T = 2 ** 40;

/** Why a series key is impossible, or undefined: kind 1–3, t a whole number in range. */
export function seriesKeyProblem(kind: number, t: number): string | undefined {
  if (kind !== SERIES_HOUR && kind !== SERIES_DAY && kind !== SERIES_REGISTER) return `slot kind ${kind} is not 0–3`;
  if (!Number.isSafeInteger(t) || t < 0 || t > MAX_SERIES_T) return `slot t ${t} is not a whole number from 0 to 2^40`;
  return undefined;
}

/**
 * Why a series slot's value is impossible, or undefined: its key as above, a count of at least 1
 * (a series slot exists once it counts), and for a register a rank of at most HLL_MAX_RANK (51: a
 * 64-bit hash has 50 bits after the index). A higher rank no visitor can raise; the histograms
 * hold ranks 0–51 only, and an estimate would treat it as 2^-rank of nothing.
 */
export function seriesSlotProblem(kind: number, t: number, count: number): string | undefined {
  const problem = seriesKeyProblem(kind, t);
  if (problem !== undefined) return problem;
  if (count < 1) return `a slot of kind ${kind} must count at least 1, got ${count}`;
  if (kind === SERIES_REGISTER && count > HLL_MAX_RANK) return `a register's rank must be 1–${HLL_MAX_RANK}, got ${count}`;
  return undefined;
}
