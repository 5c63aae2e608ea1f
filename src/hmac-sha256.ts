/**
 * HMAC-SHA256 (RFC 2104) for the small messages of the hot paths — every peer frame's MAC
 * (protocol/session-mac.ts) and every answer's Counter-Session token (http/session-token.ts) — as
 * two one-shot hashes over buffers held by the instance: H(K ⊕ opad · H(K ⊕ ipad · message)).
 * The bytes are those of `createHmac('sha256', key)`; what changes is the cost: on Node 20 a
 * `createHmac` object (native handle, two updates, digest) took ~4–5 µs a frame here, the two
 * `crypto.hash` calls ~2 µs, and they leave no object for the collector (issue 19). Messages
 * longer than MAX_FAST_MESSAGE_BYTES go through `createHmac` (same bytes, rare: large frames).
 *
 * Digests pass through 'binary' (latin1) strings: `crypto.hash` returns a Buffer through a slower
 * path on Node 20 (~3× here), and latin1 maps each byte to one char code and back unchanged.
 */
import { createHmac, createSecretKey, hash, type KeyObject } from 'node:crypto';

const BLOCK_BYTES = 64;
const DIGEST_BYTES = 32;
/** Longest message MACed without `createHmac`: the instance holds a scratch buffer of this size. */
export const MAX_FAST_MESSAGE_BYTES = 2048;

export class HmacSha256 {
  /** K ⊕ ipad, then room for the message. */
  private readonly inner = Buffer.alloc(BLOCK_BYTES + MAX_FAST_MESSAGE_BYTES);
  /** K ⊕ opad, then the inner digest. */
  private readonly outer = Buffer.alloc(BLOCK_BYTES + DIGEST_BYTES);
  private readonly key: KeyObject;

  /** `key`: raw bytes or a secret KeyObject (exported once here). */
  constructor(key: Uint8Array | KeyObject) {
    let raw = key instanceof Uint8Array ? key : key.export();
    // RFC 2104: a key longer than the block is hashed first.
    if (raw.byteLength > BLOCK_BYTES) raw = Buffer.from(hash('sha256', raw, 'binary'), 'latin1');
    for (let i = 0; i < BLOCK_BYTES; i++) {
      const byte = raw[i] ?? 0;
      this.inner[i] = byte ^ 0x36;
      this.outer[i] = byte ^ 0x5c;
    }
    this.key = key instanceof Uint8Array ? createSecretKey(key) : key;
  }

  /** The 32-byte HMAC of the concatenation of `parts`. */
  digest(...parts: readonly Uint8Array[]): Buffer {
    let length = 0;
    for (const part of parts) length += part.byteLength;
    if (length > MAX_FAST_MESSAGE_BYTES) {
      const mac = createHmac('sha256', this.key);
      for (const part of parts) mac.update(part);
      return mac.digest();
    }
    let at = BLOCK_BYTES;
    for (const part of parts) {
      this.inner.set(part, at);
      at += part.byteLength;
    }
    this.outer.write(hash('sha256', this.inner.subarray(0, at), 'binary'), BLOCK_BYTES, DIGEST_BYTES, 'latin1');
    return Buffer.from(hash('sha256', this.outer, 'binary'), 'latin1');
  }
}
