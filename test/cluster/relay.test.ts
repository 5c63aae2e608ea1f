/**
 * Two nodes that never connect to each other converge through a third they both reach: a and b
 * list only c in PEERS, c lists nobody and accepts them. Counts and presence (membership) are
 * relayed by c.
 */
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { FAST_LIVENESS, useClusters } from '../helpers/cluster.js';
import { logLines } from '../helpers/cluster-node.js';
import { waitForConvergence } from '../helpers/cluster-waits.js';
import { clusterStatus, connectedTo, increment, incrementBatch } from '../helpers/http-client.js';
import { reportTiming } from './timing.js';

const newCluster = useClusters();

describe('nodes that cannot reach each other', () => {
  it('converge through a node both reach, and see each other in the membership', async () => {
    // Index 2 is c, the hub: a and b dial it; it dials nobody. Not a full mesh, so startNodes, not startMesh.
    const nodes = await newCluster().startNodes(3, {
      env: FAST_LIVENESS,
      names: ['a', 'b', 'c'],
      perNode: (i, addresses): Record<string, string> => (i === 2 ? {} : { PEERS: addresses[2] as string }),
    });
    const [a, b, c] = nodes;
    const [ra, rb, rc] = (await Promise.all(nodes.map(clusterStatus))).map((s) => s.node.replicaId) as [string, string, string];

    const started = performance.now();
    await Promise.all([increment(a, 'from-a', 2), increment(b, 'from-b', 3), incrementBatch(c, [{ page: 'from-c', by: 4 }])]);
    for (let i = 0; i < 20; i++) await Promise.all([increment(a, 'shared'), increment(b, 'shared', 2)]);
    const converged = await waitForConvergence(nodes);
    expect(converged.totals).toEqual({ 'from-a': 2, 'from-b': 3, 'from-c': 4, shared: 60 });

    // a shows b as a member (its presence came through c), live, while a holds no session with b.
    await eventually(async () => {
      const status = await clusterStatus(a);
      expect(status.membership.map((m) => m.name).sort()).toEqual(['a', 'b', 'c']);
      expect(status.membership.find((m) => m.name === 'b')?.live).toBe(true);
    });
    const [sa, sb, sc] = await Promise.all(nodes.map(clusterStatus));
    expect(connectedTo(sa!, rc)).toBe(true);
    expect(connectedTo(sb!, rc)).toBe(true);
    expect(connectedTo(sc!, ra) && connectedTo(sc!, rb)).toBe(true);
    expect(sa!.peers.map((p) => p.replicaId)).not.toContain(rb);
    expect(sb!.peers.map((p) => p.replicaId)).not.toContain(ra);
    // Never, not even briefly: no session between a and b ever opened (the logs say so).
    expect(logLines(a, { msg: 'peer connected', peer: 'b' })).toEqual([]);
    expect(logLines(b, { msg: 'peer connected', peer: 'a' })).toEqual([]);
    // …and both hold each other's writes in full (version vectors equal).
    expect(sa!.versionVector).toEqual(sb!.versionVector);
    expect(sa!.versionVector[rb]).toBeGreaterThan(0);
    reportTiming('relay through c', { convergeMs: performance.now() - started });
  });
});
