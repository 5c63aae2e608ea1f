/**
 * What both stores share about views over time and visitors (src/crdt/series.ts): the retention
 * of hour buckets, how often they are pruned, and the visitors of one group commit.
 */
import type { PageName } from '../ids.js';
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
