/**
 * The handshake's messages: `hello` (who I am, and a challenge), `auth` (the proof, see
 * `auth.ts`) and `reject` (why the connection is refused). Layouts in PROTOCOL.md.
 */
import * as encoding from 'lib0/encoding';
import { checkBytes, checkText, readExactBytes, readReplica, readText, readUint, writeReplica, writeText, type MessageLayout } from './fields.js';
import { MAX_CLUSTER_NAME_BYTES, MAX_NODE_NAME_BYTES, MAX_REASON_BYTES, NONCE_BYTES, PROOF_BYTES, type RejectCode } from './messages.js';
import { bad } from './protocol-error.js';

/** Reject codes on the wire, by index. Append only. */
export const REJECT_CODES: readonly RejectCode[] = ['protocol_version', 'cluster', 'auth', 'self', 'duplicate', 'bad_frame', 'shutting_down', 'full'];

/** cluster: string, replica, node: string, nonce: bytes(NONCE_BYTES). */
export const hello: MessageLayout<'hello'> = {
  write(encoder, message) {
    checkText(message.cluster, MAX_CLUSTER_NAME_BYTES, 'cluster name');
    checkText(message.node, MAX_NODE_NAME_BYTES, 'node name');
    checkBytes(message.nonce, NONCE_BYTES, 'nonce');
    writeText(encoder, message.cluster);
    writeReplica(encoder, message.replica, 'hello replica');
    writeText(encoder, message.node);
    encoding.writeVarUint8Array(encoder, message.nonce);
  },
  read(decoder) {
    const cluster = readText(decoder, 'cluster name', MAX_CLUSTER_NAME_BYTES);
    const replica = readReplica(decoder, 'hello replica');
    const node = readText(decoder, 'node name', MAX_NODE_NAME_BYTES);
    const nonce = readExactBytes(decoder, 'nonce', NONCE_BYTES);
    return { type: 'hello', cluster, replica, node, nonce };
  },
};

/** proof: bytes(PROOF_BYTES). */
export const auth: MessageLayout<'auth'> = {
  write(encoder, message) {
    checkBytes(message.proof, PROOF_BYTES, 'proof');
    encoding.writeVarUint8Array(encoder, message.proof);
  },
  read(decoder) {
    return { type: 'auth', proof: readExactBytes(decoder, 'proof', PROOF_BYTES) };
  },
};

/** code: varUint (index into REJECT_CODES), reason: string. */
export const reject: MessageLayout<'reject'> = {
  write(encoder, message) {
    const index = REJECT_CODES.indexOf(message.code);
    if (index < 0) bad(`unknown reject code "${String(message.code)}"`);
    checkText(message.reason, MAX_REASON_BYTES, 'reject reason');
    encoding.writeVarUint(encoder, index);
    writeText(encoder, message.reason);
  },
  read(decoder) {
    const index = readUint(decoder, 'reject code');
    const code = REJECT_CODES[index];
    if (code === undefined) bad(`unknown reject code ${index}`);
    const reason = readText(decoder, 'reject reason', MAX_REASON_BYTES);
    return { type: 'reject', code, reason };
  },
};
