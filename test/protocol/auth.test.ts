import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ReplicaId } from '../../src/ids.js';
import { authProof, verifyProof, type AuthInput } from '../../src/protocol/auth.js';
import { NONCE_BYTES, PROOF_BYTES } from '../../src/protocol/messages.js';
import { replicaIdArb } from './arbitraries.js';

const A = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' as ReplicaId;
const B = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' as ReplicaId;
const SECRET = 'correct horse battery staple';

function input(overrides: Partial<AuthInput> = {}): AuthInput {
  return {
    cluster: 'prod',
    challenge: new Uint8Array(NONCE_BYTES).fill(1),
    responderNonce: new Uint8Array(NONCE_BYTES).fill(2),
    prover: A,
    verifier: B,
    ...overrides,
  };
}

describe('authProof / verifyProof', () => {
  it('is a PROOF_BYTES-long HMAC the verifier accepts, deterministic for one input', () => {
    const proof = authProof(SECRET, input());
    expect(proof.byteLength).toBe(PROOF_BYTES);
    expect(authProof(SECRET, input())).toEqual(proof);
    expect(verifyProof(SECRET, input(), proof)).toBe(true);
  });

  it('does not contain the secret', () => {
    const secret = 'x'.repeat(PROOF_BYTES);
    expect(Buffer.from(authProof(secret, input())).includes(Buffer.from(secret.slice(0, 8)))).toBe(false);
  });

  it('fails with another secret, cluster, either nonce, or either id', () => {
    const proof = authProof(SECRET, input());
    expect(verifyProof('other secret', input(), proof)).toBe(false);
    expect(verifyProof(SECRET, input({ cluster: 'staging' }), proof)).toBe(false);
    expect(verifyProof(SECRET, input({ challenge: new Uint8Array(NONCE_BYTES).fill(9) }), proof)).toBe(false);
    expect(verifyProof(SECRET, input({ responderNonce: new Uint8Array(NONCE_BYTES).fill(9) }), proof)).toBe(false);
    expect(verifyProof(SECRET, input({ prover: 'cccccccccccccccccccccccccccccccc' as ReplicaId }), proof)).toBe(false);
    expect(verifyProof(SECRET, input({ verifier: 'cccccccccccccccccccccccccccccccc' as ReplicaId }), proof)).toBe(false);
  });

  it('cannot be reflected: the proof A sends B never verifies as B proving to A', () => {
    fc.assert(
      fc.property(replicaIdArb, replicaIdArb, fc.string(), (a, b, secret) => {
        fc.pre(a !== b);
        const nonceA = randomBytes(NONCE_BYTES);
        const nonceB = randomBytes(NONCE_BYTES);
        // A proves to B: challenge is B's nonce.
        const fromA = authProof(secret, { cluster: 'c', challenge: nonceB, responderNonce: nonceA, prover: a, verifier: b });
        // Sent back by B as its own proof to A.
        const asB = { cluster: 'c', challenge: nonceA, responderNonce: nonceB, prover: b, verifier: a };
        expect(verifyProof(secret, asB, fromA)).toBe(false);
        expect(verifyProof(secret, asB, authProof(secret, asB))).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('cannot be replayed on a connection with a fresh challenge', () => {
    const old = authProof(SECRET, input());
    expect(verifyProof(SECRET, input({ challenge: randomBytes(NONCE_BYTES) }), old)).toBe(false);
  });

  it('length-prefixes fields so moving bytes between them changes the proof', () => {
    const a = authProof(SECRET, input({ cluster: 'ab', challenge: Uint8Array.from([1]) }));
    const b = authProof(SECRET, input({ cluster: 'a', challenge: Uint8Array.from([0x62, 1]) }));
    expect(a).not.toEqual(b);
  });

  it('refuses proofs of the wrong length without throwing', () => {
    const proof = authProof(SECRET, input());
    expect(verifyProof(SECRET, input(), proof.subarray(0, PROOF_BYTES - 1))).toBe(false);
    expect(verifyProof(SECRET, input(), new Uint8Array(0))).toBe(false);
    expect(verifyProof(SECRET, input(), Uint8Array.from([...proof, 0]))).toBe(false);
  });
});
