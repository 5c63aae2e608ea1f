/**
 * The addresses discovery gives us, and what became of dialling each: connecting, connected,
 * disconnected (redialled with capped, jittered backoff), `self` (this very node: never dialled
 * again) or `covered` (its peer is already connected through another session, so it stands
 * aside until that session ends). The directory dials; the replicator makes sessions of the
 * connections and tells the directory when one opens or closes.
 *
 * Only one side dials (protocol 4, PROTOCOL.md §5): once a target's replica id is known (from a
 * handshake), the node with the lower replica id redials at once and the other waits
 * `ONE_SIDE_GRACE_MS` longer, dialling only if no session to that peer opened meanwhile — so a
 * pair that lost its link opens one connection again, not two of which one is refused, and a
 * node the lower side cannot reach (a one-way route, a peer list without it) is still dialled.
 * A target whose id is not known yet (first contact) is dialled at once from both sides.
 */
import type { ReplicaId } from '../ids.js';
import type { Log } from '../log.js';
import type { TimerHandle, Timers } from '../timers.js';
import type { Connection, Transport } from '../transport/transport.js';
import { backoffDelayMs, type BackoffOptions } from './backoff.js';
import { type PeerSession, refusedByPeer } from './peer-session.js';

/** How much longer the side with the higher replica id waits before it redials (see above). */
export const ONE_SIDE_GRACE_MS = 3_000;

/** An address discovery gave us, and what became of dialling it. */
export interface DialTarget {
  readonly address: string;
  state: 'connecting' | 'connected' | 'disconnected' | 'self' | 'covered';
  session: PeerSession | undefined;
  replica: ReplicaId | undefined;
  name: string | undefined;
  attempts: number;
  timer: TimerHandle | undefined;
  since: number;
  lastError: string | undefined;
  removed: boolean;
}

export interface PeerDirectoryOptions {
  readonly transport: Pick<Transport, 'dial'>;
  readonly timers: Timers;
  /** Float in [0, 1), for backoff jitter. */
  readonly random: () => number;
  readonly backoff: BackoffOptions;
  readonly log: Log;
  /** A dialled connection is up: start a session on it (which calls `sessionStarted`). */
  readonly connected: (connection: Connection, target: DialTarget) => void;
  /** True while an open session to `replica` exists: its other addresses stand aside. */
  readonly covers: (replica: ReplicaId) => boolean;
  /** This node's replica id, for the one-side rule; undefined: both sides redial at once. */
  readonly localReplica?: () => ReplicaId;
  readonly oneSideGraceMs?: number;
}

export class PeerDirectory {
  private readonly byAddress = new Map<string, DialTarget>();
  private stopped = false;

  constructor(private readonly options: PeerDirectoryOptions) {}

  targets(): IterableIterator<DialTarget> {
    return this.byAddress.values();
  }

  /** Addresses being dialled. */
  get size(): number {
    return this.byAddress.size;
  }

  /** The peers to dial (from static config or discovery): new ones are dialled, gone ones dropped. */
  setPeers(addresses: readonly string[]): void {
    if (this.stopped) return;
    const wanted = new Set(addresses);
    for (const [address, target] of this.byAddress) {
      if (wanted.has(address)) continue;
      target.removed = true;
      if (target.timer !== undefined) this.options.timers.clearTimeout(target.timer);
      target.session?.close('peer removed by discovery');
      this.byAddress.delete(address);
      this.options.log.info({ address }, 'peer removed');
    }
    for (const address of wanted) {
      if (this.byAddress.has(address)) continue;
      const target: DialTarget = {
        address,
        state: 'disconnected',
        session: undefined,
        replica: undefined,
        name: undefined,
        attempts: 0,
        timer: undefined,
        since: this.options.timers.now(),
        lastError: undefined,
        removed: false,
      };
      this.byAddress.set(address, target);
      this.options.log.info({ address }, 'peer added');
      this.dial(target);
    }
  }

  /** Stops dialling and clears every backoff timer. */
  stop(): void {
    this.stopped = true;
    for (const target of this.byAddress.values()) if (target.timer !== undefined) this.options.timers.clearTimeout(target.timer);
  }

  /** A session started on the target's connection; set before any of its frames is handled. */
  sessionStarted(target: DialTarget, session: PeerSession): void {
    target.session = session;
  }

  /** The session's handshake completed: the target learns whom it reaches. */
  identified(target: DialTarget | undefined, peer: { replica: ReplicaId; name: string }): void {
    if (target === undefined) return;
    target.replica = peer.replica;
    target.name = peer.name;
  }

  /** The session was kept as the one connection to `peer` (dialled here or by the peer). */
  sessionOpened(target: DialTarget | undefined, peer: { replica: ReplicaId; name: string }): void {
    if (target !== undefined) {
      target.state = 'connected';
      target.attempts = 0;
      target.since = this.options.timers.now();
      target.lastError = undefined;
    }
    this.redialNow(peer);
  }

  /** The session on the target's connection ended: note why, and redial unless it was this node. */
  sessionClosed(target: DialTarget, session: PeerSession, reason: string, wasOpen: boolean): void {
    if (target.session !== session) return;
    target.session = undefined;
    const ending = session.ending;
    if (ending?.inHandshake === true) {
      if (ending.code === 'self') target.state = 'self';
      if (ending.by === 'peer') target.lastError = refusedByPeer(ending.code, ending.reason);
    }
    if (target.state === 'self') return;
    if (!target.lastError || wasOpen) target.lastError = reason;
    this.redialLater(target);
  }

  /** The open session to `replica` ended: addresses that stood aside for it (duplicates) dial again. */
  uncovered(replica: ReplicaId): void {
    for (const target of this.byAddress.values()) if (target.state === 'covered' && target.replica === replica) this.redialLater(target);
  }

  private dial(target: DialTarget): void {
    if (this.stopped || target.removed || target.state === 'self') return;
    target.timer = undefined;
    // The peer dialled us while we waited: stand aside for its session.
    if (target.replica !== undefined && this.options.covers(target.replica)) {
      target.state = 'covered';
      return;
    }
    target.state = 'connecting';
    this.options.transport.dial(target.address).then(
      (connection) => {
        if (this.stopped || target.removed) connection.close('not needed any more');
        else this.options.connected(connection, target);
      },
      (error: unknown) => {
        target.lastError = error instanceof Error ? error.message : String(error);
        this.options.log.debug({ address: target.address, error: target.lastError }, 'dial failed');
        this.redialLater(target);
      },
    );
  }

  private redialLater(target: DialTarget): void {
    if (this.stopped || target.removed || target.state === 'self') return;
    if (target.replica !== undefined && this.options.covers(target.replica)) {
      target.state = 'covered';
      return;
    }
    const { timers } = this.options;
    if (target.state !== 'disconnected') target.since = timers.now();
    target.state = 'disconnected';
    const local = this.options.localReplica?.();
    const waits = local !== undefined && target.replica !== undefined && local > target.replica;
    const delay = backoffDelayMs(target.attempts++, this.options.backoff, this.options.random) + (waits ? (this.options.oneSideGraceMs ?? ONE_SIDE_GRACE_MS) : 0);
    if (target.timer !== undefined) timers.clearTimeout(target.timer);
    target.timer = timers.setTimeout(() => this.dial(target), delay);
  }

  /**
   * A peer that just connected may be one whose address we are backing off from: it restarted
   * (perhaps under a new replica id, so its session does not cover the address) and dialled us
   * first. Dial its address now instead of at the end of a backoff that may have grown to
   * RECONNECT_MAX_MS, so the address shows connected at once. Matched by replica id or by node
   * name (stable across restarts); a wrong match costs one dial.
   */
  private redialNow(peer: { replica: ReplicaId; name: string }): void {
    for (const target of this.byAddress.values()) {
      if (target.state !== 'disconnected' || target.timer === undefined) continue;
      if (target.replica !== peer.replica && target.name !== peer.name) continue;
      this.options.timers.clearTimeout(target.timer);
      target.attempts = 0;
      this.dial(target);
    }
  }
}
