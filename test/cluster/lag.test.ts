/**
 * `lagSeqs` / `behindSeqs` in `GET /api/cluster` follow live replication, not only the periodic
 * version-vector exchange: with anti-entropy far away (60 s), two converged nodes show no lag.
 * (With three, what a peer got from the third node is only learnt from its next version vector:
 * the three-node test in convergence.test.ts sees those figures settle with anti-entropy.)
 */
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { FAST_LIVENESS, useClusters } from '../helpers/cluster.js';
import { waitForConvergence } from '../helpers/cluster-waits.js';
import { clusterStatus, increment, incrementBatch } from '../helpers/http-client.js';

/** Bound for the lag figures to settle once the counts converged (no anti-entropy round in it). */
const LAG_SETTLES_MS = 2_000;

const newCluster = useClusters();

describe('replication lag figures', () => {
  it('return to 0 after live deltas, without waiting for anti-entropy', async () => {
    const nodes = await newCluster().startMesh(2, { env: { ...FAST_LIVENESS, ANTI_ENTROPY_INTERVAL_MS: '60000' } });
    const [a, b] = nodes;
    for (let i = 0; i < 5; i++) await Promise.all([increment(a, 'home'), increment(b, 'home', 2), incrementBatch(b, [{ page: 'docs', by: 3 }])]);
    expect((await waitForConvergence(nodes)).totals).toEqual({ home: 15, docs: 15 });

    await eventually(
      async () => {
        for (const node of nodes) {
          const status = await clusterStatus(node);
          const connected = status.peers.filter((p) => p.state === 'connected');
          expect(connected).toHaveLength(1);
          for (const peer of connected) expect({ at: node.name, peer: peer.name, lag: peer.lagSeqs, behind: peer.behindSeqs }).toEqual({ at: node.name, peer: peer.name, lag: 0, behind: 0 });
        }
      },
      { timeoutMs: LAG_SETTLES_MS },
    );
  });
});
