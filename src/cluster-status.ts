/**
 * What `GET /api/cluster` shows, as plain JSON types: this node, its peers, its version vector,
 * the membership gossiped by awareness, and the digest. A leaf module (it imports nothing):
 * replication builds a `ClusterStatus`, http serves and renders it, and neither imports the other.
 * Times are ISO 8601 strings; a field without a value is left out, never `null`.
 */

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

/** How this node finds its peers (private view only). */
export interface DiscoveryInfo {
  /** DISCOVERY_DNS, when set. */
  readonly dns?: string;
  /** PEERS, as configured. */
  readonly peers: readonly string[];
  /** ISO time of the last lookup, answered or not. */
  readonly lastLookupAt?: string;
  readonly lastSuccessAt?: string;
  /** The peer addresses of the last successful lookup. */
  readonly answers?: readonly string[];
  /** Why the last lookup failed, or that the name resolved to nothing. */
  readonly lastError?: string;
}

export interface ClusterStatus {
  readonly node: NodeInfo;
  readonly peers: readonly PeerStatus[];
  /** replica id → highest seq held in full. */
  readonly versionVector: Readonly<Record<string, number>>;
  readonly membership: readonly MemberStatus[];
  /** Digest of all counts: equal on nodes that have converged. */
  readonly digest: string;
  /** Discovery's state, when this node has peers to find. */
  readonly discovery?: DiscoveryInfo;
}

export interface ClusterStatusSource {
  status(): ClusterStatus;
}
