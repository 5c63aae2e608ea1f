/**
 * Waiting for a cluster to agree, polled over each node's HTTP API: every session settled
 * (`waitForMesh`), every node at the same digest and totals (`waitForConvergence`). Both throw
 * past their deadline with what still differed.
 */
import type { ClusterNode } from './cluster-node.js';
import { eventually } from './eventually.js';
import { clusterStatus, connectedTo, totals } from './http-client.js';

/** Default bound for waitForMesh and waitForConvergence. */
export const CONVERGENCE_TIMEOUT_MS = 15_000;
/** Poll step of both waits. */
const POLL_INTERVAL_MS = 25;

/**
 * Waits until every node has an open session with every other and every address it dials is
 * settled (connected, or itself): no dial still in flight that could yet replace a session as a
 * duplicate. Resolves with the ms it took.
 */
export async function waitForMesh(nodes: readonly ClusterNode[], timeoutMs = CONVERGENCE_TIMEOUT_MS): Promise<number> {
  const started = performance.now();
  await eventually(
    async () => {
      const statuses = await Promise.all(nodes.map(clusterStatus));
      for (const [i, status] of statuses.entries()) {
        const unsettled = status.peers.filter((p) => p.state !== 'connected' && p.state !== 'self');
        if (unsettled.length > 0) throw new Error(`${nodes[i]?.name} has unsettled peers: ${JSON.stringify(unsettled)}`);
        for (const [j, other] of statuses.entries()) {
          if (i !== j && !connectedTo(status, other.node.replicaId)) throw new Error(`${nodes[i]?.name} is not connected to ${nodes[j]?.name}`);
        }
      }
    },
    { timeoutMs, intervalMs: POLL_INTERVAL_MS },
  );
  return performance.now() - started;
}

export interface Convergence {
  /** The page totals every node agrees on. */
  readonly totals: Record<string, number>;
  readonly digest: string;
  /** How long it took from the call. */
  readonly ms: number;
}

/**
 * Waits until every node shows the same digest and the same page totals (read after the digest
 * matched, and checked again, so a change landing between the two reads is not mistaken for
 * agreement). Throws past the deadline with what still differed.
 */
export async function waitForConvergence(nodes: readonly ClusterNode[], options: { timeoutMs?: number } = {}): Promise<Convergence> {
  const started = performance.now();
  const result = await eventually(
    async () => {
      const before = await Promise.all(nodes.map(clusterStatus));
      const digests = before.map((s) => s.digest);
      if (new Set(digests).size !== 1) throw new Error(`digests differ: ${nodes.map((n, i) => `${n.name}=${digests[i]?.slice(0, 8)}`).join(' ')}`);
      const all = await Promise.all(nodes.map(totals));
      const first = JSON.stringify(all[0]);
      for (const [i, t] of all.entries()) {
        if (JSON.stringify(t) !== first) throw new Error(`totals differ: ${nodes[0]?.name}=${first} ${nodes[i]?.name}=${JSON.stringify(t)}`);
      }
      const after = await Promise.all(nodes.map(clusterStatus));
      if (after.some((s) => s.digest !== digests[0])) throw new Error('digest moved while reading totals');
      return { totals: all[0] as Record<string, number>, digest: digests[0] as string };
    },
    { timeoutMs: options.timeoutMs ?? CONVERGENCE_TIMEOUT_MS, intervalMs: POLL_INTERVAL_MS },
  );
  return { ...result, ms: performance.now() - started };
}
