/**
 * Proof of `CLUSTER_SECRET` without sending it: HMAC-SHA256 keyed with the secret over a
 * domain-separated transcript of the handshake. Pure (no clock, no randomness: the nonces come in).
 *
 * What is bound, and why:
 * - a fixed label and the protocol version: a MAC computed for anything else never verifies here;
 * - the cluster name: a proof for one cluster is useless in another sharing the secret;
 * - the verifier's nonce (`challenge`): fresh per connection, so a recorded proof cannot be replayed;
 * - the prover's own nonce (`responderNonce`): both sides contribute freshness;
 * - prover and verifier ids, in that order: the proof A sends B differs from the one B must send A,
 *   so a peer cannot reflect our own proof back to us.
 * Every field is length-prefixed, so no two different inputs share a transcript.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import * as encoding from 'lib0/encoding';
import { replicaIdToBytes, type ReplicaId } from '../ids.js';
import { PROOF_BYTES, PROTOCOL_VERSION } from './messages.js';

export const AUTH_LABEL = 'distributed-sqlite/cluster-auth';

export interface AuthInput {
  readonly cluster: string;
  /** The verifier's nonce, from its hello. */
  readonly challenge: Uint8Array;
  /** The prover's nonce, from its own hello. */
  readonly responderNonce: Uint8Array;
  readonly prover: ReplicaId;
  readonly verifier: ReplicaId;
}

function transcript(input: AuthInput): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarString(encoder, AUTH_LABEL);
  encoding.writeVarUint(encoder, PROTOCOL_VERSION);
  encoding.writeVarString(encoder, input.cluster);
  encoding.writeVarUint8Array(encoder, input.challenge);
  encoding.writeVarUint8Array(encoder, input.responderNonce);
  encoding.writeVarUint8Array(encoder, replicaIdToBytes(input.prover));
  encoding.writeVarUint8Array(encoder, replicaIdToBytes(input.verifier));
  return encoding.toUint8Array(encoder);
}

/** The PROOF_BYTES-long proof the prover sends in its `auth` message. */
export function authProof(secret: string, input: AuthInput): Uint8Array {
  return new Uint8Array(createHmac('sha256', secret).update(transcript(input)).digest());
}

/** True when `proof` is the prover's proof for `input`; compares in constant time. */
export function verifyProof(secret: string, input: AuthInput, proof: Uint8Array): boolean {
  const expected = authProof(secret, input);
  if (proof.byteLength !== PROOF_BYTES || expected.byteLength !== PROOF_BYTES) return false;
  return timingSafeEqual(expected, proof);
}
