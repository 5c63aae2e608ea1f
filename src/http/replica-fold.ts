/**
 * Bounded per-replica breakdowns on the wire (issue 14: after 826 kill -9 restarts, each with a
 * new replica id, a live-feed update of one page was 30.7 KB and `/api/cluster` 31 KB). Past
 * MAX_SHOWN_REPLICAS ids, those no member of the cluster claims any more (ids of earlier runs,
 * restores, crashes) are folded into one entry; members' own ids are always shown. At or below
 * the threshold nothing changes, so small clusters keep the exact shape. `GET /api/cluster?replicas=all`
 * gives the full breakdown.
 */
import type { ClusterStatus } from '../cluster-status.js';

/** Replica ids shown one by one before the unclaimed ones are folded. */
export const MAX_SHOWN_REPLICAS = 64;
/** The key of the folded entry in a page's `replicas` (never a replica id: those are 32 hex characters). */
export const EARLIER_REPLICAS_KEY = 'earlier';

/** In `GET /api/cluster` when version-vector entries were folded: how many, and their seqs summed. */
export interface EarlierReplicas {
  readonly replicas: number;
  readonly seqs: number;
}

/** The ids the cluster claims now: this node, its peers and every member. */
export function claimedReplicas(status: ClusterStatus): Set<string> {
  const claimed = new Set<string>([status.node.replicaId]);
  for (const member of status.membership) claimed.add(member.replicaId);
  for (const peer of status.peers) if (peer.replicaId !== undefined) claimed.add(peer.replicaId);
  return claimed;
}

/** `/api/cluster` with unclaimed version-vector entries folded into `earlierReplicas` (when over the threshold). */
export function foldClusterStatus(status: ClusterStatus): ClusterStatus & { earlierReplicas?: EarlierReplicas } {
  const entries = Object.entries(status.versionVector);
  if (entries.length <= MAX_SHOWN_REPLICAS) return status;
  const claimed = claimedReplicas(status);
  const versionVector: Record<string, number> = {};
  let replicas = 0;
  let seqs = 0;
  for (const [replica, seq] of entries) {
    if (claimed.has(replica)) versionVector[replica] = seq;
    else {
      replicas++;
      seqs += seq;
    }
  }
  return replicas === 0 ? status : { ...status, versionVector, earlierReplicas: { replicas, seqs } };
}

/** A page's `replicas` breakdown with unclaimed ids summed under EARLIER_REPLICAS_KEY (when over the threshold). */
export function foldPageReplicas(replicas: Record<string, number>, claimed: () => ReadonlySet<string>): Record<string, number> {
  const ids = Object.keys(replicas);
  if (ids.length <= MAX_SHOWN_REPLICAS) return replicas;
  const known = claimed();
  const folded: Record<string, number> = {};
  let earlier = 0;
  for (const id of ids) {
    const count = replicas[id] as number;
    if (known.has(id)) folded[id] = count;
    else earlier += count;
  }
  if (earlier > 0) folded[EARLIER_REPLICAS_KEY] = earlier;
  return folded;
}
