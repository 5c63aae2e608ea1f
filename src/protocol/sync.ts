/**
 * The sync messages: `vv` (what the sender has), the answer to it in `slots` chunks closed by
 * `covered`, and the live `delta` pushed after each local commit. Layouts in PROTOCOL.md.
 */
import type * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { epochOf, type Slot } from '../crdt/g-counter.js';
import type { SeqRange } from '../crdt/version-vector.js';
import { MAX_PAGE_NAME_BYTES, REPLICA_ID_BYTES, replicaIdToBytes, type PageName, type ReplicaId } from '../ids.js';
import {
  checkBytes,
  checkPage,
  checkSeriesKey,
  checkRange,
  checkReplica,
  checkSafeUint,
  checkSlotValue,
  checkU32,
  checkCount,
  pageFromBytes,
  readBytes,
  readCount,
  readExactBytes,
  readPage,
  readReplica,
  readSeqRange,
  readU32,
  readUint,
  writeReplica,
  writeSeqRange,
  utf8Bytes,
  writeText,
  type MessageLayout,
} from './fields.js';
import { DIGEST_BYTES, MAX_FRAME_BYTES, MAX_FRAME_ENTRIES, type ReplicaSlot } from './messages.js';
import { MAC_BYTES } from './session-mac.js';
import { PAGE_REF_LITERAL, PageTableIn } from './page-table.js';
import { bad } from './protocol-error.js';

// The fewest bytes one list element can take (every field takes at least one byte).
const MIN_REPLICA_BYTES = 1;
const MIN_VV_ENTRY_BYTES = 2; // replica, seq
const MIN_SLOT_BYTES = 6; // page, replica index, count, seq, epoch, kind
const MIN_DELTA_SLOT_BYTES = 4; // page reference, count, seq distance, kind and epoch
/** Bytes of `value` as a varUint. */
function varUintBytes(value: number): number {
  let bytes = 1;
  for (let rest = Math.floor(value / 128); rest > 0; rest = Math.floor(rest / 128)) bytes++;
  return bytes;
}

/** A page of `nameBytes` written out: reference 0, the name's length, the name. */
function literalPageBytes(nameBytes: number): number {
  return 1 + varUintBytes(nameBytes) + nameBytes;
}
/** A delta slot's head: kind (0–3) for epoch 0, EPOCH_FOLLOWS + kind when the epoch follows. */
const EPOCH_FOLLOWS = 4;

/** The kind (0: the page's total) and, for a series slot, its t (series.ts). */
function writeKey(encoder: encoding.Encoder, slot: { readonly kind?: number; readonly t?: number; readonly count: number }): void {
  if (slot.kind === undefined) {
    encoding.writeVarUint(encoder, 0);
    return;
  }
  checkSeriesKey(slot.kind, slot.t ?? 0, slot.count);
  encoding.writeVarUint(encoder, slot.kind);
  encoding.writeVarUint(encoder, slot.t ?? 0);
}

/** The key read back: `{}` for a total, else the checked kind and t. */
function readKey(decoder: decoding.Decoder, count: number): { kind?: 1 | 2 | 3; t?: number } {
  return readKeyOfKind(decoder, readUint(decoder, 'slot kind'), count);
}

/** The rest of a key whose kind was read (a `slots` slot's own field, a `delta` slot's head). */
function readKeyOfKind(decoder: decoding.Decoder, kind: number, count: number): { kind?: 1 | 2 | 3; t?: number } {
  if (kind === 0) return {};
  const t = readUint(decoder, 'slot t');
  checkSeriesKey(kind, t, count);
  return { kind: kind as 1 | 2 | 3, t };
}
const MIN_RANGE_BYTES = 3; // replica, after, upTo

/** A version vector's entries: list<(replica, seq: varUint ≥ 1)>, each replica at most once. */
function writeVector(encoder: encoding.Encoder, message: { readonly vv: ReadonlyMap<ReplicaId, number> }): void {
  checkCount(message.vv.size, 'version vector entry', MAX_FRAME_ENTRIES);
  encoding.writeVarUint(encoder, message.vv.size);
  for (const [replica, seq] of message.vv) {
    checkSafeUint(seq, 1, 'version vector seq');
    writeReplica(encoder, replica, 'version vector replica');
    encoding.writeVarUint(encoder, seq);
  }
}

function readVector(decoder: decoding.Decoder): Map<ReplicaId, number> {
  const count = readCount(decoder, 'version vector entry', MIN_VV_ENTRY_BYTES, MAX_FRAME_ENTRIES);
  const vv = new Map<ReplicaId, number>();
  for (let i = 0; i < count; i++) {
    const replica = readReplica(decoder, 'version vector replica');
    const seq = readUint(decoder, 'version vector seq');
    checkSafeUint(seq, 1, 'version vector seq');
    // A Map would silently keep the last: refuse rather than guess which the sender meant.
    if (vv.has(replica)) bad(`version vector names replica ${replica} twice`);
    vv.set(replica, seq);
  }
  return vv;
}

/** digest: bytes(DIGEST_BYTES), the anti-entropy digest of the sender's vector and state. */
export const digest: MessageLayout<'digest'> = {
  write(encoder, message) {
    checkBytes(message.digest, DIGEST_BYTES, 'digest');
    encoding.writeVarUint8Array(encoder, message.digest);
  },
  read(decoder) {
    return { type: 'digest', digest: readExactBytes(decoder, 'digest', DIGEST_BYTES) };
  },
};

/** The sender's version vector (or its last part). */
export const vv: MessageLayout<'vv'> = {
  write: writeVector,
  read(decoder) {
    return { type: 'vv', vv: readVector(decoder) };
  },
};

/** Entries of the vector the next `vv` completes (a vector too big for one frame); same layout. */
export const vvPart: MessageLayout<'vvPart'> = {
  write: writeVector,
  read(decoder) {
    return { type: 'vvPart', vv: readVector(decoder) };
  },
};

/**
 * round: u32, index: u32, list<replica> (the table), list<(page, replica index, count, seq, epoch, kind[, t])>.
 * A chunk names each replica once in a table and refers to it by index: a sync answer has many
 * pages and few replicas, so this saves ~16 bytes a slot. The table lists replicas in order of
 * first use and has no unused entries, so a message has one encoding.
 */
export const slots: MessageLayout<'slots'> = {
  write(encoder, message) {
    checkU32(message.round, 'round');
    checkU32(message.index, 'chunk index');
    const table = new Map<ReplicaId, number>();
    for (const slot of message.slots) {
      checkReplica(slot.replica, 'slot replica');
      checkPage(slot.page);
      checkSlotValue(slot.count, slot.seq, epochOf(slot));
      if (!table.has(slot.replica)) table.set(slot.replica, table.size);
    }
    encoding.writeVarUint(encoder, message.round);
    encoding.writeVarUint(encoder, message.index);
    encoding.writeVarUint(encoder, table.size);
    for (const replica of table.keys()) encoding.writeVarUint8Array(encoder, replicaIdToBytes(replica));
    checkCount(message.slots.length, 'slot', MAX_FRAME_ENTRIES);
    encoding.writeVarUint(encoder, message.slots.length);
    for (const slot of message.slots) {
      writeText(encoder, slot.page);
      encoding.writeVarUint(encoder, table.get(slot.replica)!);
      encoding.writeVarUint(encoder, slot.count);
      encoding.writeVarUint(encoder, slot.seq);
      encoding.writeVarUint(encoder, epochOf(slot));
      writeKey(encoder, slot);
    }
  },
  read(decoder) {
    const round = readU32(decoder, 'round');
    const index = readU32(decoder, 'chunk index');
    const tableSize = readCount(decoder, 'replica table entry', MIN_REPLICA_BYTES, MAX_FRAME_ENTRIES);
    const table: ReplicaId[] = [];
    const seen = new Set<ReplicaId>();
    for (let i = 0; i < tableSize; i++) {
      const replica = readReplica(decoder, 'replica table entry');
      if (seen.has(replica)) bad(`replica table names ${replica} twice`);
      seen.add(replica);
      table.push(replica);
    }
    const count = readCount(decoder, 'slot', MIN_SLOT_BYTES, MAX_FRAME_ENTRIES);
    const slots: Slot[] = [];
    let used = 0;
    for (let i = 0; i < count; i++) {
      const page = readPage(decoder);
      const replicaIndex = readUint(decoder, 'slot replica index');
      const replica = table[replicaIndex];
      if (replica === undefined) bad(`slot replica index ${replicaIndex} is outside the table of ${table.length}`);
      // First use in table order: one encoding per message.
      if (replicaIndex > used) bad(`slot replica index ${replicaIndex} skips table entry ${used}`);
      if (replicaIndex === used) used += 1;
      const slotCount = readUint(decoder, 'slot count');
      const seq = readUint(decoder, 'slot seq');
      const epoch = readUint(decoder, 'slot epoch');
      checkSlotValue(slotCount, seq, epoch);
      const key = readKey(decoder, slotCount);
      slots.push(epoch === 0 ? { page, replica, count: slotCount, seq, ...key } : { page, replica, count: slotCount, seq, epoch, ...key });
    }
    if (used !== table.length) bad(`replica table has ${table.length - used} unused entries`);
    return { type: 'slots', round, index, slots };
  },
};

/** round: u32, chunks: u32, list<(replica, after, upTo)> with after < upTo. */
export const covered: MessageLayout<'covered'> = {
  write(encoder, message) {
    checkU32(message.round, 'round');
    checkU32(message.chunks, 'chunks');
    encoding.writeVarUint(encoder, message.round);
    encoding.writeVarUint(encoder, message.chunks);
    encoding.writeVarUint(encoder, message.ranges.length);
    for (const range of message.ranges) {
      checkRange(range, 'covered range');
      writeSeqRange(encoder, range, 'covered range');
    }
  },
  read(decoder) {
    const round = readU32(decoder, 'round');
    const chunks = readU32(decoder, 'chunks');
    const count = readCount(decoder, 'covered range', MIN_RANGE_BYTES);
    const ranges: SeqRange[] = [];
    for (let i = 0; i < count; i++) ranges.push(readSeqRange(decoder, 'covered range'));
    return { type: 'covered', round, chunks, ranges };
  },
};

function checkDeltaSlotSeq(seq: number, range: SeqRange): void {
  if (seq <= range.after || seq > range.upTo) bad(`delta slot seq ${seq} lies outside its range (${range.after}, ${range.upTo}]`);
}

/**
 * A delta's origin: the session's sender (its replica left out), a replica named, or the
 * session's sender with its range relative to the direction's previous origin-2 or -3 delta (3:
 * one slot at span 1).
 */
const ORIGIN_SENDER = 0;
const ORIGIN_NAMED = 1;
const ORIGIN_SENDER_NEXT = 2;
/** Origin 2 with span 1 and one slot (a lone increment's delta): span, count and back left out. */
const ORIGIN_SENDER_NEXT_ONE = 3;

/**
 * origin · range · list<dslot>. origin 0: the sender's replica (left out), varUint upTo, varUint
 * span (upTo − after, ≥ 1); origin 1: replica, upTo, span; origin 2 (inside a session only): the
 * sender's replica, varUint gap (after − the upTo of the direction's previous origin-2 or -3
 * delta), span; origin 3: as 2 with span 1 and exactly one dslot, at upTo: span, the list's count
 * and the slot's back left out (a lone increment's delta, the commonest frame). dslot = pageRef[, name] · count · back (upTo − seq < span: every seq inside (after,
 * upTo]) · head[, epoch][, t]. Seqs as distances from upTo: a commit's slots all carry upTo (1
 * byte each). pageRef: the session's page table (page-table.ts), a definition's name as the bytes
 * it shares with the previous definition and the rest; head: kind (0–3) at epoch 0, 4 + kind with
 * the epoch following. Version 6 (PROTOCOL.md §4, §4b).
 */
export const delta: MessageLayout<'delta'> = {
  write(encoder, message, context) {
    const range = message.range;
    checkRange(range, 'delta range');
    checkCount(message.slots.length, 'delta slot', MAX_FRAME_ENTRIES);
    for (const slot of message.slots) {
      checkPage(slot.page);
      checkSlotValue(slot.count, slot.seq, epochOf(slot));
      checkDeltaSlotSeq(slot.seq, range);
      if (slot.kind !== undefined) checkSeriesKey(slot.kind, slot.t ?? 0, slot.count);
    }
    const state = context.pagesOut;
    const own = context.sender !== undefined && context.sender === range.replica;
    const next = own && state !== undefined && range.after >= state.lastUpTo;
    const single = next && range.upTo - range.after === 1 && message.slots.length === 1;
    if (next) {
      encoding.writeVarUint(encoder, single ? ORIGIN_SENDER_NEXT_ONE : ORIGIN_SENDER_NEXT);
      encoding.writeVarUint(encoder, range.after - state.lastUpTo);
      state.lastUpTo = range.upTo;
    } else {
      if (own) encoding.writeVarUint(encoder, ORIGIN_SENDER);
      else {
        encoding.writeVarUint(encoder, ORIGIN_NAMED);
        writeReplica(encoder, range.replica, 'delta replica');
      }
      encoding.writeVarUint(encoder, range.upTo);
    }
    if (!single) {
      encoding.writeVarUint(encoder, range.upTo - range.after);
      encoding.writeVarUint(encoder, message.slots.length);
    }
    for (const slot of message.slots) {
      if (state === undefined) {
        encoding.writeVarUint(encoder, PAGE_REF_LITERAL);
        writeText(encoder, slot.page);
      } else {
        const page = state.ref(slot.page);
        encoding.writeVarUint(encoder, page.ref);
        if (page.named) {
          const name = state.prefixed(utf8Bytes(slot.page));
          encoding.writeVarUint(encoder, name.shared);
          encoding.writeVarUint8Array(encoder, name.suffix);
        }
      }
      encoding.writeVarUint(encoder, slot.count);
      if (!single) encoding.writeVarUint(encoder, range.upTo - slot.seq);
      const epoch = epochOf(slot);
      const kind = slot.kind ?? 0;
      encoding.writeVarUint(encoder, epoch === 0 ? kind : EPOCH_FOLLOWS + kind);
      if (epoch !== 0) encoding.writeVarUint(encoder, epoch);
      if (slot.kind !== undefined) encoding.writeVarUint(encoder, slot.t ?? 0);
    }
  },
  read(decoder, context) {
    const start = decoder.pos;
    const origin = readUint(decoder, 'delta origin');
    const state = context.pagesIn;
    let range: SeqRange;
    const single = origin === ORIGIN_SENDER_NEXT_ONE;
    if (origin === ORIGIN_SENDER_NEXT || single) {
      if (context.sender === undefined || state === undefined) bad(`a delta relative to the previous one (origin ${origin}) outside a session`);
      const gap = readUint(decoder, 'delta gap');
      const span = single ? 1 : readUint(decoder, 'delta span');
      if (span < 1) bad(`delta span ${span} must be at least 1`);
      const after = state.lastUpTo + gap;
      const upTo = after + span;
      if (!Number.isSafeInteger(upTo)) bad(`delta range (${after}, ${upTo}] passes 2^53-1`);
      range = { replica: context.sender, after, upTo };
      state.lastUpTo = upTo;
    } else {
      let replica: ReplicaId;
      if (origin === ORIGIN_SENDER) {
        if (context.sender === undefined) bad("a delta of the sender's own replica outside a session (no hello names the sender)");
        replica = context.sender;
      } else if (origin === ORIGIN_NAMED) replica = readReplica(decoder, 'delta replica');
      else bad(`delta origin ${origin} is none of 0 (the sender), 1 (a replica named), 2 and 3 (the sender, after its previous delta)`);
      const upTo = readUint(decoder, 'delta upTo');
      const span = readUint(decoder, 'delta span');
      if (span < 1 || span > upTo) bad(`delta span ${span} must be 1 to upTo (${upTo})`);
      range = { replica, after: upTo - span, upTo };
    }
    checkRange(range, 'delta range');
    const { after, upTo } = range;
    const span = upTo - after;
    // What the frame would grow by written out without the session's state, as the broadcast
    // tree passes a delta on (§5a): the range with its replica, each name in full.
    let grows = 1 + 1 + REPLICA_ID_BYTES + varUintBytes(upTo) + varUintBytes(span) - (decoder.pos - start);
    // Origin 3 says one slot at upTo: written out, its count and the slot's back (1 byte each) too.
    if (single) grows += 2;
    const count = single ? 1 : readCount(decoder, 'delta slot', MIN_DELTA_SLOT_BYTES, MAX_FRAME_ENTRIES);
    const slots: ReplicaSlot[] = [];
    for (let i = 0; i < count; i++) {
      const pageAt = decoder.pos;
      const ref = readUint(decoder, 'page reference');
      let page: PageName;
      if (ref === PAGE_REF_LITERAL) page = readPage(decoder);
      else if (state === undefined) bad(`page reference ${ref} outside a session (no page table)`);
      else if (PageTableIn.defines(ref)) {
        const shared = readUint(decoder, 'page name shared bytes');
        const suffix = readBytes(decoder, 'page name', MAX_PAGE_NAME_BYTES);
        const bytes = state.joined(shared, suffix, MAX_PAGE_NAME_BYTES);
        page = pageFromBytes(bytes);
        state.define(ref, page, bytes.byteLength);
        grows += literalPageBytes(bytes.byteLength) - (decoder.pos - pageAt);
      } else {
        page = state.use(ref);
        grows += literalPageBytes(state.bytesOf(ref)) - (decoder.pos - pageAt);
      }
      const slotCount = readUint(decoder, 'slot count');
      const back = single ? 0 : readUint(decoder, 'slot seq distance');
      // back < span is the reader's checkDeltaSlotSeq: seq = upTo − back lies in (after, upTo].
      if (back >= span) bad(`delta slot seq distance ${back} puts it outside its range (${after}, ${upTo}]`);
      const seq = upTo - back;
      const head = readUint(decoder, 'slot kind and epoch');
      if (head >= 2 * EPOCH_FOLLOWS) bad(`slot kind and epoch ${head} must be 0–${2 * EPOCH_FOLLOWS - 1}`);
      let epoch = 0;
      if (head >= EPOCH_FOLLOWS) {
        epoch = readUint(decoder, 'slot epoch');
        // One encoding per slot: epoch 0 is said by the head alone.
        if (epoch === 0) bad('slot epoch 0 written out (a head below 4 says it)');
      }
      checkSlotValue(slotCount, seq, epoch);
      const key = readKeyOfKind(decoder, head % EPOCH_FOLLOWS, slotCount);
      slots.push(epoch === 0 ? { page, count: slotCount, seq, ...key } : { page, count: slotCount, seq, epoch, ...key });
    }
    // A delta is passed on by the broadcast tree with its replica and names written out (§5a):
    // one that would not fit a frame so is refused here, not found out when relaying it.
    const written = decoder.pos + grows;
    if (written > MAX_FRAME_BYTES - MAC_BYTES) bad(`delta would take ${written} bytes with its names written out; frames are at most ${MAX_FRAME_BYTES - MAC_BYTES} before their MAC`);
    return { type: 'delta', range, slots };
  },
};
