import fc from 'fast-check';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { describe, expect, it } from 'vitest';
import { HLL_MAX_RANK } from '../../src/crdt/hyperloglog.js';
import type { PageName, ReplicaId } from '../../src/ids.js';
import { decodeFrame, encodeMessage, MESSAGE_TAGS, ProtocolError, REJECT_CODES } from '../../src/protocol/codec.js';
import { MAX_ANNOUNCED_RANGES, MAX_FRAME_BYTES, NONCE_BYTES, PROOF_BYTES, PROTOCOL_VERSION, type Message } from '../../src/protocol/messages.js';
import { messageArb, messageArbs } from './arbitraries.js';

const R1 = '0123456789abcdef0123456789abcdef' as ReplicaId;
const R2 = 'fedcba9876543210fedcba9876543210' as ReplicaId;
const page = (name: string) => name as PageName;

// Raw frame building, for frames encodeMessage refuses to produce.
type Part = { uint: number } | { bytes: Uint8Array } | { text: string } | { raw: number[] };
const u = (value: number): Part => ({ uint: value });
const b = (bytes: Uint8Array | number[]): Part => ({ bytes: Uint8Array.from(bytes) });
const t = (text: string): Part => ({ text });
const raw = (...bytes: number[]): Part => ({ raw: bytes });
const rid = (hex: string = R1): Part => b(Buffer.from(hex, 'hex'));
/** A delta's head naming its replica: origin 1, replica, upTo, span (upTo − after). */
const named = (replica: string, after: number, upTo: number): Part[] => [u(1), rid(replica), u(upTo), u(upTo - after)];

function frame(...parts: Part[]): Uint8Array {
  const encoder = encoding.createEncoder();
  for (const part of parts) {
    if ('uint' in part) encoding.writeVarUint(encoder, part.uint);
    else if ('bytes' in part) encoding.writeVarUint8Array(encoder, part.bytes);
    else if ('text' in part) encoding.writeVarUint8Array(encoder, new TextEncoder().encode(part.text));
    else for (const byte of part.raw) encoding.writeUint8(encoder, byte);
  }
  return encoding.toUint8Array(encoder);
}

const v1 = (tag: keyof typeof MESSAGE_TAGS, ...parts: Part[]) => frame(u(PROTOCOL_VERSION), u(MESSAGE_TAGS[tag]), ...parts);

function decodeError(bytes: Uint8Array): ProtocolError {
  try {
    decodeFrame(bytes);
  } catch (error) {
    if (error instanceof ProtocolError) return error;
    throw new Error(`decodeFrame threw something other than ProtocolError: ${String(error)}`, { cause: error });
  }
  throw new Error('decodeFrame accepted the frame');
}

function expectBadFrame(bytes: Uint8Array, pattern?: RegExp): void {
  const error = decodeError(bytes);
  expect(error.code).toBe('bad_frame');
  if (pattern !== undefined) expect(error.message).toMatch(pattern);
}

/** A ProtocolError that names the problem, not the catch-all for an unexpected exception. */
function expectSpecificRejection(error: unknown): void {
  expect(error).toBeInstanceOf(ProtocolError);
  expect((error as ProtocolError).cause).toBeUndefined();
}

function awareness(...entries: Part[][]): Uint8Array {
  return frame(u(entries.length), ...entries.flat());
}

describe('round trip', () => {
  for (const [type, arbitrary] of Object.entries(messageArbs)) {
    it(`${type}: decode(encode(m)) equals m, and encoding is canonical`, () => {
      fc.assert(
        fc.property(arbitrary as fc.Arbitrary<Message>, (message) => {
          const bytes = encodeMessage(message);
          const decoded = decodeFrame(bytes);
          expect(decoded).toEqual(message);
          expect(encodeMessage(decoded)).toEqual(bytes);
        }),
        { numRuns: 200 },
      );
    });
  }

  it('decode(encode(m)) equals m in a session too, whoever the sender (a delta of its own replica leaves it out)', () => {
    fc.assert(
      fc.property(messageArb, fc.boolean(), fc.constantFrom(R1, R2), (message, own, other) => {
        const sender = own && message.type === 'delta' ? message.range.replica : other;
        const bytes = encodeMessage(message, { sender });
        expect(decodeFrame(bytes, { sender })).toEqual(message);
        expect(encodeMessage(decodeFrame(bytes, { sender }), { sender })).toEqual(bytes);
      }),
      { numRuns: 500 },
    );
  });

  it('starts every frame with the protocol version and the type tag', () => {
    fc.assert(
      fc.property(messageArb, (message) => {
        const bytes = encodeMessage(message);
        expect(bytes[0]).toBe(PROTOCOL_VERSION);
        expect(bytes[1]).toBe(MESSAGE_TAGS[message.type]);
      }),
    );
  });

  it('carries 2^53-1, the largest safe integer, in a varUint of 8 bytes', () => {
    const max = Number.MAX_SAFE_INTEGER;
    const bytes = encodeMessage({ type: 'ping', id: max });
    expect(bytes.byteLength).toBe(2 + 8);
    expect(decodeFrame(bytes)).toEqual({ type: 'ping', id: max });
    const delta: Message = { type: 'delta', range: { replica: R1, after: max - 1, upTo: max }, slots: [{ page: page('p'), count: max, seq: max }] };
    expect(decodeFrame(encodeMessage(delta))).toEqual(delta);
  });

  it('decoded byte fields do not alias the frame', () => {
    const nonce = new Uint8Array(NONCE_BYTES).fill(7);
    const bytes = encodeMessage({ type: 'hello', cluster: 'c', replica: R1, node: 'n', nonce });
    const decoded = decodeFrame(bytes) as Extract<Message, { type: 'hello' }>;
    bytes.fill(0);
    expect(decoded.nonce).toEqual(nonce);
  });

  it('keeps a leading byte-order mark in a page name', () => {
    const delta: Message = { type: 'delta', range: { replica: R1, after: 0, upTo: 1 }, slots: [{ page: page('\ufeffx'), count: 1, seq: 1 }] };
    expect(decodeFrame(encodeMessage(delta))).toEqual(delta);
  });
});

describe('lib0 varUint, and why the codec reads varUints itself', () => {
  it('lib0 turns a long run of continuation bytes into a non-safe number instead of throwing', () => {
    const bytes = Uint8Array.from([...new Array(200).fill(0x80), 0x01]);
    const value = decoding.readVarUint(decoding.createDecoder(bytes));
    expect(Number.isSafeInteger(value)).toBe(false);
  });

  it('lib0 accepts an overlong encoding of 0', () => {
    expect(decoding.readVarUint(decoding.createDecoder(Uint8Array.from([0x80, 0x00])))).toBe(0);
  });

  it('lib0 reads one byte past the end as undefined, and many as a plain Error', () => {
    const decoder = decoding.createDecoder(Uint8Array.from([1, 2]));
    expect(() => decoding.readUint8Array(decoder, 10)).toThrow(/Unexpected end of array/);
    decoding.readUint8Array(decoder, 2);
    expect(decoding.readUint8(decoder)).toBeUndefined();
  });

  it('the codec refuses 2^53, over-long, too-long and unterminated varUints', () => {
    // 2^53 = 0x20000000000000: seven 0x80 groups then 0x10.
    expectBadFrame(v1('ping', raw(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10)), /2\^53/);
    expectBadFrame(v1('ping', raw(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)), /2\^53/);
    expectBadFrame(v1('ping', raw(0x81, 0x00)), /overlong/);
    expectBadFrame(v1('ping', raw(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01)), /longer than 8 bytes/);
    expectBadFrame(v1('ping', raw(0x80)), /ends inside/);
    expectBadFrame(frame(raw(...new Array(200).fill(0x80), 0x01)), /longer than 8 bytes/);
  });
});

describe('framing', () => {
  it('refuses an empty frame, an unknown tag and trailing bytes', () => {
    expectBadFrame(new Uint8Array(0), /empty/);
    expectBadFrame(frame(u(PROTOCOL_VERSION), u(15)), /unknown message type 15/);
    expectBadFrame(frame(u(PROTOCOL_VERSION), u(2 ** 40)), /unknown message type/);
    expectBadFrame(v1('ping', u(1), raw(0)), /trailing/);
  });

  it('reads the version of a frame of another version and throws protocol_version', () => {
    // Version 1 (before authenticated sessions) is refused like any other, and so are 4 (deltas naming their replica) and 5 (deltas naming their pages).
    for (const version of [0, 1, 2, 3, 4, 5, 7, 300, 2 ** 40]) {
      const error = decodeError(frame(u(version), u(MESSAGE_TAGS.ping), u(1)));
      expect(error.code).toBe('protocol_version');
      expect(error.version).toBe(version);
      expect(error.message).toContain(String(version));
    }
    // Even when the rest is garbage in this version's terms.
    expect(decodeError(frame(u(1), raw(0xff, 0xff))).code).toBe('protocol_version');
  });

  it('refuses frames larger than MAX_FRAME_BYTES before reading them', () => {
    const big = new Uint8Array(MAX_FRAME_BYTES + 1);
    big.set(encodeMessage({ type: 'ping', id: 1 }));
    expectBadFrame(big, /at most/);
  });

  it('refuses to encode a message larger than MAX_FRAME_BYTES', () => {
    const slots = Array.from({ length: 5000 }, (_, i) => ({ page: page(`${i}`.padEnd(250, 'x')), count: 1, seq: 1 }));
    expect(() => encodeMessage({ type: 'delta', range: { replica: R1, after: 0, upTo: 1 }, slots })).toThrow(ProtocolError);
  });

  it('every truncation of a valid frame is a bad frame', () => {
    fc.assert(
      fc.property(messageArb, (message) => {
        const bytes = encodeMessage(message);
        for (let length = 0; length < bytes.byteLength; length++) expectBadFrame(bytes.subarray(0, length));
      }),
      { numRuns: 150 },
    );
  });

  it('a valid frame with any byte appended is a bad frame', () => {
    fc.assert(
      fc.property(messageArb, fc.integer({ min: 0, max: 255 }), (message, extra) => {
        const bytes = encodeMessage(message);
        expectBadFrame(Uint8Array.from([...bytes, extra]));
      }),
      { numRuns: 150 },
    );
  });

  it('arbitrary bytes decode to a valid message or throw ProtocolError, nothing else', () => {
    const isValid = (message: Message) => expect(encodeMessage(message)).toBeInstanceOf(Uint8Array);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          isValid(decodeFrame(bytes));
        } catch (error) {
          expectSpecificRejection(error);
        }
      }),
      { numRuns: 2000 },
    );
    // Version and tag right, payload random: reaches every message decoder.
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 9 }), fc.uint8Array({ maxLength: 300 }), (tag, payload) => {
        try {
          isValid(decodeFrame(Uint8Array.from([PROTOCOL_VERSION, tag, ...payload])));
        } catch (error) {
          expectSpecificRejection(error);
        }
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 5000) },
    );
  });

  it('mutated valid frames decode to a valid message or throw ProtocolError', () => {
    fc.assert(
      fc.property(messageArb, fc.nat(), fc.integer({ min: 0, max: 255 }), (message, at, byte) => {
        const bytes = encodeMessage(message);
        bytes[at % bytes.byteLength] = byte;
        try {
          expect(encodeMessage(decodeFrame(bytes))).toEqual(bytes);
        } catch (error) {
          expectSpecificRejection(error);
        }
      }),
      { numRuns: Number(process.env.MUTATION_RUNS ?? 2000) },
    );
  });
});

describe('field validation', () => {
  const nonce = new Array(NONCE_BYTES).fill(1);
  const proof = new Array(PROOF_BYTES).fill(2);

  it('hello: replica ids of exactly 16 bytes, nonce of NONCE_BYTES, names within limits and valid UTF-8', () => {
    expect(decodeFrame(v1('hello', t('c'), rid(), t('n'), b(nonce))).type).toBe('hello');
    expectBadFrame(v1('hello', t('c'), b(new Array(15).fill(1)), t('n'), b(nonce)), /replica/);
    expectBadFrame(v1('hello', t('c'), b(new Array(17).fill(1)), t('n'), b(nonce)), /replica/);
    expectBadFrame(v1('hello', t('c'), rid(), t('n'), b(nonce.slice(1))), /nonce/);
    expectBadFrame(v1('hello', t('c'), rid(), t('n'), b([...nonce, 1])), /nonce/);
    expectBadFrame(v1('hello', t('c'.repeat(129)), rid(), t('n'), b(nonce)), /cluster name is 129 bytes/);
    expectBadFrame(v1('hello', t('c'), rid(), t('n'.repeat(257)), b(nonce)), /node name is 257 bytes/);
    expectBadFrame(v1('hello', b([0xc3, 0x28]), rid(), t('n'), b(nonce)), /cluster name is not valid UTF-8/);
    expectBadFrame(v1('hello', t('c'), rid(), b([0xed, 0xa0, 0x80]), b(nonce)), /node name is not valid UTF-8/);
  });

  it('auth: proof of PROOF_BYTES', () => {
    expect(decodeFrame(v1('auth', b(proof))).type).toBe('auth');
    expectBadFrame(v1('auth', b(proof.slice(1))), /proof/);
    expectBadFrame(v1('auth', b([...proof, 0])), /proof/);
  });

  it('reject: known codes only, reason within its limit', () => {
    expect(decodeFrame(v1('reject', u(REJECT_CODES.indexOf('auth')), t('no')))).toEqual({ type: 'reject', code: 'auth', reason: 'no' });
    expectBadFrame(v1('reject', u(REJECT_CODES.length), t('x')), /unknown reject code/);
    expectBadFrame(v1('reject', u(0), t('r'.repeat(513))), /reject reason is 513 bytes/);
  });

  it('vv: no duplicate replicas, seqs ≥ 1, sane counts', () => {
    expect(decodeFrame(v1('vv', u(2), rid(R1), u(3), rid(R2), u(4)))).toEqual({ type: 'vv', vv: new Map([[R1, 3], [R2, 4]]) });
    expectBadFrame(v1('vv', u(2), rid(R1), u(3), rid(R1), u(4)), /twice/);
    expectBadFrame(v1('vv', u(1), rid(R1), u(0)), /seq/);
    expectBadFrame(v1('vv', u(2 ** 40), rid(R1), u(3)), /does not fit/);
    expectBadFrame(v1('vv', u(Number.MAX_SAFE_INTEGER), rid(R1), u(3)), /does not fit/);
  });

  it('slots: u32 round and index, table indexes in range, no duplicate table entries, count and seq ≥ 1', () => {
    const ok = v1('slots', u(1), u(0), u(1), rid(R1), u(1), t('p'), u(0), u(5), u(9), u(0), u(0));
    expect(decodeFrame(ok)).toEqual({ type: 'slots', round: 1, index: 0, slots: [{ page: 'p', replica: R1, count: 5, seq: 9 }] });
    expectBadFrame(v1('slots', u(2 ** 32), u(0), u(0), u(0)), /round/);
    expectBadFrame(v1('slots', u(0), u(2 ** 32), u(0), u(0)), /chunk index/);
    expectBadFrame(v1('slots', u(1), u(0), u(1), rid(R1), u(1), t('p'), u(1), u(5), u(9), u(0), u(0)), /outside the table/);
    expectBadFrame(v1('slots', u(1), u(0), u(2), rid(R1), rid(R1), u(0)), /twice/);
    expectBadFrame(v1('slots', u(1), u(0), u(2), rid(R1), rid(R2), u(1), t('p'), u(1), u(5), u(9), u(0), u(0)), /skips table entry 0/);
    expectBadFrame(v1('slots', u(1), u(0), u(2), rid(R1), rid(R2), u(1), t('p'), u(0), u(5), u(9), u(0), u(0)), /unused/);
    expectBadFrame(v1('slots', u(1), u(0), u(1), rid(R1), u(1), t('p'), u(0), u(0), u(9), u(0), u(0)), /count/);
    expectBadFrame(v1('slots', u(1), u(0), u(1), rid(R1), u(1), t('p'), u(0), u(5), u(0), u(0), u(0)), /seq/);
    expectBadFrame(v1('slots', u(1), u(0), u(1), rid(R1), u(1000), t('p'), u(0), u(5), u(9), u(0), u(0)), /does not fit/);
  });

  it('slots and delta carry the slot kind: 0 the total, 1–3 an hour or day bucket or a register with its t', () => {
    const slot = (kind: number, ...rest: Part[]) => v1('slots', u(1), u(0), u(1), rid(R1), u(1), t('p'), u(0), u(5), u(9), u(0), u(kind), ...rest);
    expect(decodeFrame(slot(1, u(490_000)))).toEqual({ type: 'slots', round: 1, index: 0, slots: [{ page: 'p', replica: R1, count: 5, seq: 9, kind: 1, t: 490_000 }] });
    expect(decodeFrame(slot(3, u(20_000 * 16384 + 7)))).toMatchObject({ slots: [{ kind: 3, t: 20_000 * 16384 + 7 }] });
    expectBadFrame(slot(4, u(1)), /kind/);
    expectBadFrame(slot(2), /t|fit|end/);
    expectBadFrame(slot(2, u(2 ** 41)), /t /);
    // A register's rank is 1–51 (HLL_MAX_RANK: 64 − 14 + 1); anything above no visitor can raise.
    const register = (count: number) => v1('slots', u(1), u(0), u(1), rid(R1), u(1), t('p'), u(0), u(count), u(9), u(0), u(3), u(20_000 * 16384 + 7));
    expect(decodeFrame(register(HLL_MAX_RANK))).toMatchObject({ slots: [{ kind: 3, count: HLL_MAX_RANK }] });
    expectBadFrame(register(HLL_MAX_RANK + 1), /rank must be 1–51, got 52/);
    expectBadFrame(register(10 ** 9), /rank/);
    const rankDelta: Message = { type: 'delta', range: { replica: R1, after: 0, upTo: 1 }, slots: [{ page: page('p'), count: 10 ** 9, seq: 1, kind: 3, t: 20_000 * 16384 }] };
    expect(() => encodeMessage(rankDelta)).toThrow(/rank/);
    expectBadFrame(v1('delta', ...named(R1, 0, 1), u(1), u(0), t('p'), u(52), u(0), u(3), u(20_000 * 16384)), /rank/);
    // The count of a bucket is not bounded by the rank.
    expect(decodeFrame(v1('delta', ...named(R1, 0, 1), u(1), u(0), t('p'), u(52), u(0), u(2), u(20_000)))).toMatchObject({ slots: [{ kind: 2, count: 52 }] });
    // A series slot counts at least 1, even at a reset epoch.
    expectBadFrame(v1('slots', u(1), u(0), u(1), rid(R1), u(1), t('p'), u(0), u(0), u(9), u(1), u(2), u(5)), /at least 1/);
    const delta = v1('delta', ...named(R1, 0, 1), u(1), u(0), t('p'), u(3), u(0), u(2), u(20_000));
    expect(decodeFrame(delta)).toEqual({ type: 'delta', range: { replica: R1, after: 0, upTo: 1 }, slots: [{ page: 'p', count: 3, seq: 1, kind: 2, t: 20_000 }] });
    const message: Message = { type: 'delta', range: { replica: R1, after: 0, upTo: 1 }, slots: [{ page: page('p'), count: 3, seq: 1, kind: 2, t: 20_000 }] };
    expect(decodeFrame(encodeMessage(message))).toEqual(message);
  });

  it('slots and delta carry the reset epoch: count 0 only at an epoch ≥ 1 (a reset tombstone)', () => {
    const slot = (count: number, epoch: number) => v1('slots', u(1), u(0), u(1), rid(R1), u(1), t('p'), u(0), u(count), u(9), u(epoch), u(0));
    expect(decodeFrame(slot(0, 3))).toEqual({ type: 'slots', round: 1, index: 0, slots: [{ page: 'p', replica: R1, count: 0, seq: 9, epoch: 3 }] });
    expect(decodeFrame(slot(5, 2))).toEqual({ type: 'slots', round: 1, index: 0, slots: [{ page: 'p', replica: R1, count: 5, seq: 9, epoch: 2 }] });
    expectBadFrame(slot(0, 0), /slot count/);
    expectBadFrame(v1('slots', u(1), u(0), u(1), rid(R1), u(1), t('p'), u(0), u(5), u(9)), /epoch|does not fit/);
    const delta = (count: number, epoch: number) => v1('delta', ...named(R1, 0, 1), u(1), u(0), t('p'), u(count), u(0), ...(epoch === 0 ? [u(0)] : [u(4), u(epoch)]));
    expect(decodeFrame(delta(0, 1))).toEqual({ type: 'delta', range: { replica: R1, after: 0, upTo: 1 }, slots: [{ page: 'p', count: 0, seq: 1, epoch: 1 }] });
    expectBadFrame(delta(0, 0), /slot count/);
    expectBadFrame(delta(1, 2 ** 53), /epoch|safe|does not fit|too/);
    // The writer applies the same rule: it never sends what a peer would refuse.
    expect(() => encodeMessage({ type: 'delta', range: { replica: R1, after: 0, upTo: 1 }, slots: [{ page: page('p'), count: 0, seq: 1 }] })).toThrow(/slot count/);
  });

  it('page names: 1–256 bytes of strict UTF-8 without control characters', () => {
    const withPage = (name: Part) => v1('slots', u(1), u(0), u(1), rid(R1), u(1), name, u(0), u(5), u(9), u(0), u(0));
    expect(decodeFrame(withPage(t('é'.repeat(128))))).toMatchObject({ type: 'slots' });
    expectBadFrame(withPage(t('')), /empty/);
    expectBadFrame(withPage(t('a'.repeat(257))), /257 bytes/);
    expectBadFrame(withPage(t('a\nb')), /control/);
    expectBadFrame(withPage(t('a\u0085b')), /control/);
    expectBadFrame(withPage(b([0x61, 0xff])), /UTF-8/);
    expectBadFrame(withPage(b([0xc0, 0xaf])), /UTF-8/); // overlong '/'
    expectBadFrame(withPage(b([0xed, 0xa0, 0x80])), /UTF-8/); // encoded surrogate
  });

  it('covered: u32 round and chunks, ranges with 0 ≤ after < upTo', () => {
    expect(decodeFrame(v1('covered', u(3), u(0), u(1), rid(R1), u(0), u(7)))).toEqual({
      type: 'covered',
      round: 3,
      chunks: 0,
      ranges: [{ replica: R1, after: 0, upTo: 7 }],
    });
    expectBadFrame(v1('covered', u(2 ** 32), u(0), u(0)), /round/);
    expectBadFrame(v1('covered', u(0), u(2 ** 32), u(0)), /chunks/);
    expectBadFrame(v1('covered', u(0), u(1), u(1), rid(R1), u(7), u(7)), /after < upTo/);
    expectBadFrame(v1('covered', u(0), u(1), u(1), rid(R1), u(8), u(7)), /after < upTo/);
    expectBadFrame(v1('covered', u(0), u(1), u(1), b([1, 2, 3]), u(0), u(7)), /replica/);
  });

  it('delta: every slot seq lies in (after, upTo]', () => {
    // On the wire: upTo, span = upTo − after, and each seq as back = upTo − seq (< span).
    const delta = (upTo: number, span: number, back: number) => v1('delta', u(1), rid(), u(upTo), u(span), u(1), u(0), t('p'), u(1), u(back), u(0));
    expect(decodeFrame(delta(5, 3, 2))).toMatchObject({ type: 'delta', range: { after: 2, upTo: 5 }, slots: [{ seq: 3 }] });
    expect(decodeFrame(delta(5, 3, 0))).toMatchObject({ type: 'delta', slots: [{ seq: 5 }] });
    expectBadFrame(delta(5, 3, 3), /outside its range/); // seq 2 = after
    expectBadFrame(delta(5, 0, 0), /span 0/);
    expectBadFrame(delta(5, 6, 0), /span 6/); // after would be −1
    expectBadFrame(v1('delta', ...named(R1, 0, 1), u(1), u(0), t('p'), u(0), u(0), u(0)), /count/);
    // The writer checks the same: a seq outside the range is never sent.
    expect(() => encodeMessage({ type: 'delta', range: { replica: R1, after: 2, upTo: 5 }, slots: [{ page: page('p'), count: 1, seq: 2 }] })).toThrow(/outside its range/);
  });

  it("delta: the sender's own replica is left out (origin 0) inside a session, named (origin 1) otherwise", () => {
    const own: Message = { type: 'delta', range: { replica: R1, after: 99_999, upTo: 100_000 }, slots: [{ page: page('ours-load-1'), count: 70_000, seq: 100_000 }] };
    const short = encodeMessage(own, { sender: R1 });
    const named = encodeMessage(own);
    expect(named.byteLength - short.byteLength).toBe(17); // the replica and its length
    expect(encodeMessage(own, { sender: R2 })).toEqual(named); // another sender names it
    expect(decodeFrame(short, { sender: R1 })).toEqual(own);
    expect(decodeFrame(named, { sender: R1 })).toEqual(own); // naming one's own replica is allowed (relays, older encoders)
    expect(decodeFrame(named, { sender: R2 })).toEqual(own);
    // Outside a session (no hello named the sender) origin 0 means nothing: refused.
    expectBadFrame(short, /outside a session/);
    // The same frame from another sender is that sender's delta: the session decides whose.
    expect(decodeFrame(short, { sender: R2 })).toEqual({ ...own, range: { ...own.range, replica: R2 } });
    expectBadFrame(v1('delta', u(4), rid(R1), u(1), u(1), u(1), u(0), t('p'), u(1), u(0), u(0)), /origin 4/);
    // Version 4 laid this out in 46 bytes (replica always; after, upTo and the seq in full).
    expect(short.byteLength).toBe(26);
  });

  it('ihave and graft: 1 to MAX_ANNOUNCED_RANGES ranges with after < upTo; prune: no body', () => {
    expect(decodeFrame(v1('ihave', u(1), rid(R1), u(2), u(5)))).toEqual({ type: 'ihave', ranges: [{ replica: R1, after: 2, upTo: 5 }] });
    expect(decodeFrame(v1('graft', u(2), rid(R1), u(0), u(1), rid(R2), u(3), u(4)))).toEqual({
      type: 'graft',
      ranges: [
        { replica: R1, after: 0, upTo: 1 },
        { replica: R2, after: 3, upTo: 4 },
      ],
    });
    expect(decodeFrame(v1('prune'))).toEqual({ type: 'prune' });
    expectBadFrame(v1('ihave', u(0)), /empty list/);
    expectBadFrame(v1('graft', u(0)), /empty list/);
    expectBadFrame(v1('ihave', u(1), rid(R1), u(5), u(5)), /after < upTo/);
    expectBadFrame(v1('ihave', u(1), b([1, 2]), u(0), u(5)), /replica/);
    const many = Array.from({ length: MAX_ANNOUNCED_RANGES + 1 }, () => [rid(R1), u(0), u(1)]).flat();
    expectBadFrame(v1('ihave', u(MAX_ANNOUNCED_RANGES + 1), ...many), /over 256/);
    expectBadFrame(v1('prune', u(0)), /trailing/);
    expect(decodeFrame(v1('reject', u(7), t('full')))).toEqual({ type: 'reject', code: 'full', reason: 'full' });
  });

  it('awareness: a well-formed y-protocols update of JSON objects or null', () => {
    const entry = (json: string | Uint8Array): Part[] => [u(1), u(2), typeof json === 'string' ? t(json) : b(json)];
    expect(decodeFrame(v1('awareness', b(awareness(entry('{"a":1}'), entry('null')))))).toMatchObject({ type: 'awareness' });
    expectBadFrame(v1('awareness', b(awareness(entry('{"a":')))), /not JSON/);
    expectBadFrame(v1('awareness', b(awareness(entry('[1]')))), /object or null/);
    expectBadFrame(v1('awareness', b(awareness(entry('5')))), /object or null/);
    expectBadFrame(v1('awareness', b(awareness(entry(Uint8Array.from([0xff]))))), /UTF-8/);
    expectBadFrame(v1('awareness', b([...awareness(entry('{}')), 0])), /trailing/);
    expectBadFrame(v1('awareness', b(frame(u(2 ** 30)))), /does not fit/);
  });

  it('ping and pong ids are safe integers', () => {
    expect(decodeFrame(v1('pong', u(0)))).toEqual({ type: 'pong', id: 0 });
  });
});

describe('the encoder applies the same rules', () => {
  const bad: Array<[string, unknown]> = [
    ['negative ping id', { type: 'ping', id: -1 }],
    ['fractional ping id', { type: 'ping', id: 1.5 }],
    ['unsafe ping id', { type: 'ping', id: 2 ** 53 }],
    ['short nonce', { type: 'hello', cluster: 'c', replica: R1, node: 'n', nonce: new Uint8Array(3) }],
    ['bad replica', { type: 'hello', cluster: 'c', replica: 'R1', node: 'n', nonce: new Uint8Array(NONCE_BYTES) }],
    ['lone surrogate', { type: 'hello', cluster: '\ud800', replica: R1, node: 'n', nonce: new Uint8Array(NONCE_BYTES) }],
    ['long proof', { type: 'auth', proof: new Uint8Array(PROOF_BYTES + 1) }],
    ['unknown reject code', { type: 'reject', code: 'nope', reason: '' }],
    ['vv seq 0', { type: 'vv', vv: new Map([[R1, 0]]) }],
    ['slot count 0', { type: 'slots', round: 0, index: 0, slots: [{ page: 'p', replica: R1, count: 0, seq: 1 }] }],
    ['bad page', { type: 'slots', round: 0, index: 0, slots: [{ page: '', replica: R1, count: 1, seq: 1 }] }],
    ['round 2^32', { type: 'covered', round: 2 ** 32, chunks: 0, ranges: [] }],
    ['empty range', { type: 'covered', round: 0, chunks: 0, ranges: [{ replica: R1, after: 1, upTo: 1 }] }],
    ['delta seq outside range', { type: 'delta', range: { replica: R1, after: 1, upTo: 2 }, slots: [{ page: 'p', count: 1, seq: 1 }] }],
    ['awareness garbage', { type: 'awareness', update: Uint8Array.from([1, 2]) }],
    ['empty ihave', { type: 'ihave', ranges: [] }],
    ['graft of an empty range', { type: 'graft', ranges: [{ replica: R1, after: 3, upTo: 3 }] }],
    ['ihave over the limit', { type: 'ihave', ranges: Array.from({ length: 257 }, () => ({ replica: R1, after: 0, upTo: 1 })) }],
    ['unknown type', { type: 'gossip' }],
  ];
  for (const [name, message] of bad) {
    it(`refuses ${name}`, () => {
      expect(() => encodeMessage(message as Message)).toThrow(ProtocolError);
    });
  }
});
