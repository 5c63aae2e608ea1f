/**
 * A node back from a long outage (its peers' redial backoff grown to seconds) is shown connected
 * by its peers as soon as it is back — it dials them at start — not when their backoff ends.
 */
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { FAST_LIVENESS, useClusters } from '../helpers/cluster.js';
import { waitForConvergence } from '../helpers/cluster-waits.js';
import { clusterStatus, increment, peerAt } from '../helpers/http-client.js';
import { reportTiming } from './timing.js';

/** Long enough for the peers' backoff (100 ms doubling, jittered) to pass a few seconds. */
const OUTAGE_MS = 6_000;
/** From the restarted node listening to its peers showing its address connected. */
const REJOIN_BOUND_MS = 1_500;

const newCluster = useClusters();

describe('a node back after a long outage', () => {
  it('is shown connected by its peers at once, under its new replica id', async () => {
    const nodes = await newCluster().startMesh(3, { env: FAST_LIVENESS });
    const [a, b, c] = nodes;
    await increment(c, 'home', 3);
    await waitForConvergence(nodes);

    await c.kill9();
    const killedAt = performance.now();
    // The peers keep trying to dial c meanwhile; wait out the outage by watching them fail.
    await eventually(
      async () => {
        expect(peerAt(await clusterStatus(a), c.address)?.state).toBe('disconnected');
        expect(performance.now() - killedAt).toBeGreaterThanOrEqual(OUTAGE_MS);
      },
      { timeoutMs: OUTAGE_MS * 2, intervalMs: 250 },
    );
    await c.start();
    const listeningAt = performance.now();
    const rejoin = await Promise.all(
      [a, b].map((node) =>
        eventually(
          async () => {
            expect(peerAt(await clusterStatus(node), c.address)?.state).toBe('connected');
            return performance.now() - listeningAt;
          },
          { timeoutMs: REJOIN_BOUND_MS, intervalMs: 25 },
        ),
      ),
    );
    await increment(a, 'home');
    expect((await waitForConvergence(nodes)).totals).toEqual({ home: 4 });
    reportTiming('rejoin after outage', { outageMs: listeningAt - killedAt, aShowsConnectedMs: rejoin[0] as number, bShowsConnectedMs: rejoin[1] as number });
  });
});
