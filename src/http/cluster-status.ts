/**
 * What `GET /api/cluster` shows, and the narrow source the HTTP layer reads it from. A single
 * node serves `singleNodeStatus`; replication supplies a richer source with peers and membership.
 */
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
