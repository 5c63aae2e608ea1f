/**
 * The replication engine of one node: it keeps every connected peer's counters converging with
 * ours. This file holds the session lifecycle and the loops; the parts live beside it:
 *
 * - peer-directory.ts: the addresses to dial, dialling and redialling with backoff.
 * - peer-session.ts: one connection; `receive(frame)` decodes and checks every frame, runs the
 *   handshake and ping, and returns one event, which `onFrame` below hands to its part.
 * - merge-queue.ts: received slots and ranges, merged in group transactions.
 * - sync-sender.ts: sync answers to a peer's version vector, and live deltas after each commit.
 * - replication-status.ts: peers and membership for `GET /api/cluster`.
 * - presence.ts: node presence over y-protocols awareness.
 *
 * A received frame: transport → `PeerSession.receive` → event → `MergeQueue` (slots, covered,
 * delta) → `Store.merge`, or → `SyncSender.answer` (vv), or → `Presence` (awareness).
 *
 * - On open, both sides send their version vector; each answers with what the other lacks.
 * - Anti-entropy (our version vector to every peer every `antiEntropyIntervalMs`) fills the gaps
 *   skipped deltas leave, and relays other replicas' changes, so nodes that cannot reach each
 *   other converge through one they both reach.
 * - Heartbeats: a ping every `heartbeatIntervalMs`; a session with no traffic for
 *   `heartbeatTimeoutMs` is closed and its peer redialled.
 * - Two nodes that dial each other keep one connection: the one dialled by the lower replica id.
 * - A bad frame closes that session only.
 */
import type { ClusterStatus, NodeInfo } from '../cluster-status.js';
import { seqOf, type VersionVector } from '../crdt/version-vector.js';
import { cryptoRandom, type RandomBytes, type ReplicaId } from '../ids.js';
import type { Log } from '../log.js';
import type { RejectCode } from '../protocol/messages.js';
import type { IdentityInfo, Store } from '../store/store.js';
import { realTimers, type TimerHandle, type Timers } from '../timers.js';
import type { Connection, Transport } from '../transport/transport.js';
import { type BackoffOptions, RECONNECT_BASE_MS, RECONNECT_MAX_MS } from './backoff.js';
import { MergeQueue } from './merge-queue.js';
import { type DialTarget, PeerDirectory } from './peer-directory.js';
import { PeerSession, type SessionContext, type SessionEvent } from './peer-session.js';
import { Presence, type NodePresence } from './presence.js';
import { noMetrics, type ReplicationMetrics } from './replication-metrics.js';
import { clusterStatus } from './replication-status.js';
import { SYNC_CHUNK_SLOTS } from './sync-answer.js';
import { MAX_SEND_BUFFER_BYTES, SyncSender } from './sync-sender.js';

export const HEARTBEAT_INTERVAL_MS = 1_000;
export const HEARTBEAT_TIMEOUT_MS = 5_000;
export const ANTI_ENTROPY_INTERVAL_MS = 2_000;

export interface ReplicatorOptions {
  readonly store: Store;
  readonly transport: Transport;
  readonly cluster: string;
  readonly secret: string;
  readonly node: Omit<NodePresence, 'replicaId'>;
  readonly log: Log;
  readonly metrics?: ReplicationMetrics;
  readonly timers?: Timers;
  /** Float in [0, 1), for backoff jitter. */
  readonly random?: () => number;
  readonly randomBytes?: RandomBytes;
  /** 0 turns the loop's timer off; tests then call `heartbeatTick()` / `antiEntropyTick()`. */
  readonly heartbeatIntervalMs?: number;
  readonly heartbeatTimeoutMs?: number;
  readonly antiEntropyIntervalMs?: number;
  readonly reconnect?: BackoffOptions;
  readonly maxSendBufferBytes?: number;
  readonly syncChunkSlots?: number;
}

export class Replicator {
  private readonly store: Store;
  private readonly transport: Transport;
  private readonly log: Log;
  private readonly metrics: ReplicationMetrics;
  private readonly timers: Timers;
  private readonly random: () => number;
  private readonly heartbeatIntervalMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly antiEntropyIntervalMs: number;
  private readonly sessionContext: SessionContext;
  private readonly presence: Presence;
  private readonly directory: PeerDirectory;
  private readonly merges: MergeQueue;
  private readonly sender: SyncSender;

  /** Every session from attach to close, open or not. */
  private readonly sessions = new Set<PeerSession>();
  /** The one open session per peer replica. */
  private readonly byReplica = new Map<ReplicaId, PeerSession>();
  private readonly unsubscribe: Array<() => void> = [];
  private heartbeatTimer: TimerHandle | undefined;
  private antiEntropyTimer: TimerHandle | undefined;
  private started = false;
  private stopped = false;

  constructor(options: ReplicatorOptions) {
    const { store, log } = options;
    this.store = store;
    this.transport = options.transport;
    this.log = log;
    this.metrics = options.metrics ?? noMetrics;
    this.timers = options.timers ?? realTimers;
    this.random = options.random ?? Math.random;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? HEARTBEAT_TIMEOUT_MS;
    this.antiEntropyIntervalMs = options.antiEntropyIntervalMs ?? ANTI_ENTROPY_INTERVAL_MS;
    const { timers, metrics } = this;
    this.sessionContext = {
      cluster: options.cluster,
      secret: options.secret,
      replicaId: () => store.replicaId,
      nodeName: options.node.name,
      randomBytes: options.randomBytes ?? cryptoRandom,
      metrics,
    };
    this.presence = new Presence({ ...options.node, replicaId: store.replicaId }, (update, origin) => {
      for (const session of this.openSessions()) if (session !== origin) session.send({ type: 'awareness', update });
    });
    this.directory = new PeerDirectory({
      transport: this.transport,
      timers,
      random: this.random,
      backoff: options.reconnect ?? { baseMs: RECONNECT_BASE_MS, maxMs: RECONNECT_MAX_MS },
      log,
      connected: (connection, target) => this.attach(connection, target),
      covers: (replica) => this.byReplica.has(replica),
    });
    this.merges = new MergeQueue({ store, timers, log, metrics, identityChanged: (info) => this.identityChanged(info) });
    this.sender = new SyncSender({
      store,
      timers,
      log,
      metrics,
      maxSendBufferBytes: options.maxSendBufferBytes ?? MAX_SEND_BUFFER_BYTES,
      syncChunkSlots: options.syncChunkSlots ?? SYNC_CHUNK_SLOTS,
    });
  }

  /** Accepts inbound connections, pushes local commits, starts the loops. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.transport.listen((connection) => this.attach(connection, undefined));
    this.unsubscribe.push(this.store.onCommit((delta) => this.sender.push(delta, [...this.openSessions()])));
    this.scheduleHeartbeat();
    this.scheduleAntiEntropy();
  }

  /** The peers to dial (from static config or discovery): new ones are dialled, gone ones dropped. */
  setPeers(addresses: readonly string[]): void {
    if (!this.stopped) this.directory.setPeers(addresses);
  }

  /** Pings every session; closes the ones silent for longer than the heartbeat timeout. */
  heartbeatTick(): void {
    const now = this.timers.now();
    for (const session of [...this.sessions]) {
      const silentMs = now - session.lastReceivedAt;
      if (silentMs > this.heartbeatTimeoutMs) {
        this.metrics.heartbeatTimeout();
        this.log.warn({ peer: session.peer?.name, address: session.connection.remoteAddress, silentMs }, 'peer silent, closing');
        session.close(`heartbeat timeout: no traffic for ${silentMs} ms`);
      } else {
        session.ping();
      }
    }
  }

  /** Sends our version vector to every open session; each answers with what we lack. */
  antiEntropyTick(): void {
    const vv = this.store.versionVector();
    for (const session of this.openSessions()) session.send({ type: 'vv', vv });
  }

  private scheduleHeartbeat(): void {
    if (this.heartbeatIntervalMs <= 0 || this.stopped) return;
    this.heartbeatTimer = this.timers.setTimeout(() => {
      this.heartbeatTick();
      this.scheduleHeartbeat();
    }, this.heartbeatIntervalMs);
  }

  private scheduleAntiEntropy(): void {
    if (this.antiEntropyIntervalMs <= 0 || this.stopped) return;
    // Jittered, so the nodes of a cluster do not all exchange vectors in the same instant.
    const delay = Math.round(this.antiEntropyIntervalMs * (0.75 + this.random() * 0.5));
    this.antiEntropyTimer = this.timers.setTimeout(() => {
      this.antiEntropyTick();
      this.scheduleAntiEntropy();
    }, delay);
  }

  /** Changes fields of this node's presence (e.g. its address once the server listens). */
  updatePresence(fields: Partial<NodePresence>): void {
    this.presence.updateLocal(fields);
  }

  /** True while a sync answer is still being written or received frames wait to be merged. */
  busy(): boolean {
    return this.sender.busy() || this.merges.busy();
  }

  /** What `GET /api/cluster` shows for this node, described by `node`. */
  clusterStatus(node: Omit<NodeInfo, 'replicaId'>): ClusterStatus {
    return clusterStatus({
      node: { ...node, replicaId: this.store.replicaId },
      versionVector: this.store.versionVector(),
      digest: this.store.digest(),
      targets: this.directory.targets(),
      sessions: this.openSessions(),
      sessionOf: (replica) => this.byReplica.get(replica),
      members: this.presence.members(),
    });
  }

  /** Closes every session and timer, announces our departure. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const unsubscribe of this.unsubscribe.splice(0)) unsubscribe();
    if (this.heartbeatTimer !== undefined) this.timers.clearTimeout(this.heartbeatTimer);
    if (this.antiEntropyTimer !== undefined) this.timers.clearTimeout(this.antiEntropyTimer);
    this.directory.stop();
    this.presence.destroy();
    // What peers already sent is applied before the store closes.
    this.merges.flush();
    for (const session of [...this.sessions]) session.reject('shutting_down', 'the node is stopping');
    await this.transport.close();
  }

  // ---- session lifecycle ----------------------------------------------------------------------

  private attach(connection: Connection, target: DialTarget | undefined): void {
    if (this.stopped) {
      connection.close('shutting_down: the node is stopping');
      return;
    }
    const session = new PeerSession(connection, this.sessionContext, this.timers.now());
    if (target !== undefined) this.directory.sessionStarted(target, session);
    this.sessions.add(session);
    // Hello goes out before attach: attach delivers frames that arrived early (the peer's hello,
    // on a dialled connection), and answering one sends our auth — which must follow our hello.
    session.send(session.hello());
    connection.attach({
      message: (frame) => this.onFrame(session, frame, target),
      close: (reason) => this.onClose(session, reason, target),
    });
  }

  private onFrame(session: PeerSession, frame: Uint8Array, target: DialTarget | undefined): void {
    const event = session.receive(frame, this.timers.now());
    switch (event.kind) {
      case 'none':
        return;
      case 'closed':
        this.onEnded(session, event);
        return;
      case 'open':
        this.onOpen(session, target);
        return;
      default:
        try {
          this.apply(session, event);
        } catch (error) {
          // A frame that decoded but could not be applied (a malformed awareness update, or a
          // store failure): drop this peer, keep serving everyone else.
          this.log.error({ err: error, peer: session.peer?.name }, 'failed to apply a peer frame');
          this.refuse(session, 'bad_frame', 'the frame could not be applied');
        }
    }
  }

  /** The session ended with a reject, sent by it or received from the peer: log and count it. */
  private onEnded(session: PeerSession, event: Extract<SessionEvent, { kind: 'closed' }>): void {
    const { code, reason } = event;
    if (event.by === 'us') {
      this.logRefusal(session, code, reason);
    } else if (event.inHandshake) {
      this.metrics.peerRejected(code);
      this.log.warn({ address: session.connection.remoteAddress, code, reason }, 'peer refused the connection');
    } else {
      this.log.warn({ peer: session.peer?.name, code, reason }, 'peer closed the session');
    }
  }

  /** Refuses the peer from here (a duplicate, a frame that failed to apply, shutdown). */
  private refuse(session: PeerSession, code: RejectCode, reason: string): void {
    this.logRefusal(session, code, reason);
    session.reject(code, reason);
  }

  private logRefusal(session: PeerSession, code: RejectCode, reason: string): void {
    this.metrics.peerRejected(code);
    const level = code === 'self' || code === 'duplicate' ? 'debug' : 'warn';
    this.log[level]({ address: session.connection.remoteAddress, peer: session.peer?.name, code, reason }, 'closing peer connection');
  }

  private onOpen(session: PeerSession, target: DialTarget | undefined): void {
    const peer = session.peer!;
    this.directory.identified(target, peer);
    const existing = this.byReplica.get(peer.replica);
    if (existing !== undefined && existing !== session) {
      // Both nodes pick the same survivor: the connection dialled by the lower replica id.
      const dialer = (s: PeerSession) => (s.connection.direction === 'outbound' ? s.localReplica : s.peer!.replica);
      if (dialer(session) >= dialer(existing)) {
        this.refuse(session, 'duplicate', 'these two nodes already have a connection');
        return;
      }
      // Register the survivor first, so the loser's close handler sees the peer still covered.
      this.byReplica.set(peer.replica, session);
      this.refuse(existing, 'duplicate', 'these two nodes already have a connection');
    }
    this.byReplica.set(peer.replica, session);
    this.metrics.peersConnected(this.byReplica.size);
    this.log.info(
      { peer: peer.name, replica: peer.replica, address: session.connection.remoteAddress, direction: session.connection.direction },
      'peer connected',
    );
    this.directory.sessionOpened(target, peer);
    session.send({ type: 'awareness', update: this.presence.fullUpdate() });
    session.send({ type: 'vv', vv: this.store.versionVector() });
  }

  private onClose(session: PeerSession, reason: string, target: DialTarget | undefined): void {
    const wasOpen = session.connectionClosed();
    this.sessions.delete(session);
    this.sender.forget(session);
    const peer = session.peer;
    if (peer !== undefined && this.byReplica.get(peer.replica) === session) {
      this.byReplica.delete(peer.replica);
      this.metrics.peersConnected(this.byReplica.size);
      this.directory.uncovered(peer.replica);
    }
    if (wasOpen) this.log.info({ peer: peer?.name, address: session.connection.remoteAddress, reason }, 'peer disconnected');
    if (target !== undefined) this.directory.sessionClosed(target, session, reason, wasOpen);
  }

  private *openSessions(): Generator<PeerSession> {
    for (const session of this.byReplica.values()) if (session.phase === 'open') yield session;
  }

  // ---- data -----------------------------------------------------------------------------------

  /** Hands a checked message of an open session to its part. */
  private apply(session: PeerSession, event: Exclude<SessionEvent, { kind: 'none' | 'closed' | 'open' }>): void {
    switch (event.kind) {
      case 'vv':
        this.checkOwnHistory(event.vv);
        this.sender.answer(session, event.vv);
        return;
      case 'slots':
        this.merges.enqueue(session, event.slots, []);
        return;
      case 'covered':
        // Queued behind the round's chunks, so its ranges advance only after their slots.
        this.merges.enqueue(session, [], event.ranges, () => {
          session.synced(this.timers.now());
          this.metrics.syncRound('received');
        });
        return;
      case 'delta':
        this.merges.enqueue(session, event.slots, [event.range]);
        return;
      case 'awareness':
        this.presence.applyRemote(event.update, session);
        return;
    }
  }

  /** Backstop of DESIGN.md §1: a peer holding a higher seq for our id proves our file went back in time. */
  private checkOwnHistory(peerVv: VersionVector): void {
    const own = this.store.replicaId;
    const theirs = seqOf(peerVv, own);
    const ours = this.store.localSeq();
    if (theirs > ours) this.identityChanged(this.store.rotateIdentity(`a peer holds seq ${theirs} of this replica, which has only reached ${ours}`));
  }

  private identityChanged(info: IdentityInfo): void {
    this.metrics.identityMinted();
    this.log.warn({ previous: info.previous, replicaId: info.replicaId, reason: info.reason }, 'replica went back in time: minted a new replica id');
    this.presence.updateLocal({ replicaId: info.replicaId });
  }
}
