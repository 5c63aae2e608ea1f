/**
 * A peer that goes silent without closing anything (SIGSTOP: the process freezes, the kernel
 * keeps its sockets open) is noticed by heartbeats, shown as not connected, and — once it runs
 * again (SIGCONT) — reconnects and catches up with what was counted meanwhile.
 */
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { FAST_LIVENESS, useClusters } from '../helpers/cluster.js';
import { waitForConvergence, waitForMesh } from '../helpers/cluster-waits.js';
import { clusterStatus, increment, peerAt } from '../helpers/http-client.js';
import { reportTiming } from './timing.js';

const LIVENESS = { ...FAST_LIVENESS, HEARTBEAT_INTERVAL_MS: '200', HEARTBEAT_TIMEOUT_MS: '1000' };
const HEARTBEAT_TIMEOUT_MS = Number(LIVENESS.HEARTBEAT_TIMEOUT_MS);
/** The bound the issue sets for noticing a silent peer. */
const DETECTION_BOUND_MS = 3 * HEARTBEAT_TIMEOUT_MS;

const newCluster = useClusters();

describe('a silent peer', () => {
  it('is shown not connected within 3× the heartbeat timeout, then reconnects and converges after SIGCONT', async () => {
    const nodes = await newCluster().startMesh(3, { env: LIVENESS });
    const [a, b, c] = nodes;
    await increment(c, 'before', 2);
    await waitForConvergence(nodes);

    c.pause();
    const pausedAt = performance.now();
    // While c is frozen, a and b go on counting, and still replicate between themselves.
    await Promise.all([increment(a, 'meanwhile', 3), increment(b, 'meanwhile', 4), increment(b, 'before')]);
    const detected = await Promise.all(
      [a, b].map((node) =>
        eventually(
          async () => {
            const peer = peerAt(await clusterStatus(node), c.address);
            expect(peer?.state).not.toBe('connected');
            return performance.now() - pausedAt;
          },
          { timeoutMs: DETECTION_BOUND_MS, intervalMs: 25 },
        ),
      ),
    );
    const convergedWithout = await waitForConvergence([a, b]);
    expect(convergedWithout.totals).toEqual({ before: 3, meanwhile: 7 });
    // The link between the two live nodes never dropped.
    for (const [node, other] of [
      [a, b],
      [b, a],
    ] as const) {
      expect(peerAt(await clusterStatus(node), other.address)?.state).toBe('connected');
    }

    c.resume();
    const resumedAt = performance.now();
    const reconnectMs = await waitForMesh(nodes);
    const converged = await waitForConvergence(nodes);
    expect(converged.totals).toEqual({ before: 3, meanwhile: 7 });
    // c counts again, and its views reach the others.
    await increment(c, 'after', 5);
    expect((await waitForConvergence(nodes)).totals).toEqual({ before: 3, meanwhile: 7, after: 5 });
    reportTiming('silent peer', {
      detectedByAMs: detected[0] as number,
      detectedByBMs: detected[1] as number,
      reconnectAfterSigcontMs: reconnectMs,
      convergedAfterSigcontMs: performance.now() - resumedAt,
    });
  });
});
