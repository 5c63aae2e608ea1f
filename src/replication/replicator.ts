/**
 * The replication engine of one node: it keeps every connected peer's counters converging with
 * ours. This file wires the parts and runs the loops; the parts live beside it:
 *
 * - peer-directory.ts: the addresses to dial, dialling and redialling with backoff.
 * - session-table.ts: the session lifecycle (attach → open → close), one session per peer.
 * - peer-session.ts: one connection; `receive(frame)` decodes and checks every frame, runs the
 *   handshake and ping, and returns one event.
 * - merge-queue.ts: received slots and ranges, merged in group transactions.
 * - sync-sender.ts: sync answers to a peer's version vector, and live deltas after each commit.
 * - replication-status.ts: peers and membership for `GET /api/cluster`.
 * - presence.ts: node presence over y-protocols awareness.
 *
 * A received frame: transport → `SessionTable` → `PeerSession.receive` → event → `apply` below →
 * `MergeQueue` → `Store.merge` (slots, covered, delta), `SyncSender.answer` (vv) or `Presence`
 * (awareness).
 *
 * - On open, both sides send their version vector; each answers with what the other lacks. A node
 *   catching up (starting, or back from being cut off) sends its vector to one source first and
 *   to the other peers once it holds what they advertised (sync-source.ts): one copy on join.
 * - Anti-entropy (every `antiEntropyIntervalMs`, a digest of our vector and state to two peers
 *   picked at random; vectors are exchanged only when the digests differ) fills the gaps skipped
 *   deltas leave, and relays other replicas' changes, so nodes that cannot reach each other
 *   converge through one they both reach.
 * - Heartbeats on idle links only: the dialler pings a session it heard nothing from for
 *   `heartbeatIntervalMs`, the listener one silent for longer (session-table.ts); a session with
 *   no traffic for `heartbeatTimeoutMs` is closed and its peer redialled.
 *
 * Over 300 lines: the parts are apart (above); what stays is the wiring and the one `apply` that
 * routes a session's events, and the loops (anti-entropy, heartbeats) that need the whole.
 */
import type { ClusterStatus, NodeInfo } from '../cluster-status.js';
import { epochOf, slotEffect, type Slot } from '../crdt/g-counter.js';
import { seqOf, syncDigest, type SeqRange } from '../crdt/version-vector.js';
import { cryptoRandom, type RandomBytes, type ReplicaId } from '../ids.js';
import type { LatencyProbe } from '../latency-probe.js';
import type { Log } from '../log.js';
import type { Delta, IdentityInfo, Store } from '../store/store.js';
import { realTimers, type TimerHandle, type Timers } from '../timers.js';
import type { Transport } from '../transport/transport.js';
import { type BackoffOptions, RECONNECT_BASE_MS, RECONNECT_MAX_MS } from './backoff.js';
import { ActiveView, type ActiveViewOptions } from './active-view.js';
import { BroadcastTree } from './broadcast-tree.js';
import { MergeQueue } from './merge-queue.js';
import { type DialTarget, PeerDirectory } from './peer-directory.js';
import { SourceBudget, sourceOf } from './peer-limits.js';
import type { PeerIdentity, PeerSession } from './peer-session.js';
import { Presence, type NodePresence, type PresencePeer } from './presence.js';
import { noMetrics, type ReplicationMetrics } from './replication-metrics.js';
import { clusterStatus } from './replication-status.js';
import { type SessionMessage, SessionTable } from './session-table.js';
import { SYNC_CHUNK_SLOTS } from './sync-answer.js';
import { deltaMessage, MAX_SEND_BUFFER_BYTES, SyncSender } from './sync-sender.js';
import { SyncSource } from './sync-source.js';

export const HEARTBEAT_INTERVAL_MS = 1_000;
export const HEARTBEAT_TIMEOUT_MS = 5_000;
export const ANTI_ENTROPY_INTERVAL_MS = 2_000;
/** Peers each anti-entropy round sends its digest to, picked at random. */
export const ANTI_ENTROPY_PEERS = 2;

/** A dial target as the catch-up at start sees it (`catch-up.ts`). */
export interface TargetView {
  readonly address: string;
  readonly state: DialTarget['state'];
  readonly replica: ReplicaId | undefined;
  readonly lastError: string | undefined;
}

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
  /** See SyncSenderOptions.coalesceAboveBytes (full mesh): Infinity turns coalescing off. */
  readonly coalesceAboveBytes?: number;
  /** Bench only: see SyncSenderOptions.coalesceWindowMs (NodeOptions.coalesceWindowMs). */
  readonly coalesceWindowMs?: number;
  readonly syncChunkSlots?: number;
  /** Bench only: sessions skip the per-frame MAC (see NodeOptions.unsealedFrames). */
  readonly unsealedFrames?: boolean;
  /** The latency probe (bench diagnostics); undefined: off. */
  readonly probe?: LatencyProbe;
  /** See MergeQueueOptions.atOnceAfterIdleMs (node.ts: AT_ONCE_AFTER_IDLE_MS); undefined: always the next turn. */
  readonly mergeAtOnceAfterIdleMs?: number;
  /**
   * Bounded-degree mode (active-view.ts, broadcast-tree.ts): past `aboveNodes` nodes (default 16)
   * the node keeps a small active set and deltas travel on a broadcast tree. Tests lower the
   * threshold and the sizes; `dropFirstDelivery` is the deliberately broken suppression.
   */
  readonly boundedDegree?: Omit<ActiveViewOptions, 'random'> & { readonly dropFirstDelivery?: boolean };
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
  private readonly presence: Presence;
  private readonly presenceIgnoredLogged = new Set<string>();
  private readonly directory: PeerDirectory;
  private readonly merges: MergeQueue;
  private readonly sender: SyncSender;
  private readonly source: SyncSource;
  private readonly view: ActiveView;
  /** The broadcast tree, in bounded-degree mode only (undefined in the full mesh). */
  private tree: BroadcastTree | undefined;
  private readonly maxSendBufferBytes: number;
  private readonly dropFirstDelivery: boolean;

  private readonly sessions: SessionTable;
  /** Replica ids this node knows (in its vector, or admitted from a peer since start). */
  private readonly known: Set<ReplicaId>;
  private readonly newReplicas = new SourceBudget();
  private readonly unsubscribe: Array<() => void> = [];
  /** Peers a full sync round of which has been merged since start (for the catch-up at start). */
  private readonly synced = new Set<ReplicaId>();
  private readonly firstSyncListeners = new Set<(peer: PeerIdentity) => void>();
  private heartbeatTimer: TimerHandle | undefined;
  private antiEntropyTimer: TimerHandle | undefined;
  private started = false;
  private stopped = false;
  /** Set while a proof that our replica went back in time waits for the store's writes (rotateOwnIdentity). */
  private rotationWaiting = false;

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
    this.known = new Set(store.versionVector().keys());
    this.maxSendBufferBytes = options.maxSendBufferBytes ?? MAX_SEND_BUFFER_BYTES;
    const { dropFirstDelivery, ...viewOptions } = options.boundedDegree ?? {};
    this.dropFirstDelivery = dropFirstDelivery === true;
    this.view = new ActiveView({ ...viewOptions, random: this.random });
    this.directory = new PeerDirectory({
      transport: this.transport,
      timers,
      random: this.random,
      backoff: options.reconnect ?? { baseMs: RECONNECT_BASE_MS, maxMs: RECONNECT_MAX_MS },
      log,
      connected: (connection, target) => this.sessions.attach(connection, target),
      covers: (replica) => this.sessions.covers(replica),
      localReplica: () => store.replicaId,
    });
    this.merges = new MergeQueue({
      store,
      timers,
      log,
      metrics,
      identityChanged: (info) => this.identityChanged(info),
      ...(options.mergeAtOnceAfterIdleMs !== undefined ? { atOnceAfterIdleMs: options.mergeAtOnceAfterIdleMs } : {}),
    });
    this.sender = new SyncSender({
      store,
      timers,
      log,
      metrics,
      maxSendBufferBytes: this.maxSendBufferBytes,
      syncChunkSlots: options.syncChunkSlots ?? SYNC_CHUNK_SLOTS,
      ...(options.probe !== undefined ? { probe: options.probe } : {}),
      ...(options.coalesceAboveBytes !== undefined ? { coalesceAboveBytes: options.coalesceAboveBytes } : {}),
      ...(options.coalesceWindowMs !== undefined ? { coalesceWindowMs: options.coalesceWindowMs } : {}),
    });
    this.source = new SyncSource({
      timers,
      random: this.random,
      log,
      localVv: () => store.versionVector(),
      localReplica: () => store.replicaId,
      openSessions: () => this.sessions.open(),
      sessionOf: (replica) => this.sessions.sessionOf(replica),
      sendVv: (session) => this.sessions.guard(session, () => session.sendVv(store.versionVector())),
      holdingUp: (session) => session.readingPaused || this.merges.busy(),
    });
    this.sessions = new SessionTable({
      context: {
        cluster: options.cluster,
        secret: options.secret,
        replicaId: () => store.replicaId,
        nodeName: options.node.name,
        randomBytes: options.randomBytes ?? cryptoRandom,
        metrics,
        admitReplica: (replica, session) => this.admitReplica(replica, session),
        ...(options.unsealedFrames === true ? { unsealedFrames: true } : {}),
        ...(options.probe !== undefined ? { probe: options.probe } : {}),
      },
      timers,
      log,
      metrics,
      directory: this.directory,
      onOpen: (session) => {
        session.send({ type: 'awareness', update: this.presence.ownUpdate(session.peer?.replica) });
        this.tree?.opened(session);
        this.source.opened(session);
      },
      onMessage: (session, message) => this.apply(session, message),
      onClose: (session) => {
        this.sender.forget(session);
        this.tree?.closed(session);
        this.source.closed(session);
      },
      admitsInbound: (session) => this.view.admitsInbound(session.connection.remoteAddress, this.inboundRemotes()),
      onFailure: () => this.metrics.peerFailure(),
    });
    // Last: setting the local state broadcasts it at once, to the (still empty) session table.
    const idBytes = (options.randomBytes ?? cryptoRandom)(4);
    const clientId = ((idBytes[0]! << 24) | (idBytes[1]! << 16) | (idBytes[2]! << 8) | idBytes[3]!) >>> 0;
    this.presence = new Presence(
      { ...options.node, replicaId: store.replicaId },
      () => this.presencePeers(),
      {
        timers,
        clientId,
        sparse: () => this.view.bounded,
        onIgnored: (reason, entries) => {
          this.metrics.presenceIgnored(reason, entries);
          // Once a run per reason: a peer past a bound would repeat it at every check.
          if (this.presenceIgnoredLogged.has(reason)) return;
          this.presenceIgnoredLogged.add(reason);
          this.log.warn({ reason, entries }, 'presence entries ignored past a bound (replication_presence_ignored_total counts them)');
        },
      },
    );
  }

  /** Accepts inbound connections, pushes local commits, starts the loops. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.transport.listen((connection) => this.sessions.attach(connection, undefined));
    this.unsubscribe.push(this.store.onCommit((delta) => this.pushCommit(delta)));
    this.scheduleHeartbeat();
    this.scheduleAntiEntropy();
  }

  /** The peers to dial (from static config or discovery): new ones are dialled, gone ones dropped. */
  setPeers(addresses: readonly string[]): void {
    if (this.stopped) return;
    this.directory.setPeers(this.view.setPeers(addresses, this.timers.now()));
    this.modeChanged();
  }

  /** The active view's mode and sizes (bench, status): the full mesh, or bounded degree. */
  degree(): {
    readonly bounded: boolean;
    readonly dial: number;
    readonly max: number;
    readonly eager?: number;
    readonly lazy?: number;
    readonly tree?: { readonly received: number; readonly duplicates: number; readonly grafts: number };
    /** Live deltas merged into another in a session's outbox since start (sync-sender.ts). */
    readonly coalesced: number;
  } {
    const links = this.tree?.links();
    const tree = this.tree === undefined ? {} : { tree: { ...this.tree.counts } };
    return { bounded: this.view.bounded, dial: this.view.bounded ? this.view.dialCount : this.directory.size, max: this.view.maxDegree, ...links, ...tree, coalesced: this.sender.counts.coalesced };
  }

  /** Starts or ends the broadcast tree when the mode changed; a new tree takes every open session as eager. */
  private modeChanged(): void {
    if (this.view.bounded && this.tree === undefined) {
      this.tree = new BroadcastTree({
        timers: this.timers,
        send: (session, message) => this.sessions.guard(session, () => session.send(message)),
        sendDelta: (session, frame, range) => this.sessions.guard(session, () => this.sendDelta(session, frame, range)),
        heldUpTo: (replica) => this.store.vectorEntry(replica),
        raisesHeld: (message) => raisesHeld(this.store, message.range.replica, message.slots),
        dropFirstDelivery: this.dropFirstDelivery,
      });
      for (const session of this.sessions.open()) this.tree.opened(session);
    } else if (!this.view.bounded && this.tree !== undefined) {
      this.tree.stop();
      this.tree = undefined;
    }
  }

  /** A local commit: to every open session in the full mesh, along the broadcast tree in bounded-degree mode. */
  private pushCommit(delta: Delta): void {
    const tree = this.tree;
    if (tree === undefined || delta.slots.length > this.sender.maxDeltaSlots) {
      // A delta too big for one frame goes as a round to every active peer, outside the tree.
      this.sender.push(delta, [...this.sessions.open()]);
      tree?.heard(delta.range);
      return;
    }
    tree.broadcast(deltaMessage(delta));
  }

  /** One tree delta to one session, unless its send buffer is over the bound (anti-entropy then fills it). */
  private sendDelta(session: PeerSession, frame: Uint8Array, range: SeqRange): void {
    if (session.connection.bufferedBytes() > this.maxSendBufferBytes) {
      this.metrics.deltaSkipped();
      return;
    }
    session.sendFrame(frame, 'delta');
    session.peerHolds(range);
  }

  private *inboundRemotes(): Generator<string> {
    for (const session of this.sessions.open()) if (session.connection.direction === 'inbound') yield session.connection.remoteAddress;
  }

  /**
   * Called once per peer (by replica id), after the first sync round it sent us has been merged
   * in full: every chunk applied, its ranges advanced. Returns an unsubscribe function.
   */
  onFirstSync(listener: (peer: PeerIdentity) => void): () => void {
    this.firstSyncListeners.add(listener);
    return () => this.firstSyncListeners.delete(listener);
  }

  /** The peer this node is catching up from (one source at a time, sync-source.ts); undefined when not catching up. */
  catchUpSource(): ReplicaId | undefined {
    return this.source.catchingUp ? this.source.current : undefined;
  }

  /** True once a full sync round from `replica` has been merged (see `onFirstSync`). */
  syncedWith(replica: ReplicaId): boolean {
    return this.synced.has(replica);
  }

  /** The addresses being dialled and what became of each. */
  dialTargets(): TargetView[] {
    return [...this.directory.targets()].map((t) => ({ address: t.address, state: t.state, replica: t.replica, lastError: t.lastError }));
  }

  /** Pings the sessions gone quiet (see SessionTable.heartbeat); closes the ones silent for longer than the timeout. */
  heartbeatTick(): void {
    this.sessions.heartbeat(this.heartbeatTimeoutMs, this.heartbeatIntervalMs);
    // Bounded degree: dialled peers that failed make way for passive ones.
    const dial = this.view.replaceFailed(this.directory.targets(), this.timers.now());
    if (dial !== undefined) this.directory.setPeers(dial);
  }

  /**
   * Anti-entropy: our digest to ANTI_ENTROPY_PEERS open sessions picked at random. A peer whose
   * digest differs answers with its vector, which we answer (what it lacks) and meet with ours
   * (what we lack). Equal digests cost one small frame and nothing else.
   */
  antiEntropyTick(): void {
    // While catching up, vectors go to one source at a time (sync-source.ts); a digest would
    // only invite the peers' vectors, and with ours back their whole state.
    if (this.source.catchingUp) return;
    const open = [...this.sessions.open()];
    if (open.length === 0) return;
    const digest = syncDigest(this.store.versionVector(), this.store.digest());
    for (let i = 0; i < Math.min(ANTI_ENTROPY_PEERS, open.length); i++) {
      // A partial Fisher–Yates: each round's peers are distinct.
      const j = i + Math.floor(this.random() * (open.length - i));
      [open[i], open[j]] = [open[j]!, open[i]!];
      const session = open[i]!;
      this.sessions.guard(session, () => session.sendDigest(digest));
    }
  }

  private scheduleHeartbeat(): void {
    if (this.heartbeatIntervalMs <= 0 || this.stopped) return;
    this.heartbeatTimer = this.timers.setTimeout(() => {
      this.guarded('heartbeat', () => this.heartbeatTick());
      this.scheduleHeartbeat();
    }, this.heartbeatIntervalMs);
  }

  private scheduleAntiEntropy(): void {
    if (this.antiEntropyIntervalMs <= 0 || this.stopped) return;
    // Jittered, so the nodes of a cluster do not all exchange vectors in the same instant.
    const delay = Math.round(this.antiEntropyIntervalMs * (0.75 + this.random() * 0.5));
    this.antiEntropyTimer = this.timers.setTimeout(() => {
      this.guarded('anti-entropy', () => this.antiEntropyTick());
      this.scheduleAntiEntropy();
    }, delay);
  }

  /** Runs a timer's work: a throw is logged and counted, and the loop goes on. */
  private guarded(what: string, work: () => void): void {
    try {
      work();
    } catch (error) {
      this.metrics.peerFailure();
      this.log.error({ err: error }, `${what} tick failed`);
    }
  }

  private *presencePeers(): Generator<PresencePeer> {
    for (const session of this.sessions.open()) {
      const replica = session.peer?.replica;
      if (replica !== undefined) yield { replica, send: (update) => this.sessions.guard(session, () => session.send({ type: 'awareness', update })) };
    }
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
      sessions: this.sessions.open(),
      sessionOf: (replica) => this.sessions.sessionOf(replica),
      members: this.presence.members(),
      wallTime: (monotonic) => this.timers.wallTime(monotonic),
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
    this.sender.stop();
    this.tree?.stop();
    this.source.stop();
    this.presence.destroy();
    // What peers already sent is applied before the store closes, unless a spread commit holds
    // the store: then it is dropped (it advanced no vector, so peers send it again).
    this.merges.stop();
    this.sessions.stop();
    await this.transport.close();
  }

  // ---- data -----------------------------------------------------------------------------------

  /** Hands a checked message of an open session to its part. */
  private apply(session: PeerSession, event: SessionMessage): void {
    switch (event.kind) {
      case 'vv':
        if (!this.checkOwnClaim(session, seqOf(event.vv, this.store.replicaId), 'vv')) return;
        this.sender.answer(session, event.vv);
        if (session.takeDigestReply()) this.source.offer(session);
        this.source.vvReceived(session, event.vv);
        return;
      case 'digest': {
        const vv = this.store.versionVector();
        if (sameBytes(syncDigest(vv, this.store.digest()), event.digest)) session.peerMatches(vv);
        else this.source.offer(session);
        return;
      }
      case 'slots':
        if (!this.checkOwnClaim(session, highestOwn(event.slots, this.store.replicaId), 'slots')) return;
        this.source.answerArrived(session);
        this.merges.enqueue(session, event.slots, []);
        return;
      case 'covered': {
        this.source.answerArrived(session);
        const whole = session.lastRoundWhole;
        // Queued behind the round's chunks, so its ranges advance only after their slots.
        this.merges.enqueue(session, [], this.notOwn(event.ranges), () => {
          session.synced(this.timers.now());
          this.metrics.syncRound('received');
          this.firstSyncMerged(session);
          this.source.roundMerged(session, whole);
        });
        return;
      }
      case 'delta':
        if (!this.checkOwnClaim(session, highestOwn(event.slots, this.store.replicaId), 'delta')) return;
        // Bounded degree: a duplicate is dropped (its link pruned), a first copy passed on along the tree.
        if (this.tree !== undefined && event.relay !== undefined && !this.tree.received(session, event.relay)) return;
        this.merges.enqueue(session, event.slots, this.notOwn(event.ranges));
        return;
      case 'ihave':
        this.tree?.announced(session, event.ranges);
        return;
      case 'graft':
        this.tree?.graftedBy(session, event.ranges);
        return;
      case 'prune':
        this.tree?.pruned(session);
        return;
      case 'awareness':
        this.presence.applyRemote(event.update, session, session.peer?.replica);
        return;
    }
  }

  private firstSyncMerged(session: PeerSession): void {
    const peer = session.peer;
    if (peer === undefined || this.synced.has(peer.replica)) return;
    this.synced.add(peer.replica);
    for (const listener of [...this.firstSyncListeners]) listener(peer);
  }

  /** Our own replica's vector entry is ours alone: no peer range moves it. */
  private notOwn(ranges: readonly SeqRange[]): readonly SeqRange[] {
    const own = this.store.replicaId;
    return ranges.some((range) => range.replica === own) ? ranges.filter((range) => range.replica !== own) : ranges;
  }

  /**
   * Backstop of the identity rule (docs/design.md, "Invariants"): a peer holding a higher seq for our id than we reached proves our
   * file went back in time — but only for an id this node kept from its last run. An id minted
   * in this run (or created fresh at start) was never written by anyone else, so such a claim
   * about it is a lie: the session is refused and nothing is minted. So a peer can make this node
   * mint at most once per run (this closes the id-rotation flood). True when the frame may go on.
   */
  private checkOwnClaim(session: PeerSession, theirs: number, what: string): boolean {
    const ours = this.store.localSeq();
    if (theirs <= ours) return true;
    if (this.store.identity.outcome !== 'kept') {
      this.sessions.refuse(session, 'bad_frame', `${what} claims seq ${theirs} of this node's replica, which has only reached ${ours} and was never written elsewhere`);
      return false;
    }
    if (what === 'vv') this.rotateOwnIdentity(`a peer holds seq ${theirs} of this replica, which has only reached ${ours}`);
    // Slots and deltas go on: the store mints in the transaction that merges them.
    return true;
  }

  /**
   * Mints a new id for our replica (the proof is in: see checkOwnClaim). While the store holds
   * writes (a spread commit, Store.writesHeld) rotateIdentity() would throw `store_busy`, and the
   * honest peer that brought the proof was refused for it: the rotation waits for the commit to
   * end instead, once (later proofs while it waits add nothing), and goes ahead if the id is still
   * the one the proof is about (a merge meanwhile may have minted already). The proof stays
   * valid: the commit that ended took its seq before it arrived, as one just before would have.
   */
  private rotateOwnIdentity(reason: string): void {
    const held = this.store.writesHeld?.();
    if (held === undefined) {
      this.identityChanged(this.store.rotateIdentity(reason));
      return;
    }
    if (this.rotationWaiting) return;
    this.rotationWaiting = true;
    const about = this.store.replicaId;
    void held.then(() => {
      this.rotationWaiting = false;
      if (this.stopped || this.store.replicaId !== about) return;
      try {
        this.rotateOwnIdentity(reason);
      } catch (error) {
        this.log.error({ err: error }, 'minting a new replica id after a spread commit failed: the next proof tries again');
      }
    });
  }

  /** Whether `session` may bring slots of `replica`: known ones always, new ones within its source's budget. */
  private admitReplica(replica: ReplicaId, session: PeerSession): boolean {
    if (this.known.has(replica)) return true;
    if (!this.newReplicas.take(sourceOf(session.connection.remoteAddress), this.timers.now())) {
      this.metrics.replicaRefused();
      return false;
    }
    this.known.add(replica);
    return true;
  }

  private identityChanged(info: IdentityInfo): void {
    this.known.add(info.replicaId);
    this.metrics.identityMinted();
    this.log.warn({ previous: info.previous, replicaId: info.replicaId, reason: info.reason }, 'replica went back in time: minted a new replica id');
    this.presence.updateLocal({ replicaId: info.replicaId });
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function highestOwn(slots: readonly Slot[], own: ReplicaId): number {
  let highest = 0;
  for (const slot of slots) if (slot.replica === own && slot.seq > highest) highest = slot.seq;
  return highest;
}

/**
 * Whether merging `slots` would raise a page total `store` holds: a slot of a page's total
 * (series slots are not looked at, see broadcast-tree.ts) of the page's epoch counting more than
 * the held slot of its replica (or none held), or of a newer epoch. One page's slots read per slot (SqliteStore caches them).
 */
function raisesHeld(store: Pick<Store, 'pageSlots'>, replica: ReplicaId, slots: readonly Omit<Slot, 'replica'>[]): boolean {
  for (const slot of slots) {
    if (slot.kind !== undefined) continue;
    const held = store.pageSlots(slot.page);
    // The reset rule of crdt/ (slotEffect): an older epoch raises nothing, a newer one resets.
    const effect = slotEffect(epochOf(slot), held.length === 0 ? 0 : epochOf(held[0]!), held.length > 0);
    if (effect === 'drop') continue;
    if (effect === 'reset') return true;
    // Within the epoch a raise is a higher count (not supersedes' equal count at a later seq: that raises no total).
    if (slot.count > (held.find((value) => value.replica === replica)?.count ?? -1)) return true;
  }
  return false;
}
