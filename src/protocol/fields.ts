/**
 * One field at a time: the rules every message shares, the strict readers that apply them to
 * bytes from a peer, and the writers that apply them before sending. Pure: no I/O, no clock.
 *
 * The readers are the codec's own, not lib0's: lib0's readers clamp or return `undefined` past
 * the end instead of throwing, and its varUint reader accepts overlong and >2^53 encodings.
 * Each reader checks that the rest of the frame holds what it is about to read.
 */
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { seriesSlotProblem } from '../crdt/series.js';
import type { SeqRange } from '../crdt/version-vector.js';
import { isReplicaId, MAX_PAGE_NAME_BYTES, pageNameProblem, REPLICA_ID_BYTES, replicaIdFromBytes, replicaIdToBytes } from '../ids.js';
import type { PageName, ReplicaId } from '../ids.js';
import { hasLoneSurrogate } from '../utf8.js';
import type { Message, MessageType } from './messages.js';
import type { PageTableIn, PageTableOut } from './page-table.js';
import { bad } from './protocol-error.js';

/**
 * One message's body (what follows the version and the tag), written and read side by side so
 * the two cannot drift apart. `write` checks every field before writing it; `read` validates
 * every field it reads. Both throw `ProtocolError('bad_frame')` and nothing else of their own.
 */
export interface MessageLayout<T extends MessageType> {
  write(encoder: encoding.Encoder, message: Extract<Message, { type: T }>, context: FrameContext): void;
  read(decoder: decoding.Decoder, context: FrameContext): Extract<Message, { type: T }>;
}

/**
 * What a frame may leave unsaid because its session knows it: `sender`, the replica the sending
 * side named in its hello on this connection (PROTOCOL.md §4, `delta`'s origin 0), and the
 * direction's page table (§4b): `pagesOut` when writing, `pagesIn` when reading. A frame read or
 * written outside a session has neither: a delta then names its replica and its pages.
 */
export interface FrameContext {
  readonly sender?: ReplicaId | undefined;
  readonly pagesOut?: PageTableOut | undefined;
  readonly pagesIn?: PageTableIn | undefined;
}

const MAX_U32 = 0xffff_ffff;
/** ceil(53 / 7): a varUint of a safe integer never needs more bytes. */
const MAX_VAR_UINT_BYTES = 8;

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const UTF8 = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Rules shared by the writers and the readers.

export function checkSafeUint(value: number, min: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < min) bad(`${what} must be an integer in [${min}, 2^53-1], got ${value}`);
}

export function checkU32(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > MAX_U32) bad(`${what} must be an integer in [0, 2^32-1], got ${value}`);
}

export function checkRange(range: SeqRange, what: string): void {
  checkReplica(range.replica, `${what} replica`);
  checkSafeUint(range.after, 0, `${what} after`);
  checkSafeUint(range.upTo, 1, `${what} upTo`);
  if (range.after >= range.upTo) bad(`${what} must have after < upTo, got (${range.after}, ${range.upTo}]`);
}

export function checkReplica(value: unknown, what: string): void {
  if (!isReplicaId(value)) bad(`${what} must be a replica id (32 lowercase hex characters)`);
}

export function checkPage(value: unknown): void {
  const problem = pageNameProblem(value);
  if (problem !== undefined) bad(problem);
}

export function checkText(value: unknown, maxBytes: number, what: string): void {
  if (typeof value !== 'string') bad(`${what} must be a string`);
  if (hasLoneSurrogate(value)) bad(`${what} must be valid UTF-8`);
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > maxBytes) bad(`${what} is ${bytes} bytes; at most ${maxBytes} are allowed`);
}

export function checkBytes(value: unknown, length: number, what: string): void {
  if (!(value instanceof Uint8Array) || value.byteLength !== length) bad(`${what} must be exactly ${length} bytes`);
}

/**
 * A series slot's key (kind 1–3, t in range) and count (≥ 1: a series slot exists once it counts;
 * a register's rank at most 51), series.ts `seriesSlotProblem`.
 */
export function checkSeriesKey(kind: number, t: number, count: number): void {
  const problem = seriesSlotProblem(kind, t, count);
  if (problem !== undefined) bad(problem);
}

/**
 * A slot's value: seq ≥ 1, epoch ≥ 0, count ≥ 1 — or count 0 at an epoch ≥ 1, the tombstone a
 * reset leaves (src/crdt/reset.ts). Nothing else ever has count 0.
 */
export function checkSlotValue(count: number, seq: number, epoch = 0): void {
  checkSafeUint(epoch, 0, 'slot epoch');
  checkSafeUint(count, epoch === 0 ? 1 : 0, epoch === 0 ? 'slot count' : 'slot count of a reset epoch');
  checkSafeUint(seq, 1, 'slot seq');
}

// ---------------------------------------------------------------------------------------------
// Writers (the value is checked by the caller or here, never sent unchecked).

export function writeText(encoder: encoding.Encoder, text: string): void {
  encoding.writeVarUint8Array(encoder, UTF8.encode(text));
}

export function writeReplica(encoder: encoding.Encoder, replica: ReplicaId, what: string): void {
  checkReplica(replica, what);
  encoding.writeVarUint8Array(encoder, replicaIdToBytes(replica));
}

/** A range already checked with `checkRange`. */
export function writeSeqRange(encoder: encoding.Encoder, range: SeqRange, what: string): void {
  writeReplica(encoder, range.replica, `${what} replica`);
  encoding.writeVarUint(encoder, range.after);
  encoding.writeVarUint(encoder, range.upTo);
}

// ---------------------------------------------------------------------------------------------
// Strict readers over lib0's decoder.

export function remaining(decoder: decoding.Decoder): number {
  return decoder.arr.length - decoder.pos;
}

/**
 * A varUint within 2^53-1, in its shortest form. lib0's `readVarUint` would return NaN or
 * Infinity for long runs of continuation bytes, an imprecise value for 8-byte encodings past
 * 2^53, and accept overlong forms such as `80 00` for 0 (two encodings of one message).
 */
export function readUint(decoder: decoding.Decoder, what: string): number {
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

export function readU32(decoder: decoding.Decoder, what: string): number {
  const value = readUint(decoder, what);
  checkU32(value, what);
  return value;
}

export function readBytes(decoder: decoding.Decoder, what: string, maxBytes: number): Uint8Array {
  const length = readUint(decoder, `${what} length`);
  if (length > maxBytes) bad(`${what} is ${length} bytes; at most ${maxBytes} are allowed`);
  if (length > remaining(decoder)) bad(`frame ends inside ${what}`);
  return decoding.readUint8Array(decoder, length);
}

export function readExactBytes(decoder: decoding.Decoder, what: string, length: number): Uint8Array {
  const bytes = readBytes(decoder, what, length);
  if (bytes.byteLength !== length) bad(`${what} must be exactly ${length} bytes, got ${bytes.byteLength}`);
  // A copy: the frame's buffer may be large or reused by the transport.
  return bytes.slice();
}

export function readText(decoder: decoding.Decoder, what: string, maxBytes: number): string {
  return strictText(readBytes(decoder, what, maxBytes), what);
}

/** `bytes` as strict UTF-8 (see STRICT_UTF8), or a bad frame naming `what`. */
function strictText(bytes: Uint8Array, what: string): string {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    return bad(`${what} is not valid UTF-8`);
  }
}

/** A page name's UTF-8 bytes, as `writeText` sends them. */
export function utf8Bytes(text: string): Uint8Array {
  return UTF8.encode(text);
}

/** A page name from its UTF-8 bytes (as read, or put together by the page table, page-table.ts), checked. */
export function pageFromBytes(bytes: Uint8Array): PageName {
  const page = strictText(bytes, 'page name');
  checkPage(page);
  return page as PageName;
}

export function readPage(decoder: decoding.Decoder): PageName {
  return pageFromBytes(readBytes(decoder, 'page name', MAX_PAGE_NAME_BYTES));
}

export function readReplica(decoder: decoding.Decoder, what: string): ReplicaId {
  const bytes = readBytes(decoder, what, REPLICA_ID_BYTES);
  const replica = replicaIdFromBytes(bytes);
  if (replica === undefined) bad(`${what} must be exactly ${REPLICA_ID_BYTES} bytes, got ${bytes.byteLength}`);
  return replica;
}

/**
 * An element count, refused when the rest of the frame cannot hold that many elements. Every
 * field takes at least one byte, so a list of n elements of k fields needs n·k bytes: a count the
 * rest of the frame cannot hold is refused before looping or allocating for it.
 */
export function readCount(decoder: decoding.Decoder, what: string, minElementBytes: number, max = Number.POSITIVE_INFINITY): number {
  const count = readUint(decoder, `${what} count`);
  if (count * minElementBytes > remaining(decoder)) bad(`${what} count ${count} does not fit in the frame`);
  if (count > max) bad(`${what} count ${count} is over ${max} per frame`);
  return count;
}

/** The writer's side of readCount's `max`: a node never sends a list its peer would refuse. */
export function checkCount(count: number, what: string, max: number): void {
  if (count > max) bad(`${what} count ${count} is over ${max} per frame`);
}

export function readSeqRange(decoder: decoding.Decoder, what: string): SeqRange {
  const replica = readReplica(decoder, `${what} replica`);
  const after = readUint(decoder, `${what} after`);
  const upTo = readUint(decoder, `${what} upTo`);
  const range = { replica, after, upTo };
  checkRange(range, what);
  return range;
}
