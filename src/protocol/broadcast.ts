/**
 * The broadcast-tree messages of bounded-degree mode (PROTOCOL.md §5a, src/replication/broadcast-tree.ts):
 * `ihave` announces deltas the sender holds by their `(replica, after, upTo)`, `graft` asks for
 * announced deltas and makes the link an eager one, `prune` makes it a lazy one. Sent only by
 * nodes in bounded-degree mode; a full-mesh node reads and ignores them.
 */
import type * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import type { SeqRange } from '../crdt/version-vector.js';
import { checkCount, checkRange, readCount, readSeqRange, writeSeqRange, type MessageLayout } from './fields.js';
import { MAX_ANNOUNCED_RANGES } from './messages.js';
import { bad } from './protocol-error.js';

const MIN_RANGE_BYTES = 3; // replica, after, upTo

function writeRanges(encoder: encoding.Encoder, ranges: readonly SeqRange[], what: string): void {
  checkCount(ranges.length, what, MAX_ANNOUNCED_RANGES);
  if (ranges.length === 0) bad(`an empty list of ${what}s`);
  encoding.writeVarUint(encoder, ranges.length);
  for (const range of ranges) {
    checkRange(range, what);
    writeSeqRange(encoder, range, what);
  }
}

function readRanges(decoder: decoding.Decoder, what: string): SeqRange[] {
  const count = readCount(decoder, what, MIN_RANGE_BYTES, MAX_ANNOUNCED_RANGES);
  if (count === 0) bad(`an empty list of ${what}s`);
  const ranges: SeqRange[] = [];
  for (let i = 0; i < count; i++) ranges.push(readSeqRange(decoder, what));
  return ranges;
}

/** list<(replica, after, upTo)>, 1 to MAX_ANNOUNCED_RANGES ranges, each after < upTo. */
export const ihave: MessageLayout<'ihave'> = {
  write(encoder, message) {
    writeRanges(encoder, message.ranges, 'announced range');
  },
  read(decoder) {
    return { type: 'ihave', ranges: readRanges(decoder, 'announced range') };
  },
};

/** list<(replica, after, upTo)>, same rules as `ihave`. */
export const graft: MessageLayout<'graft'> = {
  write(encoder, message) {
    writeRanges(encoder, message.ranges, 'grafted range');
  },
  read(decoder) {
    return { type: 'graft', ranges: readRanges(decoder, 'grafted range') };
  },
};

/** No body. */
export const prune: MessageLayout<'prune'> = {
  write() {},
  read() {
    return { type: 'prune' };
  },
};
