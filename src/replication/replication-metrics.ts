/**
 * Replication metrics in Prometheus form, registered on the node's own registry (never the
 * global one, so two nodes in one process do not collide).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface ReplicationMetrics {
  frameSent(type: string, bytes: number): void;
  frameReceived(type: string, bytes: number): void;
  peersConnected(count: number): void;
  deltaSkipped(): void;
  syncRound(direction: 'sent' | 'received'): void;
  merged(slots: number, seconds: number): void;
  badFrame(): void;
  peerRejected(code: string): void;
  heartbeatTimeout(): void;
  identityMinted(): void;
  /** Work for one peer threw (a handler, a timer's part): that session was closed. */
  peerFailure(): void;
  /** Slots of a new replica id dropped: the peer's source was over its new-id budget. */
  replicaRefused(): void;
  /** A merge took a page's total to 2^53-1 (MAX_TOTAL): it reads that and takes no more increments. */
  pageSaturated(): void;
  /** Received slots (or an empty frame: 0) dropped unmerged because the store refuses writes. */
  mergeDropped(slots: number): void;
  /** Entries of a peer's presence update ignored for a bound (`size`: state too large; `cap`: no room). */
  presenceIgnored(reason: 'size' | 'cap', entries: number): void;
}

export const noMetrics: ReplicationMetrics = {
  frameSent: () => {},
  frameReceived: () => {},
  peersConnected: () => {},
  deltaSkipped: () => {},
  syncRound: () => {},
  merged: () => {},
  badFrame: () => {},
  peerRejected: () => {},
  heartbeatTimeout: () => {},
  identityMinted: () => {},
  peerFailure: () => {},
  replicaRefused: () => {},
  pageSaturated: () => {},
  mergeDropped: () => {},
  presenceIgnored: () => {},
};

/**
 * `prefix` is the node's one metric prefix (metrics.ts METRIC_PREFIX), so everything it exports
 * shares it.
 */
export function createReplicationMetrics(registry: Registry, prefix = ''): ReplicationMetrics {
  const registers = [registry];
  const frames = new Counter({ name: `${prefix}replication_frames_total`, help: 'Peer frames by direction and message type', labelNames: ['direction', 'type'], registers });
  const bytes = new Counter({ name: `${prefix}replication_bytes_total`, help: 'Peer frame bytes by direction and message type', labelNames: ['direction', 'type'], registers });
  const peers = new Gauge({ name: `${prefix}replication_peers_connected`, help: 'Peers with an open, authenticated session', registers });
  const skipped = new Counter({ name: `${prefix}replication_deltas_skipped_total`, help: 'Deltas not pushed because the peer send buffer was over its bound', registers });
  const rounds = new Counter({ name: `${prefix}replication_sync_rounds_total`, help: 'Sync answers sent and completed rounds received', labelNames: ['direction'], registers });
  const batch = new Histogram({ name: `${prefix}replication_merge_batch_slots`, help: 'Slots per merge transaction', buckets: [1, 4, 16, 64, 256, 1000, 4000], registers });
  const duration = new Histogram({ name: `${prefix}replication_merge_duration_seconds`, help: 'Duration of one merge transaction', buckets: [0.0001, 0.0005, 0.001, 0.005, 0.02, 0.1], registers });
  const badFrames = new Counter({ name: `${prefix}replication_bad_frames_total`, help: 'Frames that failed validation (the connection was closed)', registers });
  const rejected = new Counter({ name: `${prefix}replication_rejects_total`, help: 'Handshakes refused, by reason', labelNames: ['code'], registers });
  const timeouts = new Counter({ name: `${prefix}replication_heartbeat_timeouts_total`, help: 'Sessions closed because the peer went silent', registers });
  const minted = new Counter({ name: `${prefix}replication_identity_minted_total`, help: 'Replica ids minted because a peer proved this one went back in time', registers });
  const failures = new Counter({ name: `${prefix}replication_peer_failures_total`, help: 'Peer sessions closed because work for them threw (the node kept serving)', registers });
  const refusedIds = new Counter({ name: `${prefix}replication_replicas_refused_total`, help: 'Slots of new replica ids dropped because the peer host was over its new-id budget', registers });
  const saturated = new Counter({ name: `${prefix}replication_pages_saturated_total`, help: 'Pages whose total merged slots took to 2^53-1 (capped there; increments refused)', registers });
  const dropped = new Counter({ name: `${prefix}replication_merges_dropped_total`, help: 'Received merges (frames) dropped unmerged because the store refuses writes (file gone, disk full)', registers });
  const droppedSlots = new Counter({ name: `${prefix}replication_merge_dropped_slots_total`, help: 'Received slots dropped unmerged because the store refuses writes', registers });
  const presenceIgnored = new Counter({
    name: `${prefix}replication_presence_ignored_total`,
    help: 'Entries of peers\' presence updates ignored for a bound, by reason (size: a state over 2,048 bytes; cap: no room under 2,048 entries)',
    labelNames: ['reason'],
    registers,
  });
  return {
    frameSent: (type, n) => {
      frames.inc({ direction: 'sent', type });
      bytes.inc({ direction: 'sent', type }, n);
    },
    frameReceived: (type, n) => {
      frames.inc({ direction: 'received', type });
      bytes.inc({ direction: 'received', type }, n);
    },
    peersConnected: (count) => peers.set(count),
    deltaSkipped: () => skipped.inc(),
    syncRound: (direction) => rounds.inc({ direction }),
    merged: (slots, seconds) => {
      batch.observe(slots);
      duration.observe(seconds);
    },
    badFrame: () => badFrames.inc(),
    peerRejected: (code) => rejected.inc({ code }),
    heartbeatTimeout: () => timeouts.inc(),
    identityMinted: () => minted.inc(),
    peerFailure: () => failures.inc(),
    replicaRefused: () => refusedIds.inc(),
    pageSaturated: () => saturated.inc(),
    mergeDropped: (slots) => {
      dropped.inc();
      droppedSlots.inc(slots);
    },
    presenceIgnored: (reason, entries) => presenceIgnored.inc({ reason }, entries),
  };
}
