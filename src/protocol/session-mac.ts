/**
 * Authenticated framing after the handshake. Once a side has sent its `auth`, every frame it sends
 * is `body · mac`, where `body` is the frame as `encodeMessage` makes it and `mac` the first
 * MAC_BYTES of HMAC-SHA256 under that direction's session key over `u64 seq · body`. `seq` is not
 * sent: each side counts the sealed frames of a direction from 0, so a frame replayed, dropped,
 * reordered or moved to the other direction no longer verifies, and the session ends.
 *
 * The keys come from HKDF-SHA256 (RFC 5869) over CLUSTER_SECRET, salted with both hello nonces and
 * bound to the cluster, both replica ids and the direction: only the two endpoints can derive them,
 * and a party that relays a handshake between two nodes learns neither key. Pure: no I/O, no clock.
 */
import { hkdfSync, timingSafeEqual, type KeyObject, createSecretKey } from 'node:crypto';
import * as encoding from 'lib0/encoding';
import { HmacSha256 } from '../hmac-sha256.js';
import { replicaIdToBytes, type ReplicaId } from '../ids.js';
import { PROTOCOL_VERSION } from './messages.js';
import { bad } from './protocol-error.js';

export const MAC_BYTES = 16;
export const SESSION_KEY_LABEL = 'distributed-sqlite/session-key';
const KEY_BYTES = 32;

export interface SessionKeyInput {
  readonly cluster: string;
  /** The sender of the frames this key authenticates, and its hello nonce. */
  readonly sender: ReplicaId;
  readonly senderNonce: Uint8Array;
  /** Their receiver, and its hello nonce. */
  readonly receiver: ReplicaId;
  readonly receiverNonce: Uint8Array;
}

/** The key of one direction (sender → receiver) of a session. */
export function sessionKey(secret: string, input: SessionKeyInput): KeyObject {
  const salt = new Uint8Array(input.senderNonce.byteLength + input.receiverNonce.byteLength);
  salt.set(input.senderNonce, 0);
  salt.set(input.receiverNonce, input.senderNonce.byteLength);
  const info = encoding.createEncoder();
  encoding.writeVarString(info, SESSION_KEY_LABEL);
  encoding.writeVarUint(info, PROTOCOL_VERSION);
  encoding.writeVarString(info, input.cluster);
  encoding.writeVarUint8Array(info, replicaIdToBytes(input.sender));
  encoding.writeVarUint8Array(info, replicaIdToBytes(input.receiver));
  const key = hkdfSync('sha256', Buffer.from(secret, 'utf8'), salt, encoding.toUint8Array(info), KEY_BYTES);
  return createSecretKey(new Uint8Array(key));
}

/** `counter`: the caller's 8-byte scratch buffer (one per sealer or opener: no allocation per frame). */
function mac(hmac: HmacSha256, seq: number, body: Uint8Array, counter: Buffer): Buffer {
  // seq < 2^53: the high 32 bits and the low 32 bits, big-endian, as a u64.
  counter.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 0);
  counter.writeUInt32BE(seq >>> 0, 4);
  return hmac.digest(counter, body).subarray(0, MAC_BYTES);
}

/** Appends the MAC of each frame a side sends, counting them. */
export class FrameSealer {
  private seq = 0;
  private readonly counter = Buffer.alloc(8);
  private readonly hmac: HmacSha256;

  constructor(key: KeyObject) {
    this.hmac = new HmacSha256(key);
  }

  seal(body: Uint8Array): Uint8Array {
    const tag = mac(this.hmac, this.seq++, body, this.counter);
    const out = new Uint8Array(body.byteLength + MAC_BYTES);
    out.set(body, 0);
    out.set(tag, body.byteLength);
    return out;
  }
}

/** Checks and strips the MAC of each frame a side receives, counting them. */
export class FrameOpener {
  private seq = 0;
  private readonly counter = Buffer.alloc(8);
  private readonly hmac: HmacSha256;

  constructor(key: KeyObject) {
    this.hmac = new HmacSha256(key);
  }

  /** The body of a sealed frame; throws `ProtocolError('bad_frame')` when its MAC does not verify. */
  open(frame: Uint8Array): Uint8Array {
    if (frame.byteLength <= MAC_BYTES) bad(`sealed frame of ${frame.byteLength} bytes is too short for its ${MAC_BYTES}-byte MAC`);
    const body = frame.subarray(0, frame.byteLength - MAC_BYTES);
    const expected = mac(this.hmac, this.seq, body, this.counter);
    if (!timingSafeEqual(expected, frame.subarray(frame.byteLength - MAC_BYTES))) {
      bad(`frame ${this.seq} of the session does not verify: forged, replayed, reordered or dropped frames end the session`);
    }
    this.seq++;
    return body;
  }
}
