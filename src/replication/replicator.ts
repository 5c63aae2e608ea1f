/**
 * The replication engine of one node: it dials the peers discovery names, accepts the ones that
 * dial it, and keeps every connected peer's counters converging with ours.
 *
 * - On open, both sides send their version vector; each answers with what the other lacks
 *   (`slots` chunks, then `covered`). See sync-answer.ts for why a range is claimed only at the end.
 * - After each local commit, the commit's delta goes to every open session at once. A session
 *   whose send buffer is over its bound is skipped: it falls behind with a gap, and the next
 *   anti-entropy round (its version vector every `antiEntropyIntervalMs`) fills the gap.
 * - Anti-entropy also relays other replicas' changes, so nodes that cannot reach each other
 *   converge through one they both reach.
 * - Heartbeats: a ping every `heartbeatIntervalMs`; a session with no traffic for
 *   `heartbeatTimeoutMs` is closed and its peer redialled with capped, jittered backoff.
 * - Two nodes that dial each other keep one connection: the one dialled by the lower replica id.
 * - Everything from a peer is decoded and validated first; a bad frame closes that session only.
 */
import type { Slot } from '../crdt/g-counter.js';
import { lagBehind, seqOf, type SeqRange, type VersionVector } from '../crdt/version-vector.js';
import { cryptoRandom, type RandomBytes, type ReplicaId } from '../ids.js';
import { decodeFrame, encodeMessage, ProtocolError } from '../protocol/codec.js';
import { type Message, NONCE_BYTES, PROTOCOL_VERSION, type RejectCode } from '../protocol/messages.js';
import type { Delta, IdentityInfo, MergeResult, Store } from '../store/store.js';
import type { Connection, Transport } from '../transport/transport.js';
import { backoffDelayMs, type BackoffOptions, RECONNECT_BASE_MS, RECONNECT_MAX_MS } from './backoff.js';
import { PeerSession } from './peer-session.js';
import { type Member, Presence, type NodePresence } from './presence.js';
import { noMetrics, type ReplicationMetrics } from './replication-metrics.js';
import { planSyncAnswer, SYNC_CHUNK_SLOTS } from './sync-answer.js';
import { realTimers, type TimerHandle, type Timers } from '../timers.js';

export const HEARTBEAT_INTERVAL_MS = 1_000;
export const HEARTBEAT_TIMEOUT_MS = 5_000;
export const ANTI_ENTROPY_INTERVAL_MS = 2_000;
/** Past this many bytes queued to a peer, live deltas to it are skipped (anti-entropy catches up). */
export const MAX_SEND_BUFFER_BYTES = 8 * 1024 * 1024;
/** Largest group merge: a bigger batch is split, so one transaction never holds the loop long. */
export const MAX_MERGE_BATCH_SLOTS = 4_000;
/** Sync chunks sent before letting the event loop run other work. */
export const SYNC_CHUNKS_PER_TURN = 4;

export interface Log {
  debug(object: object, message?: string): void;
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  error(object: object, message?: string): void;
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
  readonly syncChunkSlots?: number;
}

export type PeerState = 'connecting' | 'connected' | 'disconnected' | 'self';

export interface PeerStatus {
  readonly address: string;
  readonly replicaId?: string;
  readonly name?: string;
  readonly state: PeerState;
  readonly direction?: 'inbound' | 'outbound';
  /** Since when the peer is in this state (ms since the epoch). */
  readonly since?: number;
  readonly lastSyncAt?: number;
  /** How far behind the peer is: seqs this node has that the peer lacked at its last version vector. */
  readonly lagSeqs?: number;
  /** How far behind this node is: seqs the peer had at its last version vector that this node lacked. */
  readonly behindSeqs?: number;
  readonly lastError?: string;
  readonly bytesSent?: number;
  readonly bytesReceived?: number;
}

export interface ReplicationStatus {
  readonly peers: PeerStatus[];
  readonly membership: Member[];
}

/** An address discovery gave us, and what became of dialling it. */
interface Target {
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

export class Replicator {
  private readonly store: Store;
  private readonly transport: Transport;
  private readonly log: Log;
  private readonly metrics: ReplicationMetrics;
  private readonly timers: Timers;
  private readonly random: () => number;
  private readonly randomBytes: RandomBytes;
  private readonly heartbeatIntervalMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly antiEntropyIntervalMs: number;
  private readonly backoff: BackoffOptions;
  private readonly maxSendBufferBytes: number;
  private readonly syncChunkSlots: number;
  private readonly presence: Presence;

  private readonly targets = new Map<string, Target>();
  private readonly sessions = new Set<PeerSession>();
  /** The one open session per peer replica. */
  private readonly byReplica = new Map<ReplicaId, PeerSession>();
  /** Sessions with a sync answer being written, and the newest vv that arrived meanwhile. */
  private readonly answering = new Map<PeerSession, VersionVector | undefined>();
  private readonly unsubscribe: Array<() => void> = [];
  /** Merges received and not yet applied (see enqueueMerge). */
  private readonly mergeQueue: Array<{ session: PeerSession; slots: readonly Slot[]; ranges: readonly SeqRange[]; applied: (() => void) | undefined }> = [];
  private queuedSlots = 0;
  private mergeScheduled = false;
  private heartbeatTimer: TimerHandle | undefined;
  private antiEntropyTimer: TimerHandle | undefined;
  private started = false;
  private stopped = false;

  constructor(private readonly options: ReplicatorOptions) {
    this.store = options.store;
    this.transport = options.transport;
    this.log = options.log;
    this.metrics = options.metrics ?? noMetrics;
    this.timers = options.timers ?? realTimers;
    this.random = options.random ?? Math.random;
    this.randomBytes = options.randomBytes ?? cryptoRandom;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? HEARTBEAT_TIMEOUT_MS;
    this.antiEntropyIntervalMs = options.antiEntropyIntervalMs ?? ANTI_ENTROPY_INTERVAL_MS;
    this.backoff = options.reconnect ?? { baseMs: RECONNECT_BASE_MS, maxMs: RECONNECT_MAX_MS };
    this.maxSendBufferBytes = options.maxSendBufferBytes ?? MAX_SEND_BUFFER_BYTES;
    this.syncChunkSlots = options.syncChunkSlots ?? SYNC_CHUNK_SLOTS;
    this.presence = new Presence({ ...options.node, replicaId: this.store.replicaId }, (update, origin) => {
      for (const session of this.openSessions()) if (session !== origin) session.send({ type: 'awareness', update });
    });
  }

  /** Accepts inbound connections, pushes local commits, starts the loops. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.transport.listen((connection) => this.attach(connection, undefined));
    this.unsubscribe.push(this.store.onCommit((delta) => this.push(delta)));
    this.scheduleHeartbeat();
    this.scheduleAntiEntropy();
  }

  /** The peers to dial (from static config or discovery): new ones are dialled, gone ones dropped. */
  setPeers(addresses: readonly string[]): void {
    if (this.stopped) return;
    const wanted = new Set(addresses);
    for (const [address, target] of this.targets) {
      if (wanted.has(address)) continue;
      target.removed = true;
      if (target.timer !== undefined) this.timers.clearTimeout(target.timer);
      target.session?.close('peer removed by discovery');
      this.targets.delete(address);
      this.log.info({ address }, 'peer removed');
    }
    for (const address of wanted) {
      if (this.targets.has(address)) continue;
      const target: Target = {
        address,
        state: 'disconnected',
        session: undefined,
        replica: undefined,
        name: undefined,
        attempts: 0,
        timer: undefined,
        since: this.timers.now(),
        lastError: undefined,
        removed: false,
      };
      this.targets.set(address, target);
      this.log.info({ address }, 'peer added');
      this.dial(target);
    }
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
    return this.answering.size > 0 || this.mergeQueue.length > 0;
  }

  status(): ReplicationStatus {
    const localVv = this.store.versionVector();
    const peers: PeerStatus[] = [];
    const shown = new Set<PeerSession>();
    const describe = (session: PeerSession) => ({
      replicaId: session.peer?.replica,
      name: session.peer?.name,
      direction: session.connection.direction,
      lastSyncAt: session.lastSyncAt,
      lagSeqs: session.peerVv === undefined ? undefined : lagBehind(session.peerVv, localVv),
      behindSeqs: session.peerVv === undefined ? undefined : lagBehind(localVv, session.peerVv),
      bytesSent: session.bytesSent,
      bytesReceived: session.bytesReceived,
    });
    for (const target of this.targets.values()) {
      const session = target.session?.phase === 'open' ? target.session : target.replica ? this.byReplica.get(target.replica) : undefined;
      if (session !== undefined && session.phase === 'open') {
        shown.add(session);
        peers.push({ address: target.address, state: 'connected', since: session.openedAt, ...describe(session) });
      } else {
        peers.push({
          address: target.address,
          replicaId: target.replica,
          name: target.name,
          state: target.state === 'covered' ? 'connecting' : target.state,
          since: target.since,
          lastError: target.lastError,
        });
      }
    }
    for (const session of this.openSessions()) {
      if (shown.has(session)) continue;
      peers.push({ address: session.connection.remoteAddress, state: 'connected', since: session.openedAt, ...describe(session) });
    }
    return { peers, membership: this.presence.members() };
  }

  /** Closes every session and timer, announces our departure. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const unsubscribe of this.unsubscribe.splice(0)) unsubscribe();
    if (this.heartbeatTimer !== undefined) this.timers.clearTimeout(this.heartbeatTimer);
    if (this.antiEntropyTimer !== undefined) this.timers.clearTimeout(this.antiEntropyTimer);
    for (const target of this.targets.values()) if (target.timer !== undefined) this.timers.clearTimeout(target.timer);
    this.presence.destroy();
    // What peers already sent is applied before the store closes.
    this.flushMerges();
    for (const session of [...this.sessions]) session.reject('shutting_down', 'the node is stopping');
    await this.transport.close();
  }

  // ---- connections ------------------------------------------------------------------------

  private dial(target: Target): void {
    if (this.stopped || target.removed || target.state === 'self') return;
    target.timer = undefined;
    target.state = 'connecting';
    this.transport.dial(target.address).then(
      (connection) => {
        if (this.stopped || target.removed) connection.close('not needed any more');
        else this.attach(connection, target);
      },
      (error: unknown) => {
        target.lastError = error instanceof Error ? error.message : String(error);
        this.log.debug({ address: target.address, error: target.lastError }, 'dial failed');
        this.redialLater(target);
      },
    );
  }

  private redialLater(target: Target): void {
    if (this.stopped || target.removed || target.state === 'self') return;
    if (target.replica !== undefined && this.byReplica.has(target.replica)) {
      target.state = 'covered';
      return;
    }
    if (target.state !== 'disconnected') target.since = this.timers.now();
    target.state = 'disconnected';
    const delay = backoffDelayMs(target.attempts++, this.backoff, this.random);
    if (target.timer !== undefined) this.timers.clearTimeout(target.timer);
    target.timer = this.timers.setTimeout(() => this.dial(target), delay);
  }

  /**
   * A peer that just connected may be one whose address we are backing off from: it restarted
   * (perhaps under a new replica id, so its session does not cover the address) and dialled us
   * first. Dial its address now instead of at the end of a backoff that may have grown to
   * RECONNECT_MAX_MS, so the address shows connected at once. Matched by replica id or by node
   * name (stable across restarts); a wrong match costs one dial.
   */
  private redialNow(peer: { replica: ReplicaId; name: string }): void {
    for (const target of this.targets.values()) {
      if (target.state !== 'disconnected' || target.timer === undefined) continue;
      if (target.replica !== peer.replica && target.name !== peer.name) continue;
      this.timers.clearTimeout(target.timer);
      target.attempts = 0;
      this.dial(target);
    }
  }

  private attach(connection: Connection, target: Target | undefined): void {
    if (this.stopped) {
      connection.close('shutting_down: the node is stopping');
      return;
    }
    const session = new PeerSession(
      connection,
      { cluster: this.options.cluster, secret: this.options.secret, replicaId: () => this.store.replicaId, nodeName: this.options.node.name },
      this.timers.now(),
      this.randomBytes,
      NONCE_BYTES,
      (type, bytes) => this.metrics.frameSent(type, bytes),
    );
    if (target !== undefined) target.session = session;
    this.sessions.add(session);
    // Hello goes out before attach: attach delivers frames that arrived early (the peer's hello,
    // on a dialled connection), and answering one sends our auth — which must follow our hello.
    session.send(session.hello());
    connection.attach({
      message: (frame) => this.onFrame(session, frame, target),
      close: (reason) => this.onClose(session, reason, target),
    });
  }

  private onFrame(session: PeerSession, frame: Uint8Array, target: Target | undefined): void {
    if (session.phase === 'closed') return;
    session.received(frame.byteLength, this.timers.now());
    let message: Message;
    try {
      message = decodeFrame(frame);
    } catch (error) {
      this.metrics.badFrame();
      if (error instanceof ProtocolError && error.code === 'protocol_version') {
        this.refuse(session, 'protocol_version', `this node speaks protocol version ${PROTOCOL_VERSION}, the peer version ${error.version}`);
      } else {
        this.refuse(session, 'bad_frame', error instanceof Error ? error.message : 'undecodable frame');
      }
      return;
    }
    this.metrics.frameReceived(message.type, frame.byteLength);
    if (session.phase === 'handshake') {
      this.onHandshake(session, message, target);
      return;
    }
    try {
      this.onMessage(session, message);
    } catch (error) {
      // A frame that decoded but could not be applied (a malformed awareness update, or a store
      // failure): drop this peer, keep serving everyone else.
      this.log.error({ err: error, peer: session.peer?.name }, 'failed to apply a peer frame');
      this.refuse(session, 'bad_frame', 'the frame could not be applied');
    }
  }

  private onHandshake(session: PeerSession, message: Message, target: Target | undefined): void {
    const step = session.handshake(message);
    switch (step.kind) {
      case 'continue':
        return;
      case 'reject':
        if (step.code === 'self' && target !== undefined) target.state = 'self';
        this.refuse(session, step.code, step.reason);
        return;
      case 'rejected':
        this.metrics.peerRejected(step.code);
        if (step.code === 'self' && target !== undefined) target.state = 'self';
        if (target !== undefined) target.lastError = `refused by peer (${step.code}): ${step.reason}`;
        this.log.warn({ address: session.connection.remoteAddress, code: step.code, reason: step.reason }, 'peer refused the connection');
        session.close(`refused by peer (${step.code}): ${step.reason}`);
        return;
      case 'open':
        this.onOpen(session, target);
        return;
    }
  }

  private refuse(session: PeerSession, code: RejectCode, reason: string): void {
    this.metrics.peerRejected(code);
    const level = code === 'self' || code === 'duplicate' ? 'debug' : 'warn';
    this.log[level]({ address: session.connection.remoteAddress, peer: session.peer?.name, code, reason }, 'closing peer connection');
    session.reject(code, reason);
  }

  private onOpen(session: PeerSession, target: Target | undefined): void {
    const peer = session.peer!;
    if (target !== undefined) {
      target.replica = peer.replica;
      target.name = peer.name;
    }
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
    if (target !== undefined) {
      target.state = 'connected';
      target.attempts = 0;
      target.since = this.timers.now();
      target.lastError = undefined;
    }
    this.metrics.peersConnected(this.byReplica.size);
    this.log.info(
      { peer: peer.name, replica: peer.replica, address: session.connection.remoteAddress, direction: session.connection.direction },
      'peer connected',
    );
    this.redialNow(peer);
    session.send({ type: 'awareness', update: this.presence.fullUpdate() });
    session.send({ type: 'vv', vv: this.store.versionVector() });
  }

  private onClose(session: PeerSession, reason: string, target: Target | undefined): void {
    const wasOpen = session.phase === 'open';
    session.phase = 'closed';
    this.sessions.delete(session);
    this.answering.delete(session);
    const peer = session.peer;
    if (peer !== undefined && this.byReplica.get(peer.replica) === session) {
      this.byReplica.delete(peer.replica);
      this.metrics.peersConnected(this.byReplica.size);
      // Addresses that stood aside for this session (duplicates) dial again.
      for (const other of this.targets.values()) if (other.state === 'covered' && other.replica === peer.replica) this.redialLater(other);
    }
    if (wasOpen) this.log.info({ peer: peer?.name, address: session.connection.remoteAddress, reason }, 'peer disconnected');
    if (target !== undefined && target.session === session) {
      target.session = undefined;
      if (target.state !== 'self') {
        if (!target.lastError || wasOpen) target.lastError = reason;
        this.redialLater(target);
      }
    }
  }

  private *openSessions(): Generator<PeerSession> {
    for (const session of this.byReplica.values()) if (session.phase === 'open') yield session;
  }

  // ---- data ---------------------------------------------------------------------------------

  private onMessage(session: PeerSession, message: Message): void {
    switch (message.type) {
      case 'vv':
        session.peerVersionVector(message.vv);
        this.checkOwnHistory(message.vv);
        this.answer(session, message.vv);
        return;
      case 'slots':
        this.enqueueMerge(session, message.slots, []);
        session.chunkArrived(message.round, message.index);
        return;
      case 'covered':
        if (session.roundComplete(message.round, message.chunks)) {
          // Queued behind the round's chunks, so its ranges advance only after their slots.
          for (const range of message.ranges) session.peerHolds(range);
          this.enqueueMerge(session, [], message.ranges, () => {
            session.lastSyncAt = this.timers.now();
            this.metrics.syncRound('received');
          });
        }
        return;
      case 'delta': {
        const replica = message.range.replica;
        this.enqueueMerge(
          session,
          message.slots.map((slot) => ({ page: slot.page, replica, count: slot.count, seq: slot.seq })),
          [message.range],
        );
        session.peerHolds(message.range, replica === session.peer?.replica);
        return;
      }
      case 'awareness':
        this.presence.applyRemote(message.update, session);
        return;
      case 'ping':
        session.send({ type: 'pong', id: message.id });
        return;
      case 'pong':
        return;
      case 'reject':
        this.log.warn({ peer: session.peer?.name, code: message.code, reason: message.reason }, 'peer closed the session');
        session.close(`refused by peer (${message.code}): ${message.reason}`);
        return;
      case 'hello':
      case 'auth':
        this.refuse(session, 'bad_frame', `"${message.type}" after the handshake`);
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

  /**
   * Group merge: everything peers sent during one turn of the event loop is merged in one
   * transaction (at most MAX_MERGE_BATCH_SLOTS slots), as group commit does for local increments.
   * Order is kept: all slots of the batch are merged before any of its ranges advance the vector,
   * and a range always comes after the slots that cover it.
   */
  private enqueueMerge(session: PeerSession, slots: readonly Slot[], ranges: readonly SeqRange[], applied?: () => void): void {
    this.mergeQueue.push({ session, slots, ranges, applied });
    this.queuedSlots += slots.length;
    if (this.queuedSlots >= MAX_MERGE_BATCH_SLOTS) {
      this.flushMerges();
      return;
    }
    if (this.mergeScheduled) return;
    this.mergeScheduled = true;
    void this.timers.yield().then(() => {
      this.mergeScheduled = false;
      this.flushMerges();
    });
  }

  private flushMerges(): void {
    const batch = this.mergeQueue.splice(0);
    this.queuedSlots = 0;
    if (batch.length === 0) return;
    const slots = batch.length === 1 ? batch[0]!.slots : batch.flatMap((item) => item.slots);
    const ranges = batch.flatMap((item) => item.ranges);
    let result: MergeResult;
    const started = performance.now();
    try {
      result = this.store.merge(slots, ranges);
    } catch (error) {
      // A store failure is not the peers' fault, but what they sent is not applied: drop them so
      // the next session resyncs it from their version vectors.
      this.log.error({ err: error, slots: slots.length }, 'merge failed');
      for (const session of new Set(batch.map((item) => item.session))) session.close('merge failed on the receiving node');
      return;
    }
    this.metrics.merged(slots.length, (performance.now() - started) / 1000);
    if (result.identityChanged !== undefined) this.identityChanged(result.identityChanged);
    for (const item of batch) item.applied?.();
  }

  private identityChanged(info: IdentityInfo): void {
    this.metrics.identityMinted();
    this.log.warn({ previous: info.previous, replicaId: info.replicaId, reason: info.reason }, 'replica went back in time: minted a new replica id');
    this.presence.updateLocal({ replicaId: info.replicaId });
  }

  /** Writes a sync answer for `peerVv`; a vv arriving meanwhile is answered right after. */
  private answer(session: PeerSession, peerVv: VersionVector): void {
    if (this.answering.has(session)) {
      this.answering.set(session, peerVv);
      return;
    }
    this.answering.set(session, undefined);
    void this.writeAnswer(session, peerVv)
      .catch((error: unknown) => {
        this.log.error({ err: error, peer: session.peer?.name }, 'sync answer failed');
        session.close('sync answer failed');
      })
      .finally(() => {
        const next = this.answering.get(session);
        this.answering.delete(session);
        if (next !== undefined && session.phase === 'open') this.answer(session, next);
      });
  }

  private async writeAnswer(session: PeerSession, peerVv: VersionVector): Promise<void> {
    const plan = planSyncAnswer(this.store, peerVv, this.syncChunkSlots);
    const round = session.newRound();
    let index = 0;
    for (const chunk of plan.chunks) {
      if (session.phase !== 'open') return;
      session.send({ type: 'slots', round, index: index++, slots: chunk });
      if (index % SYNC_CHUNKS_PER_TURN === 0) await this.timers.yield();
    }
    if (session.phase !== 'open') return;
    session.send({ type: 'covered', round, chunks: index, ranges: plan.ranges });
    for (const range of plan.ranges) session.peerHolds(range);
    this.metrics.syncRound('sent');
  }

  /** Pushes a local commit to every open session, encoded once. */
  private push(delta: Delta): void {
    const sessions = [...this.openSessions()];
    if (sessions.length === 0) return;
    if (delta.slots.length > this.syncChunkSlots) {
      // Too big for one frame: send it as a sync round instead, which is chunked.
      for (const session of sessions) this.pushAsRound(session, delta);
      return;
    }
    const message: Message = {
      type: 'delta',
      range: delta.range,
      slots: delta.slots.map((slot) => ({ page: slot.page, count: slot.count, seq: slot.seq })),
    };
    const frame = encodeMessage(message);
    for (const session of sessions) {
      if (session.connection.bufferedBytes() > this.maxSendBufferBytes) {
        session.lagging = true;
        this.metrics.deltaSkipped();
        continue;
      }
      session.lagging = false;
      session.sendFrame(frame, 'delta');
      session.peerHolds(delta.range);
    }
  }

  private pushAsRound(session: PeerSession, delta: Delta): void {
    if (session.connection.bufferedBytes() > this.maxSendBufferBytes) {
      session.lagging = true;
      this.metrics.deltaSkipped();
      return;
    }
    const round = session.newRound();
    let index = 0;
    for (let i = 0; i < delta.slots.length; i += this.syncChunkSlots) {
      session.send({ type: 'slots', round, index: index++, slots: delta.slots.slice(i, i + this.syncChunkSlots) });
    }
    session.send({ type: 'covered', round, chunks: index, ranges: [delta.range] });
    session.peerHolds(delta.range);
  }
}
