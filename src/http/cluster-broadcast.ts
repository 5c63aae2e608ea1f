/**
 * The live feed's cluster updates: `{"type":"cluster","cluster":<the status as the page shows it,
 * see public-status.ts: no addresses, errors or lag>}`, sent to
 * the clients that asked for them (`cluster=1`) when something shown changed, polled at most once
 * per interval (the tick).
 */
import { foldClusterStatus } from './replica-fold.js';
import type { Log } from '../log.js';
import type { ClusterStatus, ClusterStatusSource } from '../cluster-status.js';
import { pageStatus } from './public-status.js';
import { textFrame } from './ws-frame.js';

export interface ClusterSubscriber {
  clusterChanged(): void;
}

export interface ClusterBroadcastOptions {
  readonly source: ClusterStatusSource;
  readonly log: Log;
}

export class ClusterBroadcast<S extends ClusterSubscriber> {
  private readonly source: ClusterStatusSource;
  private readonly log: Log;
  private readonly subscribers = new Set<S>();
  private latest: Buffer | undefined;
  private latestKey: string | undefined;

  constructor(options: ClusterBroadcastOptions) {
    // Polled every intervalMs; a status costs ~0.1 ms even at 300,000 slots (the digest is O(1)).
    this.source = options.source;
    this.log = options.log;
  }

  get size(): number {
    return this.subscribers.size;
  }

  add(subscriber: S): void {
    this.subscribers.add(subscriber);
    if (this.latest === undefined) this.refresh();
  }

  remove(subscriber: S): void {
    this.subscribers.delete(subscriber);
    if (this.subscribers.size === 0) {
      this.latest = undefined;
      this.latestKey = undefined;
    }
  }

  /** The latest cluster message (a framed text message), once there is one. */
  message(): Buffer | undefined {
    return this.latest;
  }

  /** Tells every subscriber when something shown changed since last time. */
  tick(): void {
    if (this.subscribers.size === 0) return;
    if (!this.refresh()) return;
    for (const subscriber of this.subscribers) subscriber.clusterChanged();
  }

  /** Rebuilds the message; true when what it shows changed. */
  private refresh(): boolean {
    let status: ClusterStatus;
    try {
      status = this.source.status();
    } catch (error) {
      this.log.warn({ err: error }, 'cluster status failed');
      return false;
    }
    status = pageStatus(status);
    const key = JSON.stringify(shownOf(status));
    if (key === this.latestKey) return false;
    this.latestKey = key;
    // Framed once (ws-frame.ts): every subscriber is written the same bytes.
    this.latest = textFrame(JSON.stringify({ type: 'cluster', cluster: foldClusterStatus(status) }));
    return true;
  }
}

/**
 * What a cluster update is sent for: peer states and lag, membership, the version vector, the
 * digest. Byte counters and heartbeat times change every second and alone do not warrant one.
 */
function shownOf(status: ClusterStatus): unknown {
  return {
    node: status.node,
    peers: status.peers.map((p) => [p.address, p.replicaId, p.name, p.state, p.lagSeqs, p.behindSeqs, p.lastError, p.lastSyncAt !== undefined]),
    membership: status.membership,
    versionVector: status.versionVector,
    digest: status.digest,
  };
}
