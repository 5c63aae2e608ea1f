/**
 * The hot paths' HMAC (src/hmac-sha256.ts) is byte for byte `createHmac('sha256', key)`: frame
 * MACs and session tokens made before it verify after it, and across nodes on either version.
 */
import { createHmac, createSecretKey } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HmacSha256, MAX_FAST_MESSAGE_BYTES } from '../src/hmac-sha256.js';

function reference(key: Uint8Array, parts: readonly Uint8Array[]): Buffer {
  const mac = createHmac('sha256', key);
  for (const part of parts) mac.update(part);
  return mac.digest();
}

const bytes = (maxLength: number) => fc.uint8Array({ maxLength });

describe('HmacSha256', () => {
  it('equals createHmac for any key and message, split into any parts, on both sides of the fast bound', () => {
    fc.assert(
      fc.property(bytes(150), fc.array(bytes(MAX_FAST_MESSAGE_BYTES / 2 + 64), { maxLength: 4 }), (key, parts) => {
        const hmac = new HmacSha256(key);
        expect(hmac.digest(...parts).equals(reference(key, parts))).toBe(true);
        // Again with the same instance: the scratch buffers hold nothing of the previous message.
        expect(hmac.digest(...parts.slice(1)).equals(reference(key, parts.slice(1)))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('takes a KeyObject as the raw key it holds', () => {
    const key = Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex');
    const message = Buffer.from('frame body');
    expect(new HmacSha256(createSecretKey(key)).digest(message).equals(reference(key, [message]))).toBe(true);
  });

  it('is exact at the fast bound and one byte past it', () => {
    const key = Buffer.alloc(32, 7);
    for (const length of [0, 1, MAX_FAST_MESSAGE_BYTES - 1, MAX_FAST_MESSAGE_BYTES, MAX_FAST_MESSAGE_BYTES + 1]) {
      const message = Buffer.alloc(length, length & 0xff);
      expect(new HmacSha256(key).digest(message).toString('hex')).toBe(reference(key, [message]).toString('hex'));
    }
  });

  it('matches the RFC 4231 test case 2 vector', () => {
    const mac = new HmacSha256(Buffer.from('Jefe')).digest(Buffer.from('what do ya want '), Buffer.from('for nothing?'));
    expect(mac.toString('hex')).toBe('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
  });
});
