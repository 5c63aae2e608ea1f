/** Waiting for a cluster to agree (or, for the naive scheme, to stop changing) after a phase. */
import type { Cluster } from './cluster.js';
import { waitFor } from './http-client.js';

/** How long a cluster may take to agree after the load stops. */
export const CONVERGE_TIMEOUT_MS = 60_000;
/** Poll step of the convergence check (GET /api/cluster on every node). */
export const CONVERGE_POLL_MS = 10;
/** Poll step of the naive cluster's quiet check: two equal reads this far apart. */
const QUIET_POLL_MS = 200;

/** Waits until every node's digest is equal; resolves with the ms it took. */
export async function waitConverged(cluster: Cluster, timeoutMs = CONVERGE_TIMEOUT_MS): Promise<number> {
  const started = performance.now();
  await waitFor('the cluster to converge (equal digests)', timeoutMs, async () => {
    const digests = await cluster.digests();
    return digests.every((d) => d === digests[0]) ? true : undefined;
  }, CONVERGE_POLL_MS);
  return performance.now() - started;
}

/** For the naive scheme, which may never agree: waits until no node's totals change between two reads. */
export async function waitQuiet(cluster: Cluster): Promise<void> {
  let last = '';
  await waitFor('the naive cluster to go quiet', CONVERGE_TIMEOUT_MS, async () => {
    const digests = (await cluster.digests()).join(',');
    const quiet = digests === last;
    last = digests;
    return quiet ? true : undefined;
  }, QUIET_POLL_MS);
}
