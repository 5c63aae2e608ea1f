/** Breakdowns bounded whatever the number of replica ids: unclaimed ids fold past the threshold. */
import { describe, expect, it } from 'vitest';
import type { ClusterStatus } from '../../src/cluster-status.js';
import { claimedReplicas, EARLIER_REPLICAS_KEY, foldClusterStatus, foldPageReplicas, MAX_SHOWN_REPLICAS } from '../../src/http/replica-fold.js';

const id = (i: number) => i.toString(16).padStart(32, '0');

function status(replicaIds: number): ClusterStatus {
  const versionVector: Record<string, number> = {};
  for (let i = 0; i < replicaIds; i++) versionVector[id(i)] = i + 1;
  return {
    node: { name: 'a', replicaId: id(0), address: 'a:1', version: '0', startedAt: '2026-01-01T00:00:00.000Z' },
    peers: [{ address: 'b:1', replicaId: id(1), state: 'connected' }],
    versionVector,
    membership: [{ name: 'c', replicaId: id(2), live: true }],
    digest: '0'.repeat(32),
  };
}

describe('replica folding', () => {
  it('leaves a status with up to MAX_SHOWN_REPLICAS ids exactly as it is', () => {
    const small = status(MAX_SHOWN_REPLICAS);
    expect(foldClusterStatus(small)).toBe(small);
  });

  it('folds the version vector entries nobody claims past the threshold, keeping this node, peers and members', () => {
    const big = status(827);
    const folded = foldClusterStatus(big);
    expect(folded.versionVector).toEqual({ [id(0)]: 1, [id(1)]: 2, [id(2)]: 3 });
    let seqs = 0;
    for (let i = 3; i < 827; i++) seqs += i + 1;
    expect(folded.earlierReplicas).toEqual({ replicas: 824, seqs });
    expect(JSON.stringify(folded).length).toBeLessThan(2_000);
    expect(folded.digest).toBe(big.digest);
  });

  it('sums a page breakdown of unclaimed ids into one "earlier" entry past the threshold', () => {
    const replicas: Record<string, number> = {};
    for (let i = 0; i < 827; i++) replicas[id(i)] = 2;
    const claimed = claimedReplicas(status(3));
    expect(foldPageReplicas(replicas, () => claimed)).toEqual({ [id(0)]: 2, [id(1)]: 2, [id(2)]: 2, [EARLIER_REPLICAS_KEY]: 824 * 2 });
    const few = { [id(5)]: 1, [id(6)]: 4 };
    expect(foldPageReplicas(few, () => claimed)).toBe(few);
  });
});
