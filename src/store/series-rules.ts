/**
 * What both stores share about views over time and visitors (src/crdt/series.ts): the retention
 * of hour buckets, how often they are pruned, the visitors of one group commit, a top list's
 * views, and the (seq, page, kind, t) order of sync answers. Pure: the twin (memory-series.ts)
 * takes them from here, never from the SQLite adapter.
 */
import type { Slot } from '../crdt/g-counter.js';
import type { PageName } from '../ids.js';
import { compareUtf8 } from '../utf8.js';
import type { PendingUnit } from './group-commit.js';
import { runSteps, type Steps } from '../steps.js';

/** Days hour buckets are kept by default (HOURLY_RETENTION_DAYS); day buckets are kept for ever. */
export { DEFAULT_HOURLY_RETENTION_DAYS } from '../settings.js';
/** How often a store prunes hour buckets past the retention by itself. */
export const SERIES_PRUNE_INTERVAL_MS = 10 * 60 * 1000;

/** Per page, the highest rank per register the commit's views bring (index → rank). */
export type CommitVisitors = Map<PageName, Map<number, number>>;

/** The visitors of one group commit's units (CommitVisitors). */
export function visitorsByPage(units: readonly PendingUnit[]): CommitVisitors {
  return runSteps(visitorSteps(units));
}

/** `visitorsByPage` in steps (src/steps.ts), one per increment with a visitor (a spread commit turns the loop between them). */
export function* visitorSteps(units: readonly PendingUnit[]): Steps<CommitVisitors> {
  const out: CommitVisitors = new Map();
  for (const unit of units) {
    for (const increment of unit.increments) {
      const visitor = increment.visitor;
      if (visitor === undefined) continue;
      let registers = out.get(increment.page);
      if (registers === undefined) {
        registers = new Map();
        out.set(increment.page, registers);
      }
      if (visitor.rank > (registers.get(visitor.index) ?? 0)) registers.set(visitor.index, visitor.rank);
      yield;
    }
  }
  return out;
}

/**
 * A page's views in a top list: its buckets' views in the range, at most its total. Honest
 * buckets never sum to more (each view raises the total and one bucket of each kind, series.ts),
 * but a peer can send buckets above its total slot, and the top list's early stop (`top`) holds
 * only while no page counts more than its total. The same function of the merged slots on every
 * node, so nodes with the same slots show the same list; refusing such buckets instead would
 * depend on arrival order (a bucket may come before its total slot, series.ts lower bounds).
 */
export function topViews(rangeViews: number, total: number): number {
  return Math.min(rangeViews, total);
}

/** A day range and the hour ranges at its ends that together make `[fromHour, toHour)`. */
export function splitHours(fromHour: number, toHour: number): { days: [number, number]; hours: [[number, number], [number, number]] } {
  const firstDay = Math.ceil(fromHour / 24);
  const endDay = Math.floor(toHour / 24);
  if (endDay <= firstDay) return { days: [0, 0], hours: [[fromHour, toHour], [0, 0]] };
  return { days: [firstDay, endDay], hours: [[fromHour, firstDay * 24], [endDay * 24, toHour]] };
}

/** Merges total slots and series rows (each list in (seq, page, kind, t) order) into one list of at most `limit`. */
export function mergeByCursorOrder(totals: readonly Slot[], series: readonly Slot[], limit: number): Slot[] {
  const out: Slot[] = [];
  let i = 0;
  let j = 0;
  while (out.length < limit && (i < totals.length || j < series.length)) {
    const a = totals[i];
    const b = series[j];
    if (b === undefined || (a !== undefined && compareCursorOrder(a, b) <= 0)) {
      out.push(a as Slot);
      i++;
    } else {
      out.push(b);
      j++;
    }
  }
  return out;
}

/** The (seq, page, kind, t) order of sync answers (kind 0 and t 0 for a total). */
export function compareCursorOrder(a: Slot, b: Slot): number {
  return a.seq - b.seq || compareUtf8(a.page, b.page) || (a.kind ?? 0) - (b.kind ?? 0) || (a.t ?? 0) - (b.t ?? 0);
}
