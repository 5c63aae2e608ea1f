/**
 * One connection to a peer, from the first frame to close. `receive(frame)` is the one door for
 * what a peer sends: every frame is decoded and validated, checked against the session's state
 * (handshake first, chunks before the end of their round) and answered when it is the session's
 * own business (hello → auth, ping → pong) before anything else sees it. What is left comes out as
 * one `SessionEvent` for the replicator to act on. A frame that fails a check closes this session
 * with a reason and produces nothing else. New per-frame checks (a MAC, a claim against what the
 * peer delivered, a bound on work) belong in `receive`, before the event is returned.
 *
 * The session owns the per-connection state — the peer's identity, our challenge, which chunks of
 * each sync round arrived, what the peer holds, traffic counters — and nothing else.
 *
 * Over 300 lines: `receive` and its check of every message type are the one door for a peer's
 * frames (docs/design.md, invariant 4), which is what keeps them together.
 */
import { keyOf } from '../crdt/series.js';
import { valueOf, type Slot } from '../crdt/g-counter.js';
import { canAdvance, seqOf, type SeqRange, type VersionVector } from '../crdt/version-vector.js';
import type { RandomBytes, ReplicaId } from '../ids.js';
import type { LatencyProbe } from '../latency-probe.js';
import { authProof, verifyProof } from '../protocol/auth.js';
import { decodeFrame, encodeMessage, ProtocolError } from '../protocol/codec.js';
import { PageTableIn, PageTableOut } from '../protocol/page-table.js';
import { FrameOpener, FrameSealer, sessionKey } from '../protocol/session-mac.js';
import { type Message, NONCE_BYTES, PROTOCOL_VERSION, type RejectCode } from '../protocol/messages.js';
import type { Connection } from '../transport/transport.js';
import { highestSeqs, justified, ReceivedRounds } from './received-rounds.js';
import type { ReplicationMetrics } from './replication-metrics.js';

export type SessionPhase = 'handshake' | 'open' | 'closed';

export interface SessionContext {
  readonly cluster: string;
  readonly secret: string;
  /** The replica id to announce; read once, when the session starts. */
  readonly replicaId: () => ReplicaId;
  readonly nodeName: string;
  readonly randomBytes: RandomBytes;
  readonly metrics: Pick<ReplicationMetrics, 'frameSent' | 'frameReceived' | 'badFrame'>;
  /**
   * Whether slots of `replica` from this peer may be taken: true for a replica we know; for a new
   * one, true while the peer's budget of new replica ids lasts (see new-replica-budget.ts).
   * Slots refused here are dropped and justify no coverage; a later round brings them.
   */
  readonly admitReplica: (replica: ReplicaId, peer: PeerSession) => boolean;
  /** Bench only: no per-frame MAC after the handshake (what the bench's `mac` phase compares against). */
  readonly unsealedFrames?: boolean;
  /** Stamps `received` for the sampled pages of a delta (bench diagnostics); undefined: off. */
  readonly probe?: LatencyProbe;
}

/**
 * Highest seq a peer may name (in a slot, a range or a vector entry): 2^48, far beyond any real
 * replica (a million commits a second for nine years) and far below 2^53, so no claim can push
 * an entry to where the next seq would no longer be a safe integer.
 */
export const MAX_CLAIMED_SEQ = 2 ** 48;
/** Entries of our vector per `vv`/`vvPart` frame: under MAX_FRAME_ENTRIES (decoding costs per entry), about 100 KB. */
export const VV_CHUNK_ENTRIES = 4_000;
/**
 * Digests from one peer acted on at most once per this many ms (an honest peer sends one per
 * anti-entropy round to one or two peers): each one that mismatches costs us a vector, so a
 * peer flooding digests gets at most a few vectors a second, not one per frame.
 */
export const MIN_DIGEST_GAP_MS = 250;
/** Entries a peer's vector may have across its parts; more closes the session. */
export const MAX_PEER_VV_ENTRIES = 1_000_000;

export interface PeerIdentity {
  readonly replica: ReplicaId;
  readonly name: string;
  readonly nonce: Uint8Array;
}

/** Why a session ended with a reject: sent by us (`by: 'us'`) or received from the peer. */
export interface SessionEnding {
  readonly by: 'us' | 'peer';
  readonly code: RejectCode;
  readonly reason: string;
  /** True when it ended before the handshake completed. */
  readonly inHandshake: boolean;
}

/** What a received frame leaves for the replicator to do. */
export type SessionEvent =
  /** Nothing: a handshake step, a ping answered, a pong, a round that ended incomplete, or a frame after close. */
  | { readonly kind: 'none' }
  /** The handshake completed: `peer` is authenticated. */
  | { readonly kind: 'open' }
  /** The session ended with a reject (ours: it was sent; the peer's: it was received). The socket is closed. */
  | ({ readonly kind: 'closed' } & SessionEnding)
  /** The peer's version vector: answer with what it lacks. */
  | { readonly kind: 'vv'; readonly vv: VersionVector }
  /** One chunk of the peer's sync answer: merge it; it advances nothing. */
  | { readonly kind: 'slots'; readonly slots: readonly Slot[] }
  /** The end of a sync round whose every chunk arrived: the ranges may advance once merged after those chunks. */
  | { readonly kind: 'covered'; readonly ranges: readonly SeqRange[] }
  /**
   * A live delta, its slots named by their replica; `ranges` is its range when its slots justify it, else empty.
   * `relay` is the delta as it came, for the broadcast tree to pass on: set only when it is justified and every slot was admitted.
   */
  | { readonly kind: 'delta'; readonly ranges: readonly SeqRange[]; readonly slots: readonly Slot[]; readonly relay?: Extract<Message, { type: 'delta' }> }
  /** Broadcast tree (bounded-degree mode): the peer holds these deltas / wants them and eager pushes / wants only announcements. */
  | { readonly kind: 'ihave'; readonly ranges: readonly SeqRange[] }
  | { readonly kind: 'graft'; readonly ranges: readonly SeqRange[] }
  | { readonly kind: 'prune' }
  | { readonly kind: 'awareness'; readonly update: Uint8Array }
  /** The peer's anti-entropy digest (at most one per MIN_DIGEST_GAP_MS; more are ignored): compare, and send our vv on a mismatch. */
  | { readonly kind: 'digest'; readonly digest: Uint8Array };

const NOTHING: SessionEvent = { kind: 'none' };

/** The close reason of a session the peer refused; also what its dial target shows as last error. */
export function refusedByPeer(code: RejectCode, reason: string): string {
  return `refused by peer (${code}): ${reason}`;
}

function seqProblem(slots: readonly Slot[]): string | undefined {
  for (const slot of slots) if (slot.seq > MAX_CLAIMED_SEQ) return `slot seq ${slot.seq} is beyond ${MAX_CLAIMED_SEQ}`;
  return undefined;
}

export class PeerSession {
  private currentPhase: SessionPhase = 'handshake';
  private identity: PeerIdentity | undefined;
  private endedWith: SessionEnding | undefined;
  /** The replica id we announced in our hello (the store's may change later). */
  readonly localReplica: ReplicaId;
  readonly openedAt: number;
  lastReceivedAt: number;
  /**
   * What the peer holds, for the lag figures of the status: its last `vv` message, moved on by
   * the ranges it sent us and the ones we sent it in full since (see `peerHolds`). Never used to
   * decide what to send: sync answers go by the `vv` message itself.
   */
  private heldByPeer: Map<ReplicaId, number> | undefined;
  lastSyncAt: number | undefined;
  /** Whether the last completed round's slots justified every range it claimed (sync-source.ts: an answer in full). */
  lastRoundWhole = false;
  bytesSent = 0;
  bytesReceived = 0;
  private nextRound = 1;
  private readonly rounds = new ReceivedRounds();
  private readonly nonce: Uint8Array;
  private nextPing = 1;
  /** Seals what we send once our `auth` is out; opens what the peer sends once its `auth` verified. */
  private sealer: FrameSealer | undefined;
  private opener: FrameOpener | undefined;
  /** The page tables of the two directions (PROTOCOL.md §4b): live deltas only, bounded there. */
  private readonly pagesOut = new PageTableOut();
  private readonly pagesIn = new PageTableIn();
  /** Entries of a vector the peer is sending in parts. */
  private vvParts: Map<ReplicaId, number> | undefined;
  private paused = false;
  /** When the last digest of the peer was acted on. */
  private digestActedAt = Number.NEGATIVE_INFINITY;
  /** We sent the peer a digest: its `vv` (sent on a mismatch) is answered and met with ours, once. */
  private digestOut = false;

  constructor(
    readonly connection: Connection,
    private readonly context: SessionContext,
    now: number,
  ) {
    this.openedAt = now;
    this.lastReceivedAt = now;
    this.localReplica = context.replicaId();
    this.nonce = context.randomBytes(NONCE_BYTES);
  }

  get phase(): SessionPhase {
    return this.currentPhase;
  }

  /** The peer as its hello named it (authenticated once the phase is `open`). */
  get peer(): PeerIdentity | undefined {
    return this.identity;
  }

  /** Set when the session ended with a reject, either way. */
  get ending(): SessionEnding | undefined {
    return this.endedWith;
  }

  get peerVv(): VersionVector | undefined {
    return this.heldByPeer;
  }

  /** Our hello: sent first on both sides of every connection. */
  hello(): Message {
    return { type: 'hello', cluster: this.context.cluster, replica: this.localReplica, node: this.context.nodeName, nonce: this.nonce };
  }

  /**
   * Takes one frame from the peer. Decoding, the handshake, ping and round bookkeeping happen
   * here; the returned event is all the caller acts on. A bad frame closes the session (a
   * `closed` event), so nothing after this runs on unchecked input.
   */
  receive(frame: Uint8Array, now: number): SessionEvent {
    if (this.currentPhase === 'closed') return NOTHING;
    const arrivedAt = this.context.probe?.now();
    this.bytesReceived += frame.byteLength;
    this.lastReceivedAt = now;
    let message: Message;
    try {
      // After the peer's auth, nothing is read of a frame whose MAC does not verify.
      // A delta of the peer's own replica leaves it out: the one its hello named.
      message = decodeFrame(this.opener === undefined ? frame : this.opener.open(frame), { sender: this.identity?.replica, pagesIn: this.pagesIn });
    } catch (error) {
      this.context.metrics.badFrame();
      if (error instanceof ProtocolError && error.code === 'protocol_version') {
        return this.refuse('protocol_version', `this node speaks protocol version ${PROTOCOL_VERSION}, the peer version ${error.version}`);
      }
      return this.refuse('bad_frame', error instanceof Error ? error.message : 'undecodable frame');
    }
    this.context.metrics.frameReceived(message.type, frame.byteLength);
    const event = this.currentPhase === 'handshake' ? this.handshake(message) : this.opened(message);
    if (arrivedAt !== undefined && event.kind === 'delta') this.context.probe?.markAll('received', event.slots, this.identity?.name, arrivedAt);
    return event;
  }

  /**
   * A frame during the handshake: hello both ways, then the dialler's auth, then — only once that
   * verified — the listener's. So a node that is merely connected to (the cheap attack) never
   * shows a keyed value before the other side proved it knows the secret. Nothing else but ping,
   * pong and reject.
   */
  private handshake(message: Message): SessionEvent {
    switch (message.type) {
      case 'hello': {
        if (this.identity !== undefined) return this.refuse('bad_frame', 'second hello on one connection');
        if (message.cluster !== this.context.cluster) {
          return this.refuse('cluster', `this node belongs to cluster "${this.context.cluster}", not "${message.cluster}"`);
        }
        if (message.replica === this.localReplica) return this.refuse('self', 'connected to itself');
        this.identity = { replica: message.replica, name: message.node, nonce: message.nonce };
        if (this.dialler) this.sendAuth();
        return NOTHING;
      }
      case 'auth': {
        if (this.identity === undefined) return this.refuse('bad_frame', 'auth before hello');
        if (!verifyProof(this.context.secret, this.proofInput('verify'), message.proof)) {
          return this.refuse('auth', 'the proof of CLUSTER_SECRET does not match: the nodes have different secrets');
        }
        if (!this.dialler) this.sendAuth();
        if (this.context.unsealedFrames !== true) this.opener = new FrameOpener(this.key('receive'));
        this.currentPhase = 'open';
        return { kind: 'open' };
      }
      case 'reject':
        return this.peerRefused(message.code, message.reason);
      case 'ping':
        this.send({ type: 'pong', id: message.id });
        return NOTHING;
      case 'pong':
        return NOTHING;
      default:
        return this.refuse('bad_frame', `"${message.type}" before the handshake finished`);
    }
  }

  /** The dialling side proves first. */
  private get dialler(): boolean {
    return this.connection.direction === 'outbound';
  }

  /** Sends our proof; every frame after it is sealed. */
  private sendAuth(): void {
    this.send({ type: 'auth', proof: authProof(this.context.secret, this.proofInput('prove')) });
    if (this.context.unsealedFrames !== true) this.sealer = new FrameSealer(this.key('send'));
  }

  private key(direction: 'send' | 'receive') {
    const peer = this.identity!;
    const us = { id: this.localReplica, nonce: this.nonce };
    const them = { id: peer.replica, nonce: peer.nonce };
    const [sender, receiver] = direction === 'send' ? [us, them] : [them, us];
    return sessionKey(this.context.secret, {
      cluster: this.context.cluster,
      sender: sender.id,
      senderNonce: sender.nonce,
      receiver: receiver.id,
      receiverNonce: receiver.nonce,
    });
  }

  /** A frame after the handshake: every claim in it checked before it leaves as an event. */
  private opened(message: Message): SessionEvent {
    switch (message.type) {
      case 'vvPart':
      case 'vv': {
        const parts = this.vvParts ?? new Map<ReplicaId, number>();
        if (parts.size + message.vv.size > MAX_PEER_VV_ENTRIES) return this.refuse('bad_frame', `version vector of more than ${MAX_PEER_VV_ENTRIES} entries`);
        for (const [replica, seq] of message.vv) {
          if (seq > MAX_CLAIMED_SEQ) return this.refuse('bad_frame', `vv entry ${seq} for ${replica} is beyond ${MAX_CLAIMED_SEQ}`);
          if (parts.has(replica)) return this.refuse('bad_frame', `version vector names replica ${replica} twice across its parts`);
          parts.set(replica, seq);
        }
        if (message.type === 'vvPart') {
          this.vvParts = parts;
          return NOTHING;
        }
        this.vvParts = undefined;
        this.heldByPeer = new Map(parts);
        return { kind: 'vv', vv: parts };
      }
      case 'slots': {
        const problem = seqProblem(message.slots);
        if (problem !== undefined) return this.refuse('bad_frame', problem);
        const slots = this.admitted(message.slots);
        this.rounds.chunkArrived(message.round, message.index, slots);
        return { kind: 'slots', slots };
      }
      case 'covered': {
        // A round's ranges count only when every one of its chunks arrived on this session, and
        // then only those its delivered slots justify.
        const ranges = this.rounds.covered(message.round, message.chunks, message.ranges);
        if (ranges === undefined) return NOTHING;
        this.lastRoundWhole = ranges.length === message.ranges.length;
        for (const range of ranges) this.peerHolds(range);
        return { kind: 'covered', ranges };
      }
      case 'delta': {
        const replica = message.range.replica;
        if (message.range.upTo > MAX_CLAIMED_SEQ) return this.refuse('bad_frame', `delta range ends at ${message.range.upTo}, beyond ${MAX_CLAIMED_SEQ}`);
        const slots = this.admitted(message.slots.map((slot) => ({ page: slot.page, replica, ...valueOf(slot), ...keyOf(slot) })));
        const ranges = justified([message.range], highestSeqs(slots));
        for (const range of ranges) this.peerHolds(range, replica === this.identity?.replica);
        const whole = ranges.length === 1 && slots.length === message.slots.length;
        return whole ? { kind: 'delta', ranges, slots, relay: message } : { kind: 'delta', ranges, slots };
      }
      case 'ihave':
      case 'graft': {
        for (const range of message.ranges) {
          if (range.upTo > MAX_CLAIMED_SEQ) return this.refuse('bad_frame', `${message.type} range ends at ${range.upTo}, beyond ${MAX_CLAIMED_SEQ}`);
        }
        return { kind: message.type, ranges: message.ranges };
      }
      case 'prune':
        return { kind: 'prune' };
      case 'awareness':
        return { kind: 'awareness', update: message.update };
      case 'digest': {
        if (this.lastReceivedAt - this.digestActedAt < MIN_DIGEST_GAP_MS) return NOTHING;
        this.digestActedAt = this.lastReceivedAt;
        return { kind: 'digest', digest: message.digest };
      }
      case 'ping':
        this.send({ type: 'pong', id: message.id });
        return NOTHING;
      case 'pong':
        return NOTHING;
      case 'reject':
        return this.peerRefused(message.code, message.reason);
      case 'hello':
      case 'auth':
        return this.refuse('bad_frame', `"${message.type}" after the handshake`);
      default:
        return this.refuse('bad_frame', `unexpected "${(message as Message).type}"`);
    }
  }

  /** The slots whose replica the peer may speak for now (known, or within its new-id budget). */
  private admitted(slots: readonly Slot[]): Slot[] {
    const verdict = new Map<ReplicaId, boolean>();
    return slots.filter((slot) => {
      let ok = verdict.get(slot.replica);
      if (ok === undefined) {
        ok = this.context.admitReplica(slot.replica, this);
        verdict.set(slot.replica, ok);
      }
      return ok;
    });
  }

  private refuse(code: RejectCode, reason: string): SessionEvent {
    this.reject(code, reason);
    return { kind: 'closed', ...this.endedWith! };
  }

  private peerRefused(code: RejectCode, reason: string): SessionEvent {
    this.endedWith = { by: 'peer', code, reason, inHandshake: this.currentPhase === 'handshake' };
    this.close(refusedByPeer(code, reason));
    return { kind: 'closed', ...this.endedWith };
  }

  private proofInput(role: 'prove' | 'verify') {
    const peer = this.identity!;
    return role === 'prove'
      ? { cluster: this.context.cluster, challenge: peer.nonce, responderNonce: this.nonce, prover: this.localReplica, verifier: peer.replica }
      : { cluster: this.context.cluster, challenge: this.nonce, responderNonce: peer.nonce, prover: peer.replica, verifier: this.localReplica };
  }

  /** Encodes and sends; counts bytes. Frames to a closed session are dropped. */
  send(message: Message): number {
    if (this.currentPhase === 'closed') return 0;
    return this.sendFrame(encodeMessage(message), message.type);
  }

  /** Our version vector, in parts of VV_CHUNK_ENTRIES when it is bigger (never one frame over the limit). */
  sendVv(vv: VersionVector): void {
    if (vv.size <= VV_CHUNK_ENTRIES) {
      this.send({ type: 'vv', vv });
      return;
    }
    const entries = [...vv];
    for (let i = 0; i < entries.length; i += VV_CHUNK_ENTRIES) {
      const part = new Map(entries.slice(i, i + VV_CHUNK_ENTRIES));
      this.send(i + VV_CHUNK_ENTRIES < entries.length ? { type: 'vvPart', vv: part } : { type: 'vv', vv: part });
    }
  }

  /**
   * Sends a live delta, encoded for this session: our replica left out when the hello named it,
   * its pages by this direction's page table. Nothing is encoded for a closed session, so the
   * table only ever holds what the peer was sent.
   */
  sendDelta(message: Extract<Message, { type: 'delta' }>): number {
    if (this.currentPhase === 'closed') return 0;
    return this.sendFrame(encodeMessage(message, { sender: this.localReplica, pagesOut: this.pagesOut }), 'delta');
  }

  /** Sends a frame encoded once for many sessions (the broadcast tree's deltas, without any session's state). */
  sendFrame(body: Uint8Array, type: Message['type']): number {
    if (this.currentPhase === 'closed') return 0;
    const frame = this.sealer === undefined ? body : this.sealer.seal(body);
    this.connection.send(frame);
    this.bytesSent += frame.byteLength;
    this.context.metrics.frameSent(type, frame.byteLength);
    return frame.byteLength;
  }

  /**
   * Set while the merge queue holds this peer's socket paused. The peer's frames then wait in
   * the socket, so its silence is ours: the heartbeat does not count it (see SessionTable).
   */
  get readingPaused(): boolean {
    return this.paused;
  }

  /** Backpressure from the merge queue: stop reading this peer until its backlog is merged. */
  pause(): void {
    this.paused = true;
    this.connection.pause?.();
  }

  resume(): void {
    this.paused = false;
    this.connection.resume?.();
  }

  /** Anti-entropy, first step: our digest; the peer's `vv`, if it differs, is met with ours (`takeDigestReply`). */
  sendDigest(digest: Uint8Array): void {
    this.digestOut = true;
    this.send({ type: 'digest', digest });
  }

  /** The peer's digest equals ours: it holds exactly our vector (for the lag figures, as a `vv` would). */
  peerMatches(vv: VersionVector): void {
    this.heldByPeer = new Map(vv);
  }

  /** True once after we sent a digest: the `vv` that arrived is the peer's reply, and ours goes back. */
  takeDigestReply(): boolean {
    const out = this.digestOut;
    this.digestOut = false;
    return out;
  }

  ping(): void {
    this.send({ type: 'ping', id: this.nextPing++ });
  }

  /** Sends a reject with its reason, then closes. */
  reject(code: RejectCode, reason: string): void {
    if (this.currentPhase === 'closed') return;
    this.endedWith = { by: 'us', code, reason, inHandshake: this.currentPhase === 'handshake' };
    this.send({ type: 'reject', code, reason });
    this.close(`${code}: ${reason}`);
  }

  /** Closes the connection. The phase is `closed` before the connection's close handler runs. */
  close(reason: string): void {
    if (this.currentPhase === 'closed') return;
    this.currentPhase = 'closed';
    this.connection.close(reason);
  }

  /**
   * Called from the connection's close handler. True when the session was still open, i.e. the
   * peer or the link ended it rather than this side.
   */
  connectionClosed(): boolean {
    const wasOpen = this.currentPhase === 'open';
    this.currentPhase = 'closed';
    return wasOpen;
  }

  /** A sync round the peer sent us completed and was merged. */
  synced(at: number): void {
    this.lastSyncAt = at;
  }

  /**
   * Notes that the peer holds `range`: it sent it (`always`, for the peer's own replica, whose
   * every seq it holds), or we sent it in full right after what it had. A range past a gap moves
   * nothing. Without this the lag figures would stay stale until the next anti-entropy round.
   */
  peerHolds(range: SeqRange, always = false): void {
    const vv = this.heldByPeer;
    if (vv === undefined) return;
    if (always ? range.upTo > seqOf(vv, range.replica) : canAdvance(vv, range)) vv.set(range.replica, range.upTo);
  }

  newRound(): number {
    return this.nextRound++;
  }
}
