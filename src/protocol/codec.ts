/**
 * The peer protocol's codec: `Message` ⇄ lib0-encoded frame. Pure: no I/O, no clock.
 *
 * A frame is `varUint version, varUint tag, body`. Each message's body is laid out by one
 * `MessageLayout` (its write and its read side by side) in the file of its group: `handshake.ts`
 * (hello, auth, reject), `sync.ts` (vv, slots, covered, delta), `presence.ts` (awareness, ping,
 * pong). The field rules and strict readers they share are in `fields.ts`.
 *
 * Every frame comes from an untrusted socket, so `decodeFrame` checks the size first, reads every
 * field with bounds checks of its own, validates every value, refuses trailing bytes, and throws
 * nothing but `ProtocolError`. `encodeMessage` applies the same rules, so a node never sends what
 * its peer would refuse. The byte layout is documented in PROTOCOL.md; keep the two in step.
 */
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { readUint, remaining, type FrameContext, type MessageLayout } from './fields.js';
import { auth, hello, reject } from './handshake.js';
import { MAX_FRAME_BYTES, PROTOCOL_VERSION, type Message, type MessageType } from './messages.js';
import { MAC_BYTES } from './session-mac.js';
import { awareness, ping, pong } from './presence.js';
import { bad, ProtocolError } from './protocol-error.js';
import { covered, delta, digest, slots, vv, vvPart } from './sync.js';
import { graft, ihave, prune } from './broadcast.js';

export { ProtocolError, type ProtocolErrorCode } from './protocol-error.js';
export type { FrameContext } from './fields.js';
export { REJECT_CODES } from './handshake.js';

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
  vvPart: 10,
  digest: 11,
  ihave: 12,
  graft: 13,
  prune: 14,
} as const satisfies Record<MessageType, number>;

const LAYOUTS: { readonly [T in MessageType]: MessageLayout<T> } = { hello, auth, reject, vv, slots, covered, delta, awareness, ping, pong, vvPart, digest, ihave, graft, prune };

// Looked up by a runtime value, the table's pairing of each type with its own layout is lost to
// the compiler: these two lookups say so once (a layout only ever sees messages of its type).
type AnyLayout = MessageLayout<MessageType>;

/** The layout of a message type from a caller's value; own keys only (not `toString`). */
function layoutOf(type: unknown): AnyLayout | undefined {
  return typeof type === 'string' && Object.hasOwn(LAYOUTS, type) ? (LAYOUTS[type as MessageType] as AnyLayout) : undefined;
}

const LAYOUTS_BY_TAG = new Map<number, AnyLayout>((Object.keys(MESSAGE_TAGS) as MessageType[]).map((type) => [MESSAGE_TAGS[type], LAYOUTS[type] as AnyLayout]));

/**
 * Encodes one message as a frame. Throws `ProtocolError('bad_frame')` for a message its peer would
 * refuse. With `context.sender` (the replica this side's hello named, for a frame of that
 * session) a delta of that replica leaves it out; without, every delta names its replica. With
 * `context.pagesOut` (the session's page table of this direction, §4b) a delta refers to the pages
 * the table holds; the frame must then be sent on that session, in the order encoded.
 */
export function encodeMessage(message: Message, context: FrameContext = {}): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, PROTOCOL_VERSION);
  const layout = layoutOf(message.type);
  if (layout === undefined) bad(`unknown message type "${String(message.type)}"`);
  encoding.writeVarUint(encoder, MESSAGE_TAGS[message.type]);
  // A frame that fails to encode is never sent: the page table must not keep what it defined.
  const pages = context.pagesOut;
  pages?.begin();
  try {
    layout.write(encoder, message, context);
    const frame = encoding.toUint8Array(encoder);
    // Room for the MAC a session appends: a sealed frame stays within MAX_FRAME_BYTES.
    if (frame.byteLength > MAX_FRAME_BYTES - MAC_BYTES) bad(`${message.type} encodes to ${frame.byteLength} bytes; frames are at most ${MAX_FRAME_BYTES - MAC_BYTES} before their MAC`);
    pages?.commit();
    return frame;
  } catch (error) {
    pages?.rollback();
    throw error;
  }
}

/**
 * Decodes and validates one frame. Throws `ProtocolError`: `protocol_version` (with the peer's
 * `version`) for a frame of another version, `bad_frame` for anything else that is wrong.
 * `context.sender`: the replica the peer's hello named, which a delta of its own leaves out;
 * `context.pagesIn`: the session's page table of this direction (§4b), which deltas refer to.
 */
export function decodeFrame(frame: Uint8Array, context: FrameContext = {}): Message {
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
    const layout = LAYOUTS_BY_TAG.get(tag);
    if (layout === undefined) bad(`unknown message type ${tag}`);
    const message = layout.read(decoder, context);
    if (decoding.hasContent(decoder)) bad(`${message.type} frame has ${remaining(decoder)} trailing bytes`);
    return message;
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    // Defence in depth: whatever a reader threw, the caller sees one kind of error.
    throw new ProtocolError('bad_frame', 'frame could not be decoded', { cause: error });
  }
}
