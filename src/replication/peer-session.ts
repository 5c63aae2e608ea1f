/**
 * One connection to a peer, from the first frame to close: the handshake (hello → auth, both
 * ways), then the open phase where the replicator exchanges version vectors, sync answers and
 * deltas over it. The session owns the per-connection state — the peer's identity, our
 * challenge, which chunks of each sync round arrived, traffic counters — and nothing else.
 */
import { canAdvance, seqOf, type SeqRange, type VersionVector } from '../crdt/version-vector.js';
import type { ReplicaId } from '../ids.js';
import { authProof, verifyProof } from '../protocol/auth.js';
import { encodeMessage } from '../protocol/codec.js';
import type { Message, RejectCode } from '../protocol/messages.js';
import type { Connection } from '../transport/transport.js';

/**
 * Sync rounds of a peer tracked at once. Past it the oldest is forgotten: that costs only the
 * version-vector advance of a round that was probably abandoned (a duplicated stray chunk), never
 * a value, and keeps a peer from growing our memory.
 */
export const MAX_OPEN_ROUNDS = 64;

export type SessionPhase = 'handshake' | 'open' | 'closed';

export interface HandshakeContext {
  readonly cluster: string;
  readonly secret: string;
  readonly replicaId: () => ReplicaId;
  readonly nodeName: string;
}

export interface PeerIdentity {
  readonly replica: ReplicaId;
  readonly name: string;
  readonly nonce: Uint8Array;
}

/** The result of feeding one handshake frame to the session. */
export type HandshakeStep =
  | { readonly kind: 'continue' }
  | { readonly kind: 'open' }
  | { readonly kind: 'reject'; readonly code: RejectCode; readonly reason: string }
  | { readonly kind: 'rejected'; readonly code: RejectCode; readonly reason: string };

export class PeerSession {
  phase: SessionPhase = 'handshake';
  peer: PeerIdentity | undefined;
  /** The replica id we announced in our hello (the store's may change later). */
  readonly localReplica: ReplicaId;
  readonly openedAt: number;
  lastReceivedAt: number;
  /**
   * What the peer holds, for the lag figures of the status: its last `vv` message, moved on by
   * the ranges it sent us and the ones we sent it in full since (see `peerHolds`). Never used to
   * decide what to send: sync answers go by the `vv` message itself.
   */
  peerVv: VersionVector | undefined;
  lastSyncAt: number | undefined;
  /** Set when a delta was skipped because the send buffer was over its bound. */
  lagging = false;
  bytesSent = 0;
  bytesReceived = 0;
  framesSent = 0;
  framesReceived = 0;
  private nextRound = 1;
  private readonly rounds = new Map<number, Set<number>>();
  private readonly nonce: Uint8Array;
  private nextPing = 1;

  constructor(
    readonly connection: Connection,
    private readonly context: HandshakeContext,
    now: number,
    randomBytes: (size: number) => Uint8Array,
    nonceBytes: number,
    private readonly onSent: (type: Message['type'], bytes: number) => void = () => {},
  ) {
    this.openedAt = now;
    this.lastReceivedAt = now;
    this.localReplica = context.replicaId();
    this.nonce = randomBytes(nonceBytes);
  }

  get id(): string {
    return this.connection.id;
  }

  /** Our hello: sent first on both sides of every connection. */
  hello(): Message {
    return { type: 'hello', cluster: this.context.cluster, replica: this.localReplica, node: this.context.nodeName, nonce: this.nonce };
  }

  /** Feeds a frame received during the handshake; says what to do next. */
  handshake(message: Message): HandshakeStep {
    switch (message.type) {
      case 'hello': {
        if (this.peer !== undefined) return { kind: 'reject', code: 'bad_frame', reason: 'second hello on one connection' };
        if (message.cluster !== this.context.cluster) {
          return { kind: 'reject', code: 'cluster', reason: `this node belongs to cluster "${this.context.cluster}", not "${message.cluster}"` };
        }
        if (message.replica === this.localReplica) return { kind: 'reject', code: 'self', reason: 'connected to itself' };
        this.peer = { replica: message.replica, name: message.node, nonce: message.nonce };
        this.send({ type: 'auth', proof: authProof(this.context.secret, this.proofInput('prove')) });
        return { kind: 'continue' };
      }
      case 'auth': {
        if (this.peer === undefined) return { kind: 'reject', code: 'bad_frame', reason: 'auth before hello' };
        if (!verifyProof(this.context.secret, this.proofInput('verify'), message.proof)) {
          return { kind: 'reject', code: 'auth', reason: 'the proof of CLUSTER_SECRET does not match: the nodes have different secrets' };
        }
        this.phase = 'open';
        return { kind: 'open' };
      }
      case 'reject':
        return { kind: 'rejected', code: message.code, reason: message.reason };
      case 'ping':
        this.send({ type: 'pong', id: message.id });
        return { kind: 'continue' };
      case 'pong':
        return { kind: 'continue' };
      default:
        return { kind: 'reject', code: 'bad_frame', reason: `"${message.type}" before the handshake finished` };
    }
  }

  private proofInput(role: 'prove' | 'verify') {
    const peer = this.peer!;
    return role === 'prove'
      ? { cluster: this.context.cluster, challenge: peer.nonce, responderNonce: this.nonce, prover: this.localReplica, verifier: peer.replica }
      : { cluster: this.context.cluster, challenge: this.nonce, responderNonce: peer.nonce, prover: peer.replica, verifier: this.localReplica };
  }

  /** Encodes and sends; counts bytes. Frames to a closed connection are dropped. */
  send(message: Message): number {
    if (this.phase === 'closed') return 0;
    return this.sendFrame(encodeMessage(message), message.type);
  }

  /** Sends a frame encoded once for many sessions (a live delta). */
  sendFrame(frame: Uint8Array, type: Message['type']): number {
    if (this.phase === 'closed') return 0;
    this.connection.send(frame);
    this.bytesSent += frame.byteLength;
    this.framesSent += 1;
    this.onSent(type, frame.byteLength);
    return frame.byteLength;
  }

  received(bytes: number, now: number): void {
    this.bytesReceived += bytes;
    this.framesReceived += 1;
    this.lastReceivedAt = now;
  }

  ping(): void {
    this.send({ type: 'ping', id: this.nextPing++ });
  }

  /** Sends a reject with its reason, then closes. */
  reject(code: RejectCode, reason: string): void {
    if (this.phase === 'closed') return;
    this.send({ type: 'reject', code, reason });
    this.close(`${code}: ${reason}`);
  }

  close(reason: string): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.connection.close(reason);
  }

  /** Sets the peer's version vector from its `vv` message. */
  peerVersionVector(vv: VersionVector): void {
    this.peerVv = new Map(vv);
  }

  /**
   * Notes that the peer holds `range`: it sent it (`always`, for the peer's own replica, whose
   * every seq it holds), or we sent it in full right after what it had. A range past a gap moves
   * nothing. Without this the lag figures would stay stale until the next anti-entropy round.
   */
  peerHolds(range: SeqRange, always = false): void {
    const vv = this.peerVv as Map<SeqRange['replica'], number> | undefined;
    if (vv === undefined) return;
    if (always ? range.upTo > seqOf(vv, range.replica) : canAdvance(vv, range)) vv.set(range.replica, range.upTo);
  }

  newRound(): number {
    return this.nextRound++;
  }

  /** Records that chunk `index` of the peer's sync round was merged. */
  chunkArrived(round: number, index: number): void {
    let chunks = this.rounds.get(round);
    if (chunks === undefined) {
      if (this.rounds.size >= MAX_OPEN_ROUNDS) this.rounds.delete(this.rounds.keys().next().value!);
      chunks = new Set();
      this.rounds.set(round, chunks);
    }
    chunks.add(index);
  }

  /** True when chunks 0..count-1 of the round all arrived; forgets the round either way. */
  roundComplete(round: number, count: number): boolean {
    const chunks = this.rounds.get(round);
    this.rounds.delete(round);
    if (count === 0) return true;
    if (chunks === undefined || chunks.size < count) return false;
    for (let i = 0; i < count; i++) if (!chunks.has(i)) return false;
    return true;
  }
}
