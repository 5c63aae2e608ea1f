/**
 * The peer protocol's codec: `Message` ⇄ lib0-encoded frame. Pure: no I/O, no clock.
 *
 * Every frame comes from an untrusted socket, so `decodeFrame` checks the size first, reads every
 * field with bounds checks of its own (lib0's readers clamp or return `undefined` past the end
 * instead of throwing, and its varUint reader accepts overlong and >2^53 encodings), validates
 * every value, refuses trailing bytes, and throws nothing but `ProtocolError`. `encodeMessage`
 * applies the same rules, so a node never sends what its peer would refuse.
 * The byte layout is documented in PROTOCOL.md; keep the two in step.
 */
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import type { Slot } from '../crdt/g-counter.js';
import type { SeqRange } from '../crdt/version-vector.js';
import { isReplicaId, MAX_PAGE_NAME_BYTES, pageNameProblem, REPLICA_ID_BYTES, replicaIdFromBytes, replicaIdToBytes } from '../ids.js';
import type { PageName, ReplicaId } from '../ids.js';
import {
  MAX_CLUSTER_NAME_BYTES,
  MAX_FRAME_BYTES,
  MAX_NODE_NAME_BYTES,
  MAX_REASON_BYTES,
  NONCE_BYTES,
  PROOF_BYTES,
  PROTOCOL_VERSION,
  type Message,
  type MessageType,
  type RejectCode,
  type ReplicaSlot,
} from './messages.js';

export type ProtocolErrorCode = 'protocol_version' | 'bad_frame';

/** A frame that cannot be accepted. The receiver answers `reject` with `code` and closes. */
export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  /** The peer's protocol version, for `protocol_version`. */
  readonly version: number | undefined;

  constructor(code: ProtocolErrorCode, message: string, options?: { version?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProtocolError';
    this.code = code;
    this.version = options?.version;
  }
}

export function isProtocolError(error: unknown): error is ProtocolError {
  return error instanceof ProtocolError;
}

/** Wire tags. Append only: a tag never changes meaning within a protocol version. */
export const MESSAGE_TAGS = {
  hello: 0,
  auth: 1,
  reject: 2,
  vv: 3,
  slots: 4,
  covered: 5,
  delta: 6,
  awareness: 7,
  ping: 8,
  pong: 9,
} as const satisfies Record<MessageType, number>;

/** Reject codes on the wire, by index. Append only. */
export const REJECT_CODES: readonly RejectCode[] = ['protocol_version', 'cluster', 'auth', 'self', 'duplicate', 'bad_frame', 'shutting_down'];

const MAX_U32 = 0xffff_ffff;
/** ceil(53 / 7): a varUint of a safe integer never needs more bytes. */
const MAX_VAR_UINT_BYTES = 8;

// Every field takes at least one byte, so a list of n elements of k fields needs n·k bytes: a
// count the rest of the frame cannot hold is refused before looping or allocating for it.
const MIN_REPLICA_BYTES = 1;
const MIN_VV_ENTRY_BYTES = 2; // replica, seq
const MIN_SLOT_BYTES = 4; // page, replica index, count, seq
const MIN_DELTA_SLOT_BYTES = 3; // page, count, seq
const MIN_RANGE_BYTES = 3; // replica, after, upTo
const MIN_AWARENESS_ENTRY_BYTES = 3; // client, clock, state

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const UTF8 = new TextEncoder();
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function bad(message: string): never {
  throw new ProtocolError('bad_frame', message);
}

// ---------------------------------------------------------------------------------------------
// Rules shared by the encoder and the decoder.

function checkSafeUint(value: number, min: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < min) bad(`${what} must be an integer in [${min}, 2^53-1], got ${value}`);
}

function checkU32(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > MAX_U32) bad(`${what} must be an integer in [0, 2^32-1], got ${value}`);
}

function checkRange(range: SeqRange, what: string): void {
  checkReplica(range.replica, `${what} replica`);
  checkSafeUint(range.after, 0, `${what} after`);
  checkSafeUint(range.upTo, 1, `${what} upTo`);
  if (range.after >= range.upTo) bad(`${what} must have after < upTo, got (${range.after}, ${range.upTo}]`);
}

function checkReplica(value: unknown, what: string): void {
  if (!isReplicaId(value)) bad(`${what} must be a replica id (32 lowercase hex characters)`);
}

function checkPage(value: unknown): void {
  const problem = pageNameProblem(value);
  if (problem !== undefined) bad(problem);
}

function checkText(value: unknown, maxBytes: number, what: string): void {
  if (typeof value !== 'string') bad(`${what} must be a string`);
  if (LONE_SURROGATE.test(value)) bad(`${what} must be valid UTF-8`);
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > maxBytes) bad(`${what} is ${bytes} bytes; at most ${maxBytes} are allowed`);
}

function checkBytes(value: unknown, length: number, what: string): void {
  if (!(value instanceof Uint8Array) || value.byteLength !== length) bad(`${what} must be exactly ${length} bytes`);
}

function checkSlotValue(count: number, seq: number): void {
  checkSafeUint(count, 1, 'slot count');
  checkSafeUint(seq, 1, 'slot seq');
}

function checkDeltaSlotSeq(seq: number, range: SeqRange): void {
  if (seq <= range.after || seq > range.upTo) bad(`delta slot seq ${seq} lies outside its range (${range.after}, ${range.upTo}]`);
}

// ---------------------------------------------------------------------------------------------
// Encoding.

/** Encodes one message as a frame. Throws `ProtocolError('bad_frame')` for a message its peer would refuse. */
export function encodeMessage(message: Message): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, PROTOCOL_VERSION);
  const tag = (MESSAGE_TAGS as Record<string, number | undefined>)[message.type];
  if (tag === undefined) bad(`unknown message type "${String(message.type)}"`);
  encoding.writeVarUint(encoder, tag);
  switch (message.type) {
    case 'hello':
      checkText(message.cluster, MAX_CLUSTER_NAME_BYTES, 'cluster name');
      checkText(message.node, MAX_NODE_NAME_BYTES, 'node name');
      checkBytes(message.nonce, NONCE_BYTES, 'nonce');
      writeText(encoder, message.cluster);
      writeReplica(encoder, message.replica, 'hello replica');
      writeText(encoder, message.node);
      encoding.writeVarUint8Array(encoder, message.nonce);
      break;
    case 'auth':
      checkBytes(message.proof, PROOF_BYTES, 'proof');
      encoding.writeVarUint8Array(encoder, message.proof);
      break;
    case 'reject': {
      const index = REJECT_CODES.indexOf(message.code);
      if (index < 0) bad(`unknown reject code "${String(message.code)}"`);
      checkText(message.reason, MAX_REASON_BYTES, 'reject reason');
      encoding.writeVarUint(encoder, index);
      writeText(encoder, message.reason);
      break;
    }
    case 'vv':
      encoding.writeVarUint(encoder, message.vv.size);
      for (const [replica, seq] of message.vv) {
        checkSafeUint(seq, 1, 'version vector seq');
        writeReplica(encoder, replica, 'version vector replica');
        encoding.writeVarUint(encoder, seq);
      }
      break;
    case 'slots':
      writeSlots(encoder, message.round, message.index, message.slots);
      break;
    case 'covered':
      checkU32(message.round, 'round');
      checkU32(message.chunks, 'chunks');
      encoding.writeVarUint(encoder, message.round);
      encoding.writeVarUint(encoder, message.chunks);
      encoding.writeVarUint(encoder, message.ranges.length);
      for (const range of message.ranges) {
        checkRange(range, 'covered range');
        writeReplica(encoder, range.replica, 'covered range replica');
        encoding.writeVarUint(encoder, range.after);
        encoding.writeVarUint(encoder, range.upTo);
      }
      break;
    case 'delta':
      checkRange(message.range, 'delta range');
      writeReplica(encoder, message.range.replica, 'delta replica');
      encoding.writeVarUint(encoder, message.range.after);
      encoding.writeVarUint(encoder, message.range.upTo);
      encoding.writeVarUint(encoder, message.slots.length);
      for (const slot of message.slots) {
        checkPage(slot.page);
        checkSlotValue(slot.count, slot.seq);
        checkDeltaSlotSeq(slot.seq, message.range);
        writeText(encoder, slot.page);
        encoding.writeVarUint(encoder, slot.count);
        encoding.writeVarUint(encoder, slot.seq);
      }
      break;
    case 'awareness':
      if (!(message.update instanceof Uint8Array)) bad('awareness update must be bytes');
      checkAwarenessUpdate(message.update);
      encoding.writeVarUint8Array(encoder, message.update);
      break;
    case 'ping':
    case 'pong':
      checkSafeUint(message.id, 0, `${message.type} id`);
      encoding.writeVarUint(encoder, message.id);
      break;
  }
  const frame = encoding.toUint8Array(encoder);
  if (frame.byteLength > MAX_FRAME_BYTES) bad(`${message.type} encodes to ${frame.byteLength} bytes; frames are at most ${MAX_FRAME_BYTES}`);
  return frame;
}

function writeText(encoder: encoding.Encoder, text: string): void {
  encoding.writeVarUint8Array(encoder, UTF8.encode(text));
}

function writeReplica(encoder: encoding.Encoder, replica: ReplicaId, what: string): void {
  checkReplica(replica, what);
  encoding.writeVarUint8Array(encoder, replicaIdToBytes(replica));
}

// A `slots` chunk names each replica once in a table and refers to it by index: a sync answer
// has many pages and few replicas, so this saves ~16 bytes a slot.
function writeSlots(encoder: encoding.Encoder, round: number, index: number, slots: readonly Slot[]): void {
  checkU32(round, 'round');
  checkU32(index, 'chunk index');
  const table = new Map<ReplicaId, number>();
  for (const slot of slots) {
    checkReplica(slot.replica, 'slot replica');
    checkPage(slot.page);
    checkSlotValue(slot.count, slot.seq);
    if (!table.has(slot.replica)) table.set(slot.replica, table.size);
  }
  encoding.writeVarUint(encoder, round);
  encoding.writeVarUint(encoder, index);
  encoding.writeVarUint(encoder, table.size);
  for (const replica of table.keys()) encoding.writeVarUint8Array(encoder, replicaIdToBytes(replica));
  encoding.writeVarUint(encoder, slots.length);
  for (const slot of slots) {
    writeText(encoder, slot.page);
    encoding.writeVarUint(encoder, table.get(slot.replica)!);
    encoding.writeVarUint(encoder, slot.count);
    encoding.writeVarUint(encoder, slot.seq);
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding: strict readers over lib0's decoder.

function remaining(decoder: decoding.Decoder): number {
  return decoder.arr.length - decoder.pos;
}

/**
 * A varUint within 2^53-1, in its shortest form. lib0's `readVarUint` would return NaN or
 * Infinity for long runs of continuation bytes, an imprecise value for 8-byte encodings past
 * 2^53, and accept overlong forms such as `80 00` for 0 (two encodings of one message).
 */
function readUint(decoder: decoding.Decoder, what: string): number {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < MAX_VAR_UINT_BYTES; i++) {
    if (remaining(decoder) < 1) bad(`frame ends inside ${what}`);
    const byte = decoding.readUint8(decoder);
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      if (byte === 0 && i > 0) bad(`${what} has an overlong encoding`);
      // Rounding is monotonic, so a true value ≥ 2^53 never lands at or below 2^53-1.
      if (value > Number.MAX_SAFE_INTEGER) bad(`${what} exceeds 2^53-1`);
      return value;
    }
    scale *= 128;
  }
  return bad(`${what} is longer than ${MAX_VAR_UINT_BYTES} bytes`);
}

function readU32(decoder: decoding.Decoder, what: string): number {
  const value = readUint(decoder, what);
  checkU32(value, what);
  return value;
}

function readBytes(decoder: decoding.Decoder, what: string, maxBytes: number): Uint8Array {
  const length = readUint(decoder, `${what} length`);
  if (length > maxBytes) bad(`${what} is ${length} bytes; at most ${maxBytes} are allowed`);
  if (length > remaining(decoder)) bad(`frame ends inside ${what}`);
  return decoding.readUint8Array(decoder, length);
}

function readExactBytes(decoder: decoding.Decoder, what: string, length: number): Uint8Array {
  const bytes = readBytes(decoder, what, length);
  if (bytes.byteLength !== length) bad(`${what} must be exactly ${length} bytes, got ${bytes.byteLength}`);
  // A copy: the frame's buffer may be large or reused by the transport.
  return bytes.slice();
}

function readText(decoder: decoding.Decoder, what: string, maxBytes: number): string {
  const bytes = readBytes(decoder, what, maxBytes);
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    return bad(`${what} is not valid UTF-8`);
  }
}

function readPage(decoder: decoding.Decoder): PageName {
  const page = readText(decoder, 'page name', MAX_PAGE_NAME_BYTES);
  checkPage(page);
  return page as PageName;
}

function readReplica(decoder: decoding.Decoder, what: string): ReplicaId {
  const bytes = readBytes(decoder, what, REPLICA_ID_BYTES);
  const replica = replicaIdFromBytes(bytes);
  if (replica === undefined) bad(`${what} must be exactly ${REPLICA_ID_BYTES} bytes, got ${bytes.byteLength}`);
  return replica;
}

/** An element count, refused when the rest of the frame cannot hold that many elements. */
function readCount(decoder: decoding.Decoder, what: string, minElementBytes: number): number {
  const count = readUint(decoder, `${what} count`);
  if (count * minElementBytes > remaining(decoder)) bad(`${what} count ${count} does not fit in the frame`);
  return count;
}

function readSeqRange(decoder: decoding.Decoder, what: string): SeqRange {
  const replica = readReplica(decoder, `${what} replica`);
  const after = readUint(decoder, `${what} after`);
  const upTo = readUint(decoder, `${what} upTo`);
  const range = { replica, after, upTo };
  checkRange(range, what);
  return range;
}

type Decoders = { [T in MessageType]: (decoder: decoding.Decoder) => Extract<Message, { type: T }> };

const DECODERS: Decoders = {
  hello(decoder) {
    const cluster = readText(decoder, 'cluster name', MAX_CLUSTER_NAME_BYTES);
    const replica = readReplica(decoder, 'hello replica');
    const node = readText(decoder, 'node name', MAX_NODE_NAME_BYTES);
    const nonce = readExactBytes(decoder, 'nonce', NONCE_BYTES);
    return { type: 'hello', cluster, replica, node, nonce };
  },
  auth(decoder) {
    return { type: 'auth', proof: readExactBytes(decoder, 'proof', PROOF_BYTES) };
  },
  reject(decoder) {
    const index = readUint(decoder, 'reject code');
    const code = REJECT_CODES[index];
    if (code === undefined) bad(`unknown reject code ${index}`);
    const reason = readText(decoder, 'reject reason', MAX_REASON_BYTES);
    return { type: 'reject', code, reason };
  },
  vv(decoder) {
    const count = readCount(decoder, 'version vector entry', MIN_VV_ENTRY_BYTES);
    const vv = new Map<ReplicaId, number>();
    for (let i = 0; i < count; i++) {
      const replica = readReplica(decoder, 'version vector replica');
      const seq = readUint(decoder, 'version vector seq');
      checkSafeUint(seq, 1, 'version vector seq');
      // A Map would silently keep the last: refuse rather than guess which the sender meant.
      if (vv.has(replica)) bad(`version vector names replica ${replica} twice`);
      vv.set(replica, seq);
    }
    return { type: 'vv', vv };
  },
  slots(decoder) {
    const round = readU32(decoder, 'round');
    const index = readU32(decoder, 'chunk index');
    const tableSize = readCount(decoder, 'replica table entry', MIN_REPLICA_BYTES);
    const table: ReplicaId[] = [];
    const seen = new Set<ReplicaId>();
    for (let i = 0; i < tableSize; i++) {
      const replica = readReplica(decoder, 'replica table entry');
      if (seen.has(replica)) bad(`replica table names ${replica} twice`);
      seen.add(replica);
      table.push(replica);
    }
    const count = readCount(decoder, 'slot', MIN_SLOT_BYTES);
    const slots: Slot[] = [];
    let used = 0;
    for (let i = 0; i < count; i++) {
      const page = readPage(decoder);
      const replicaIndex = readUint(decoder, 'slot replica index');
      const replica = table[replicaIndex];
      if (replica === undefined) bad(`slot replica index ${replicaIndex} is outside the table of ${table.length}`);
      // The table lists replicas in order of first use, so a message has one encoding.
      if (replicaIndex > used) bad(`slot replica index ${replicaIndex} skips table entry ${used}`);
      if (replicaIndex === used) used += 1;
      const slotCount = readUint(decoder, 'slot count');
      const seq = readUint(decoder, 'slot seq');
      checkSlotValue(slotCount, seq);
      slots.push({ page, replica, count: slotCount, seq });
    }
    if (used !== table.length) bad(`replica table has ${table.length - used} unused entries`);
    return { type: 'slots', round, index, slots };
  },
  covered(decoder) {
    const round = readU32(decoder, 'round');
    const chunks = readU32(decoder, 'chunks');
    const count = readCount(decoder, 'covered range', MIN_RANGE_BYTES);
    const ranges: SeqRange[] = [];
    for (let i = 0; i < count; i++) ranges.push(readSeqRange(decoder, 'covered range'));
    return { type: 'covered', round, chunks, ranges };
  },
  delta(decoder) {
    const range = readSeqRange(decoder, 'delta range');
    const count = readCount(decoder, 'delta slot', MIN_DELTA_SLOT_BYTES);
    const slots: ReplicaSlot[] = [];
    for (let i = 0; i < count; i++) {
      const page = readPage(decoder);
      const slotCount = readUint(decoder, 'slot count');
      const seq = readUint(decoder, 'slot seq');
      checkSlotValue(slotCount, seq);
      checkDeltaSlotSeq(seq, range);
      slots.push({ page, count: slotCount, seq });
    }
    return { type: 'delta', range, slots };
  },
  awareness(decoder) {
    const update = readBytes(decoder, 'awareness update', MAX_FRAME_BYTES).slice();
    checkAwarenessUpdate(update);
    return { type: 'awareness', update };
  },
  ping(decoder) {
    return { type: 'ping', id: readUint(decoder, 'ping id') };
  },
  pong(decoder) {
    return { type: 'pong', id: readUint(decoder, 'pong id') };
  },
};

const DECODERS_BY_TAG = new Map<number, Decoders[MessageType]>(
  (Object.keys(MESSAGE_TAGS) as MessageType[]).map((type) => [MESSAGE_TAGS[type], DECODERS[type]]),
);

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

/**
 * Decodes and validates one frame. Throws `ProtocolError`: `protocol_version` (with the peer's
 * `version`) for a frame of another version, `bad_frame` for anything else that is wrong.
 */
export function decodeFrame(frame: Uint8Array): Message {
  try {
    if (!(frame instanceof Uint8Array)) bad('a frame must be bytes');
    if (frame.byteLength > MAX_FRAME_BYTES) bad(`frame is ${frame.byteLength} bytes; at most ${MAX_FRAME_BYTES} are allowed`);
    if (frame.byteLength === 0) bad('empty frame');
    const decoder = decoding.createDecoder(frame);
    const version = readUint(decoder, 'protocol version');
    if (version !== PROTOCOL_VERSION) {
      throw new ProtocolError('protocol_version', `the peer speaks protocol version ${version}; this node speaks ${PROTOCOL_VERSION}`, { version });
    }
    const tag = readUint(decoder, 'message type');
    const decode = DECODERS_BY_TAG.get(tag);
    if (decode === undefined) bad(`unknown message type ${tag}`);
    const message = decode(decoder);
    if (decoding.hasContent(decoder)) bad(`${message.type} frame has ${remaining(decoder)} trailing bytes`);
    return message;
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    // Defence in depth: whatever a reader threw, the caller sees one kind of error.
    throw new ProtocolError('bad_frame', 'frame could not be decoded', { cause: error });
  }
}
