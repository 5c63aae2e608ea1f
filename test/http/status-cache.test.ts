import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import type { ClusterStatus, ClusterStatusSource } from '../../src/cluster-status.js';
import { cachedStatus } from '../../src/http/status-cache.js';

function countingSource(costMs = 0): ClusterStatusSource & { calls: number } {
  const source = {
    calls: 0,
    status(): ClusterStatus {
      source.calls++;
      // Real CPU time: what the cache measures.
      const until = performance.now() + costMs;
      while (performance.now() < until);
      return { node: { name: 'n', replicaId: 'r', address: 'a', version: '1', startedAt: 's' }, peers: [], versionVector: {}, membership: [], digest: String(source.calls) };
    },
  };
  return source;
}

describe('cachedStatus', () => {
  it('reuses a status for minAgeMs, then recomputes it', () => {
    let now = 0;
    const source = countingSource();
    const cached = cachedStatus(source, { minAgeMs: 1_000, now: () => now });
    expect(cached.status().digest).toBe('1');
    now = 999;
    expect(cached.status().digest).toBe('1');
    now = 1_000;
    expect(cached.status().digest).toBe('2');
    expect(source.calls).toBe(2);
  });

  it('keeps an expensive status longer, in proportion to its cost', () => {
    let now = 0;
    const source = countingSource(10);
    const cached = cachedStatus(source, { minAgeMs: 50, now: () => now });
    cached.status();
    // 10 ms of work → reused for at least 200 ms, well past minAgeMs.
    now = 150;
    cached.status();
    expect(source.calls).toBe(1);
    now = 60_000;
    cached.status();
    expect(source.calls).toBe(2);
  });
});
