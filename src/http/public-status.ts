/**
 * What the public port shows of the cluster (`GET /api/cluster` without an admin token, the page,
 * the live feed): names, regions and states. The full status (src/cluster-status.ts) stays on
 * the cluster port and behind ADMIN_TOKENS.
 */
import type { ClusterStatus, PeerStatus } from '../cluster-status.js';

/** How a peer that never told its name is shown (its address is private). */
export const UNNAMED_PEER = 'unnamed peer';

/** How a node shows to the public: `self`, `live` (in session or heard of lately), `connecting`, `unreachable`. */
export type PublicNodeState = 'self' | 'live' | 'connecting' | 'unreachable';

export interface PublicNodeStatus {
  readonly name: string;
  readonly region?: string;
  readonly state: PublicNodeState;
}

/**
 * What the public port shows of the cluster (`GET /api/cluster` without an admin token, the page,
 * the live feed): names, regions and states. Never addresses, replica ids, versions, lag or error
 * text: those tell an attacker where the private network is and what fails on it.
 */
export interface PublicClusterStatus {
  /** This node first, then the others by name. */
  readonly nodes: readonly PublicNodeStatus[];
}

/** Another node as both public lists show it (this status and the page's node list, page.ts). */
export interface ListedNode {
  readonly name: string;
  /** A member's region (peers that are not members have none shown). */
  readonly region?: string;
  readonly replicaId?: string;
  readonly state: Exclude<PublicNodeState, 'self'>;
  /** The link to it, when there is one: a member's best link, or the peer itself. */
  readonly peer?: PeerStatus;
}

/**
 * The other nodes of `status`, each once, by name: every member (live, or unreachable when its
 * direct link is down), and peers that are not members (yet, or any more: a stopped node leaves
 * the membership but stays a peer this node keeps dialling). A peer that never answered and has
 * no error yet is `connecting`; one with no name shows as UNNAMED_PEER.
 */
export function listedNodes(status: ClusterStatus): ListedNode[] {
  const peerByReplica = new Map<string, PeerStatus>();
  for (const peer of status.peers) {
    if (peer.replicaId === undefined) continue;
    const seen = peerByReplica.get(peer.replicaId);
    // One replica can be a peer twice (dialled and dialling): the connected link tells most.
    if (seen === undefined || (seen.state !== 'connected' && peer.state === 'connected')) peerByReplica.set(peer.replicaId, peer);
  }
  const shown = new Set<string>([status.node.replicaId]);
  const others: ListedNode[] = [];
  for (const member of status.membership) {
    if (shown.has(member.replicaId)) continue;
    shown.add(member.replicaId);
    const peer = peerByReplica.get(member.replicaId);
    others.push({
      name: member.name,
      ...(member.region !== undefined ? { region: member.region } : {}),
      replicaId: member.replicaId,
      state: member.live ? 'live' : 'unreachable',
      ...(peer !== undefined ? { peer } : {}),
    });
  }
  const shownAddresses = new Set<string>();
  for (const peer of status.peers) {
    if (peer.state === 'self') continue;
    if (peer.replicaId !== undefined ? shown.has(peer.replicaId) : shownAddresses.has(peer.address)) continue;
    if (peer.replicaId !== undefined) shown.add(peer.replicaId);
    shownAddresses.add(peer.address);
    const state = peer.state === 'connected' ? 'live' : peer.replicaId === undefined && peer.lastError === undefined ? 'connecting' : 'unreachable';
    others.push({ name: peer.name ?? UNNAMED_PEER, ...(peer.replicaId !== undefined ? { replicaId: peer.replicaId } : {}), state, peer });
  }
  others.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return others;
}

/** The public view of `status`: this node, then the others (listedNodes). */
export function publicClusterStatus(status: ClusterStatus): PublicClusterStatus {
  const self: PublicNodeStatus = { name: status.node.name, ...(status.node.region !== undefined ? { region: status.node.region } : {}), state: 'self' };
  const others = listedNodes(status).map((node): PublicNodeStatus => ({ name: node.name, ...(node.region !== undefined ? { region: node.region } : {}), state: node.state }));
  return { nodes: [self, ...others] };
}

/**
 * The status as the page and its live feed get it: the shape of the full status (the page's
 * script reads it) with everything private taken out: no addresses (peers get a stand-in key, so
 * the script can still tell unnamed ones apart), no errors and no lag. Replica ids, the version
 * vector and the digest stay: they derive from the counts, which are public, and the per-node
 * breakdown of a page's count is keyed by replica id.
 */
export function pageStatus(status: ClusterStatus): ClusterStatus {
  const node = status.node;
  return {
    node: { name: node.name, replicaId: node.replicaId, address: '', ...(node.region !== undefined ? { region: node.region } : {}), version: node.version, startedAt: '' },
    peers: status.peers.map((peer, i) => ({
      address: `peer-${i + 1}`,
      ...(peer.replicaId !== undefined ? { replicaId: peer.replicaId } : {}),
      ...(peer.name !== undefined ? { name: peer.name } : {}),
      state: peer.state,
      // Only whether an error happened: the script shows "connecting" until one did.
      ...(peer.lastError !== undefined ? { lastError: 'unreachable' } : {}),
    })),
    versionVector: status.versionVector,
    membership: status.membership.map((member) => ({
      name: member.name,
      replicaId: member.replicaId,
      ...(member.region !== undefined ? { region: member.region } : {}),
      live: member.live,
    })),
    digest: status.digest,
  };
}
