/**
 * SIGTERM under load: the node drains, exits 0, and announces its departure — its peers show it
 * gone and its membership entry disappears from every other node at once (not after the 30 s
 * awareness timeout). What it acknowledged before going is kept by the others.
 */
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { FAST_LIVENESS, useClusters } from '../helpers/cluster.js';
import { logLines } from '../helpers/cluster-node.js';
import { waitForConvergence } from '../helpers/cluster-waits.js';
import { clusterStatus, peerAt } from '../helpers/http-client.js';
import { startLoad, sum } from '../helpers/load.js';
import { reportTiming } from './timing.js';

/** y-protocols forgets a silent member after 30 s; the departure must show far sooner. */
const DEPARTURE_BOUND_MS = 5_000;

const newCluster = useClusters();

describe('graceful stop', () => {
  it('exits 0 under load, and the others drop it from their peers and membership at once', async () => {
    const nodes = await newCluster().startMesh(3, { env: FAST_LIVENESS });
    const [a, b, c] = nodes;
    const leaving = (await clusterStatus(c)).node.replicaId;
    for (const node of [a, b]) {
      await eventually(async () => expect((await clusterStatus(node)).membership.map((m) => m.replicaId)).toContain(leaving));
    }

    const load = startLoad(nodes, { pages: ['home', 'docs'], clientsPerNode: 3 });
    await eventually(() => expect(load.answered).toBeGreaterThanOrEqual(100), { timeoutMs: 20_000 });
    const stopAt = performance.now();
    const exit = await c.terminate();
    const exitMs = performance.now() - stopAt;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(logLines(c, { msg: 'stopped' })).toHaveLength(1);

    const gone = await Promise.all(
      [a, b].map((node) =>
        eventually(
          async () => {
            const status = await clusterStatus(node);
            expect(peerAt(status, c.address)?.state).not.toBe('connected');
            expect(status.peers.filter((p) => p.replicaId === leaving && p.state === 'connected')).toEqual([]);
            expect(status.membership.map((m) => m.replicaId)).not.toContain(leaving);
            return performance.now() - stopAt;
          },
          { timeoutMs: DEPARTURE_BOUND_MS, intervalMs: 25 },
        ),
      ),
    );
    await load.stop();
    // c's clients ended when it stopped; a's and b's never failed.
    const unexpected = load.errors.filter((e) => !e.startsWith(`${c.name}:`));
    expect(unexpected, unexpected.join('\n')).toEqual([]);

    const converged = await waitForConvergence([a, b]);
    for (const [page, acked] of Object.entries(load.acked)) expect(converged.totals[page] ?? 0).toBeGreaterThanOrEqual(acked);
    // c drained before closing: every view it answered reached the others, and nothing more.
    expect(sum(converged.totals)).toBe(sum(load.acked));
    reportTiming('graceful stop', { exitMs, goneOnAMs: gone[0] as number, goneOnBMs: gone[1] as number, acked: sum(load.acked) });
  });
});
