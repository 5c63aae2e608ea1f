/**
 * What `GET /api/cluster` shows, and the narrow source the HTTP layer reads it from. A single
 * node serves `singleNodeStatus`; replication supplies a richer source with peers and membership.
 */
import { vectorToObject } from '../crdt/version-vector.js';
import type { ReplicationStatus } from '../replication/replicator.js';
import type { Store } from '../store/store.js';

export interface NodeInfo {
  readonly name: string;
  readonly replicaId: string;
  /** `host:port` where peers reach this node. */
  readonly address: string;
  readonly region?: string;
  readonly version: string;
  /** ISO 8601 time the node started. */
  readonly startedAt: string;
}

export type PeerState = 'connected' | 'connecting' | 'disconnected' | 'self';

export interface PeerStatus {
  readonly address: string;
  readonly replicaId?: string;
  readonly name?: string;
  readonly state: PeerState;
  readonly direction?: 'inbound' | 'outbound';
  /** ISO time of the last state change. */
  readonly since?: string;
  /** ISO time the last sync with this peer completed. */
  readonly lastSyncAt?: string;
  /** How far behind the peer is: seqs this node holds that the peer lacked at its last version vector. */
  readonly lagSeqs?: number;
  /** How far behind this node is: seqs the peer held at its last version vector that this node lacks. */
  readonly behindSeqs?: number;
  /** Why the last connection attempt or session ended, while not connected. */
  readonly lastError?: string;
  readonly bytesSent?: number;
  readonly bytesReceived?: number;
}

export interface MemberStatus {
  readonly name: string;
  readonly replicaId: string;
  readonly address?: string;
  readonly region?: string;
  readonly version?: string;
  readonly startedAt?: string;
  readonly live: boolean;
}

export interface ClusterStatus {
  readonly node: NodeInfo;
  readonly peers: readonly PeerStatus[];
  /** replica id → highest seq held in full. */
  readonly versionVector: Readonly<Record<string, number>>;
  readonly membership: readonly MemberStatus[];
  /** Digest of all counts: equal on nodes that have converged. */
  readonly digest: string;
}

export interface ClusterStatusSource {
  status(): ClusterStatus;
}

/** Status of a node without replication: no peers, itself as the only member. */
export function singleNodeStatus(store: Store, describe: () => Omit<NodeInfo, 'replicaId'>): ClusterStatusSource {
  return {
    status() {
      const node: NodeInfo = { ...describe(), replicaId: store.replicaId };
      return {
        node,
        peers: [],
        versionVector: Object.fromEntries(store.versionVector()),
        membership: [
          {
            name: node.name,
            replicaId: node.replicaId,
            address: node.address,
            ...(node.region !== undefined ? { region: node.region } : {}),
            version: node.version,
            startedAt: node.startedAt,
            live: true,
          },
        ],
        digest: store.digest(),
      };
    },
  };
}

/**
 * Status of a replicating node: its peers (connected or not, since when, last sync, lag) and the
 * membership gossiped by awareness. A member is `live` while its awareness state is fresh, unless
 * this node dials it directly and that link is down (then it shows as unreachable at once rather
 * than after the 30 s awareness timeout).
 */
export function replicationStatus(
  store: Store,
  replication: { status(): ReplicationStatus },
  describe: () => Omit<NodeInfo, 'replicaId'>,
): ClusterStatusSource {
  const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
  return {
    status() {
      const node: NodeInfo = { ...describe(), replicaId: store.replicaId };
      const replication_ = replication.status();
      const peers: PeerStatus[] = replication_.peers.map((peer) => dropUndefined({ ...peer, since: iso(peer.since), lastSyncAt: iso(peer.lastSyncAt) }));
      const connected = new Set(peers.filter((p) => p.state === 'connected').map((p) => p.replicaId));
      const down = new Set(peers.filter((p) => p.state !== 'connected' && p.replicaId !== undefined).map((p) => p.replicaId));
      const membership: MemberStatus[] = replication_.membership.map((member) =>
        dropUndefined({
          name: member.name,
          replicaId: member.replicaId,
          address: member.address,
          region: member.region,
          version: member.version,
          startedAt: iso(member.startedAt),
          live: member.local || connected.has(member.replicaId) || !down.has(member.replicaId),
        }),
      );
      return { node, peers, versionVector: vectorToObject(store.versionVector()), membership, digest: store.digest() };
    },
  };
}

function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
