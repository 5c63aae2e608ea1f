/**
 * A cluster status that is recomputed at most once per `minAgeMs`, and less often when computing
 * it is expensive: `status()` includes the store's digest, which reads and sorts every slot
 * (measured here: ~10 ms at 3,000 slots, ~64 ms at 30,000, ~1.5 s at 300,000). The page and the
 * live feed show it to people, for whom a second-old status is as good as a fresh one; they must
 * not make a node spend its time hashing. `/api/cluster` keeps reading the source directly.
 */
import { performance } from 'node:perf_hooks';
import type { ClusterStatus, ClusterStatusSource } from '../cluster-status.js';

/** A cached status is reused for at least this long. */
export const STATUS_MIN_AGE_MS = 1_000;
/** …and for this many times what computing it cost, so it takes at most ~5% of a core. */
export const STATUS_COST_FACTOR = 20;

export interface CachedStatusOptions {
  readonly minAgeMs?: number;
  readonly now?: () => number;
}

export function cachedStatus(source: ClusterStatusSource, options: CachedStatusOptions = {}): ClusterStatusSource {
  const minAgeMs = options.minAgeMs ?? STATUS_MIN_AGE_MS;
  const now = options.now ?? Date.now;
  let cached: ClusterStatus | undefined;
  let computedAt = 0;
  let validMs = 0;
  return {
    status() {
      if (cached !== undefined && now() - computedAt < validMs) return cached;
      const began = performance.now();
      cached = source.status();
      validMs = Math.max(minAgeMs, (performance.now() - began) * STATUS_COST_FACTOR);
      computedAt = now();
      return cached;
    },
  };
}
