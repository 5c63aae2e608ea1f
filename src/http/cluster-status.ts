/**
 * The cluster status of a node without replication (the types are in src/cluster-status.ts;
 * a replicating node's status comes from `Replicator.clusterStatus`). The HTTP tests serve it.
 */
import type { ClusterStatusSource, NodeInfo } from '../cluster-status.js';
import type { Store } from '../store/store.js';

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
