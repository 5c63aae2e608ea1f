/**
 * WebSocket text frames built once and written as they are (RFC 6455 §5.2): the live feed encodes
 * a page update into one Buffer, header and payload, and writes those same bytes to every client
 * it is for, instead of framing the message again per client (issue 14: 1,000 followers of the
 * same 100 pages made one POST cost ~360 ms of CPU, most of it per-client framing and writes).
 *
 * A server's frames are never masked, and the feed's sockets have no extensions (no
 * permessage-deflate), so a frame depends on its payload only. Writing one straight to the socket
 * is safe alongside ws's own frames (pings, close): ws writes those synchronously too (without
 * compression it never queues), so frames never interleave; the feed writes only while the
 * WebSocket is open.
 */

const FIN = 0x80;
const OPCODE_TEXT = 0x1;
/** Payloads up to this length carry it in the 7-bit field; up to 65,535 in 16 bits; beyond, 64. */
const MAX_7BIT_LENGTH = 125;
const MAX_16BIT_LENGTH = 0xffff;

/** The header's length for a payload of `length` bytes. */
function headerBytes(length: number): number {
  return length <= MAX_7BIT_LENGTH ? 2 : length <= MAX_16BIT_LENGTH ? 4 : 10;
}

/** One final, unmasked text frame of `text` (JSON): header and UTF-8 payload in one Buffer. */
export function textFrame(text: string): Buffer {
  const length = Buffer.byteLength(text, 'utf8');
  const header = headerBytes(length);
  const frame = Buffer.allocUnsafe(header + length);
  frame[0] = FIN | OPCODE_TEXT;
  if (header === 2) {
    frame[1] = length;
  } else if (header === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    // The field is 64 bits; a page message is a few KB, far below 2^32.
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  frame.write(text, header, 'utf8');
  return frame;
}
