/**
 * A hand-driven peer for abuse tests: a plain `ws` client on a node's `/cluster` that can speak
 * the handshake correctly (so later frames reach the open phase) and then send anything at all.
 */
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { newReplicaId, type ReplicaId } from '../../src/ids.js';
import { authProof } from '../../src/protocol/auth.js';
import { decodeFrame, encodeMessage } from '../../src/protocol/codec.js';
import { type Message, NONCE_BYTES } from '../../src/protocol/messages.js';
import { PageTableIn } from '../../src/protocol/page-table.js';
import { FrameOpener, FrameSealer, sessionKey } from '../../src/protocol/session-mac.js';
import { CLUSTER_PATH } from '../../src/transport/websocket-transport.js';
import { eventually } from '../helpers/eventually.js';

export interface Closed {
  readonly code: number;
  readonly reason: string;
}

export class RawPeer {
  readonly replica: ReplicaId = newReplicaId();
  readonly nonce = new Uint8Array(randomBytes(NONCE_BYTES));
  /** Every frame the node sent, decoded (undecodable ones as undefined). */
  readonly received: Array<Message | undefined> = [];
  readonly closed: Promise<Closed>;

  /** Set once this peer sent its auth: what it sends from then on is sealed. */
  sealer: FrameSealer | undefined;
  /** Set once the node's auth arrived: what the node sends from then on is opened. */
  private opener: FrameOpener | undefined;
  private pendingOpener: FrameOpener | undefined;
  /** The replica the node's hello named: its own deltas leave it out (PROTOCOL.md §4, delta). */
  private helloReplica: ReplicaId | undefined;
  /** The node's page table towards this peer (PROTOCOL.md §4b): its deltas name pages by it. */
  private readonly pagesIn = new PageTableIn();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      try {
        const frame = new Uint8Array(data);
        const message = decodeFrame(this.opener === undefined ? frame : this.opener.open(frame), { sender: this.helloReplica, pagesIn: this.pagesIn });
        this.received.push(message);
        if (message.type === 'hello') this.helloReplica ??= message.replica;
        // The node's frames after its own auth are sealed.
        if (message.type === 'auth') this.opener = this.pendingOpener;
      } catch {
        this.received.push(undefined);
      }
    });
    // A socket error (e.g. reset after a close) is part of what these tests provoke.
    ws.on('error', () => undefined);
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') })));
  }

  /** Opens `/cluster` at `url`: a node's cluster port (its `privateUrl`); from `localAddress` when given (another loopback host). */
  static async connect(url: string, options: { readonly localAddress?: string } = {}): Promise<RawPeer> {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}${CLUSTER_PATH}`, { perMessageDeflate: false, ...(options.localAddress !== undefined ? { localAddress: options.localAddress } : {}) });
    const peer = new RawPeer(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return peer;
  }

  send(frame: Uint8Array | string): void {
    this.ws.send(frame, { binary: typeof frame !== 'string' });
  }

  /** Encodes and sends a message, sealed once this peer sent its auth. */
  sendMessage(message: Message): void {
    const frame = encodeMessage(message);
    this.send(this.sealer === undefined ? frame : this.sealer.seal(frame));
  }

  /** Stops reading from the socket: the node's frames pile up in its send buffer and the kernel's. */
  stopReading(): void {
    // ws has no public way to stop reading a client socket; pausing the net.Socket underneath does.
    (this.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  }

  /** The node's replica id, from its hello. */
  async nodeReplica(): Promise<ReplicaId> {
    return (await this.next('hello')).replica;
  }

  /** The first received message of `type`, waiting for it. */
  async next<T extends Message['type']>(type: T, timeoutMs = 5_000): Promise<Extract<Message, { type: T }>> {
    return eventually(
      () => {
        const found = this.received.find((m) => m?.type === type);
        if (found === undefined) throw new Error(`no ${type} frame received (got ${this.received.map((m) => m?.type ?? '?').join(', ')})`);
        return found as Extract<Message, { type: T }>;
      },
      { timeoutMs },
    );
  }

  /**
   * Completes the handshake as a legitimate member (as the dialler: it proves first); resolves
   * once the node sent its version vector.
   */
  async join(cluster: string, secret: string): Promise<void> {
    await this.handshake(cluster, secret);
    await this.next('vv');
  }

  /**
   * The handshake of `join`, then whichever comes first: the node's version vector (`open`: the
   * session was taken) or the socket's close (a refusal after the handshake, e.g. `full`).
   */
  async tryJoin(cluster: string, secret: string): Promise<'open' | Closed> {
    await this.handshake(cluster, secret);
    return Promise.race([this.next('vv', 15_000).then(() => 'open' as const), this.closed]);
  }

  private async handshake(cluster: string, secret: string): Promise<void> {
    this.send(encodeMessage({ type: 'hello', cluster, replica: this.replica, node: 'raw-peer', nonce: this.nonce }));
    const hello = await this.next('hello');
    const proof = authProof(secret, { cluster, challenge: hello.nonce, responderNonce: this.nonce, prover: this.replica, verifier: hello.replica });
    this.pendingOpener = new FrameOpener(
      sessionKey(secret, { cluster, sender: hello.replica, senderNonce: hello.nonce, receiver: this.replica, receiverNonce: this.nonce }),
    );
    this.send(encodeMessage({ type: 'auth', proof }));
    this.sealer = new FrameSealer(sessionKey(secret, { cluster, sender: this.replica, senderNonce: this.nonce, receiver: hello.replica, receiverNonce: hello.nonce }));
  }

  close(): void {
    this.ws.terminate();
  }
}
