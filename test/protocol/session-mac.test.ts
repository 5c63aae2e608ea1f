/**
 * The authenticated framing of sessions (session-mac.ts): a sealed frame opens only under its
 * direction's key, at its place in the sequence, unchanged. Fuzzed with fast-check: any change to
 * a sealed frame, any replay, drop or reorder, a frame of the other direction, or one sealed under
 * keys from a relayed handshake is refused with ProtocolError and nothing else.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ReplicaId } from '../../src/ids.js';
import { encodeMessage, ProtocolError } from '../../src/protocol/codec.js';
import { FrameOpener, FrameSealer, MAC_BYTES, sessionKey, type SessionKeyInput } from '../../src/protocol/session-mac.js';
import { messageArb } from './arbitraries.js';

const A = '0123456789abcdef0123456789abcdef' as ReplicaId;
const B = 'fedcba9876543210fedcba9876543210' as ReplicaId;
const C = '00112233445566778899aabbccddeeff' as ReplicaId;
const SECRET = 'a-test-secret-of-at-least-32-characters';
const nonceA = new Uint8Array(16).fill(1);
const nonceB = new Uint8Array(16).fill(2);
const aToB: SessionKeyInput = { cluster: 'c', sender: A, senderNonce: nonceA, receiver: B, receiverNonce: nonceB };
const bToA: SessionKeyInput = { cluster: 'c', sender: B, senderNonce: nonceB, receiver: A, receiverNonce: nonceA };

function pair(input: SessionKeyInput = aToB, secret = SECRET) {
  return { sealer: new FrameSealer(sessionKey(secret, input)), opener: new FrameOpener(sessionKey(SECRET, aToB)) };
}

function refused(open: () => unknown): ProtocolError {
  try {
    open();
  } catch (error) {
    if (error instanceof ProtocolError) return error;
    throw new Error(`threw something other than ProtocolError: ${String(error)}`, { cause: error });
  }
  throw new Error('the frame was accepted');
}

const framesArb = fc.array(messageArb, { minLength: 1, maxLength: 6 }).map((messages) => messages.map((m) => encodeMessage(m)));

describe('authenticated framing', () => {
  it('opens what it sealed, in order, giving back the frame', () => {
    fc.assert(
      fc.property(framesArb, (frames) => {
        const { sealer, opener } = pair();
        for (const frame of frames) {
          const sealed = sealer.seal(frame);
          expect(sealed.byteLength).toBe(frame.byteLength + MAC_BYTES);
          expect(opener.open(sealed)).toEqual(frame);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('refuses any sealed frame with one byte changed, cut or extended', () => {
    fc.assert(
      fc.property(framesArb, fc.nat(), fc.integer({ min: 1, max: 255 }), fc.constantFrom('flip', 'cut', 'extend'), (frames, at, mask, how) => {
        const { sealer, opener } = pair();
        const sealed = frames.map((frame) => sealer.seal(frame));
        const victim = at % sealed.length;
        for (let i = 0; i < victim; i++) opener.open(sealed[i]!);
        const bytes = sealed[victim]!;
        const bad =
          how === 'flip'
            ? bytes.map((byte, i) => (i === at % bytes.length ? byte ^ mask : byte))
            : how === 'cut'
              ? bytes.subarray(0, at % bytes.length)
              : Uint8Array.from([...bytes, mask]);
        refused(() => opener.open(bad));
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a replayed, dropped or reordered frame', () => {
    fc.assert(
      fc.property(framesArb.filter((f) => f.length >= 2), fc.constantFrom('replay', 'drop', 'swap'), (frames, how) => {
        const { sealer, opener } = pair();
        const sealed = frames.map((frame) => sealer.seal(frame));
        const order = how === 'replay' ? [0, 0] : how === 'drop' ? [1] : [1, 0];
        const error = refused(() => {
          for (const i of order) opener.open(sealed[i]!);
        });
        expect(error.message).toMatch(/does not verify/);
      }),
      { numRuns: 100 },
    );
  });

  it('refuses frames of the other direction, another secret, or keys a relay could have', () => {
    const frame = encodeMessage({ type: 'delta', range: { replica: A, after: 0, upTo: 1 }, slots: [] });
    // Reflected: B's own direction sent back to it.
    refused(() => pair(bToA).opener.open(pair(bToA).sealer.seal(frame)));
    // Another secret.
    refused(() => pair(aToB, 'another-secret-of-at-least-32-chars!!').opener.open(pair(aToB, 'another-secret-of-at-least-32-chars!!').sealer.seal(frame)));
    // A relay between A and B that poses as C to one of them: any key with C in it is another key.
    refused(() => pair({ ...aToB, sender: C }).opener.open(pair({ ...aToB, sender: C }).sealer.seal(frame)));
    // Other nonces (another connection).
    refused(() => pair({ ...aToB, senderNonce: nonceB }).opener.open(pair({ ...aToB, senderNonce: nonceB }).sealer.seal(frame)));
  });

  it('arbitrary bytes never open', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        refused(() => pair().opener.open(bytes));
      }),
      { numRuns: 300 },
    );
  });
});
