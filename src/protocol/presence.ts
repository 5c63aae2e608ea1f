/**
 * The presence messages: `awareness` (a y-protocols awareness update, relayed across the
 * cluster) and the `ping`/`pong` heartbeat. Layouts in PROTOCOL.md.
 */
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { checkSafeUint, readBytes, readCount, readText, readUint, type MessageLayout } from './fields.js';
import { MAX_FRAME_BYTES } from './messages.js';
import { bad } from './protocol-error.js';

const MIN_AWARENESS_ENTRY_BYTES = 3; // client, clock, state

/**
 * A y-protocols awareness update: varUint n, then n × (varUint client, varUint clock,
 * varString JSON of an object or null). Checked here so that `applyAwarenessUpdate`, which
 * trusts its input, only ever sees well-formed updates.
 */
function checkAwarenessUpdate(update: Uint8Array): void {
  const decoder = decoding.createDecoder(update);
  const count = readCount(decoder, 'awareness entry', MIN_AWARENESS_ENTRY_BYTES);
  for (let i = 0; i < count; i++) {
    readUint(decoder, 'awareness client');
    readUint(decoder, 'awareness clock');
    const json = readText(decoder, 'awareness state', MAX_FRAME_BYTES);
    let state: unknown;
    try {
      state = JSON.parse(json);
    } catch {
      bad('awareness state is not JSON');
    }
    if (typeof state !== 'object' || Array.isArray(state)) bad('awareness state must be a JSON object or null');
  }
  if (decoding.hasContent(decoder)) bad('awareness update has trailing bytes');
}

/** update: bytes, itself a well-formed awareness update. */
export const awareness: MessageLayout<'awareness'> = {
  write(encoder, message) {
    if (!(message.update instanceof Uint8Array)) bad('awareness update must be bytes');
    checkAwarenessUpdate(message.update);
    encoding.writeVarUint8Array(encoder, message.update);
  },
  read(decoder) {
    const update = readBytes(decoder, 'awareness update', MAX_FRAME_BYTES).slice();
    checkAwarenessUpdate(update);
    return { type: 'awareness', update };
  },
};

/** id: varUint, echoed by the pong. */
export const ping: MessageLayout<'ping'> = {
  write(encoder, message) {
    checkSafeUint(message.id, 0, 'ping id');
    encoding.writeVarUint(encoder, message.id);
  },
  read(decoder) {
    return { type: 'ping', id: readUint(decoder, 'ping id') };
  },
};

export const pong: MessageLayout<'pong'> = {
  write(encoder, message) {
    checkSafeUint(message.id, 0, 'pong id');
    encoding.writeVarUint(encoder, message.id);
  },
  read(decoder) {
    return { type: 'pong', id: readUint(decoder, 'pong id') };
  },
};
