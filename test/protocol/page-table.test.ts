/**
 * The session page tables of `delta` (protocol version 6, PROTOCOL.md §4b): a sender's table and
 * a receiver's, fed the same frames in order, always agree; a frame that fails to encode leaves
 * the sender's table as it was; a reference the receiver cannot resolve is a bad frame.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PageName, ReplicaId } from '../../src/ids.js';
import { decodeFrame, encodeMessage, ProtocolError } from '../../src/protocol/codec.js';
import { MAX_FRAME_ENTRIES, type Message } from '../../src/protocol/messages.js';
import { PAGE_TABLE_ENTRIES, PageTableIn, PageTableOut } from '../../src/protocol/page-table.js';

const R1 = '0123456789abcdef0123456789abcdef' as ReplicaId;
type Delta = Extract<Message, { type: 'delta' }>;

function delta(upTo: number, pages: readonly string[]): Delta {
  return { type: 'delta', range: { replica: R1, after: upTo - 1, upTo }, slots: pages.map((page, i) => ({ page: page as PageName, count: i + 1, seq: upTo })) };
}

function badFrame(run: () => unknown, pattern: RegExp): void {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).code).toBe('bad_frame');
    expect((error as ProtocolError).message).toMatch(pattern);
    return;
  }
  throw new Error('the frame was accepted');
}

describe('session page tables', () => {
  it('a stream of deltas reads back as sent through any table size, each frame at most 2 bytes a slot longer than its literal form', () => {
    const pool = ['/', '/a', '/blog/post-1', 'é/ü', 'x'.repeat(256), '/b', '/c', '/d'];
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 }),
        fc.array(fc.record({ pages: fc.array(fc.constantFrom(...pool), { minLength: 1, maxLength: 6 }), gap: fc.integer({ min: -3, max: 3 }), span: fc.integer({ min: 1, max: 3 }) }), { minLength: 1, maxLength: 40 }),
        fc.boolean(),
        (capacity, frames, own) => {
          const out = new PageTableOut(capacity);
          const into = new PageTableIn();
          const sender = own ? R1 : undefined;
          let upTo = 10;
          const seen = new Set<string>();
          frames.forEach(({ pages, gap, span }) => {
            // Contiguous, past a gap, or (never from a node, but representable) behind the last.
            const after = upTo + gap;
            upTo = after + span;
            const message: Delta = { type: 'delta', range: { replica: R1, after, upTo }, slots: pages.map((page, i) => ({ page: page as PageName, count: i + 1, seq: upTo })) };
            const bytes = encodeMessage(message, { sender, pagesOut: out });
            expect(decodeFrame(bytes, { sender, pagesIn: into })).toEqual(message);
            // A definition costs at most 2 bytes more than a literal name (a 2-byte reference, the shared count).
            const literal = encodeMessage(message, { sender }).byteLength;
            expect(bytes.byteLength).toBeLessThanOrEqual(literal + 2 * pages.length);
            // A table that holds the whole pool, every page of the frame sent before: no name at all.
            if (capacity >= pool.length && pages.every((page) => seen.has(page))) {
              expect(bytes.byteLength).toBeLessThanOrEqual(literal - pages.reduce((sum, page) => sum + Buffer.byteLength(page) + 1, 0));
            }
            for (const page of pages) seen.add(page);
            expect(out.size).toBeLessThanOrEqual(capacity);
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a page the session carried before costs one or two bytes, not its name; a repeat within a frame too', () => {
    const out = new PageTableOut();
    const into = new PageTableIn();
    const name = 'ours-load-517';
    const first = encodeMessage(delta(10, [name]), { sender: R1, pagesOut: out });
    const literal = encodeMessage(delta(11, [name]), { sender: R1 });
    const again = encodeMessage(delta(11, [name]), { sender: R1, pagesOut: out });
    decodeFrame(first, { sender: R1, pagesIn: into });
    expect(decodeFrame(again, { sender: R1, pagesIn: into })).toEqual(delta(11, [name]));
    // Literal: reference 0, length, name. Defined: a 2-byte reference, the bytes shared with the
    // previous definition (none yet), length, name. Used: 1 byte. In a session a lone slot at
    // span 1 also leaves out span, count and back (origin 3): 3 bytes.
    expect(first.byteLength).toBe(literal.byteLength + 2 - 3);
    expect(literal.byteLength - again.byteLength).toBe(1 + name.length + 3);
    // The total, hour and day of one page in one frame: the name once.
    const three = encodeMessage({ type: 'delta', range: { replica: R1, after: 11, upTo: 12 }, slots: [{ page: 'fresh' as PageName, count: 1, seq: 12 }, { page: 'fresh' as PageName, count: 1, seq: 12, kind: 1, t: 490_000 }, { page: 'fresh' as PageName, count: 1, seq: 12, kind: 2, t: 20_000 }] }, { sender: R1, pagesOut: out });
    expect(Buffer.from(three).toString('latin1').split('fresh')).toHaveLength(2);
    expect(decodeFrame(three, { sender: R1, pagesIn: into })).toMatchObject({ slots: [{ page: 'fresh' }, { page: 'fresh', kind: 1 }, { page: 'fresh', kind: 2 }] });
  });

  it('a definition names only what its name does not share with the previous one, and the reader insists on all it shares', () => {
    const out = new PageTableOut();
    const into = new PageTableIn();
    const one = encodeMessage(delta(1, ['/blog/2026/12/first']), { sender: R1, pagesOut: out });
    const two = encodeMessage(delta(2, ['/blog/2026/12/second', '/blog/2026/11/é', '/blog', '/blog/2026/11/éa']), { sender: R1, pagesOut: out });
    expect(decodeFrame(one, { sender: R1, pagesIn: into })).toEqual(delta(1, ['/blog/2026/12/first']));
    expect(decodeFrame(two, { sender: R1, pagesIn: into })).toEqual(delta(2, ['/blog/2026/12/second', '/blog/2026/11/é', '/blog', '/blog/2026/11/éa']));
    expect(Buffer.from(two).toString('latin1')).not.toContain('/blog/2026');
    // Hand-built definitions after '/ab' (origin 0, upTo 1, span 1, one slot, ref 1,026: entry 1).
    const define = (shared: number, suffix: number[]) => Uint8Array.from([6, 6, 0, 1, 1, 1, 0x82, 0x08, shared, suffix.length, ...suffix, 1, 0, 0]);
    const fresh = () => {
      const table = new PageTableIn();
      decodeFrame(Uint8Array.from([6, 6, 0, 1, 1, 1, 0x81, 0x08, 0, 3, 0x2f, 0x61, 0x62, 1, 0, 0]), { sender: R1, pagesIn: table });
      return table;
    };
    expect(decodeFrame(define(2, [0x63]), { sender: R1, pagesIn: fresh() })).toMatchObject({ slots: [{ page: '/ac' }] });
    expect(decodeFrame(define(1, []), { sender: R1, pagesIn: fresh() })).toMatchObject({ slots: [{ page: '/' }] });
    badFrame(() => decodeFrame(define(1, [0x61, 0x63]), { sender: R1, pagesIn: fresh() }), /shares more than the 1 bytes/);
    badFrame(() => decodeFrame(define(4, []), { sender: R1, pagesIn: fresh() }), /shares 4 bytes with the previous definition of 3/);
    badFrame(() => decodeFrame(define(0, []), { sender: R1, pagesIn: fresh() }), /empty/);
    // Bytes joined across a character are decoded strictly as a whole.
    badFrame(() => decodeFrame(define(3, [0xc3]), { sender: R1, pagesIn: fresh() }), /UTF-8/);
  });

  it('origins 2 and 3: a delta of the sender says only how far past its previous one it starts (3: a lone slot at span 1, its span, count and back left out)', () => {
    const out = new PageTableOut();
    const into = new PageTableIn();
    const at = (after: number, upTo: number): Delta => ({ type: 'delta', range: { replica: R1, after, upTo }, slots: [{ page: 'p' as PageName, count: upTo, seq: upTo }] });
    for (const [after, upTo, origin] of [[1_234_566, 1_234_567, 3], [1_234_567, 1_234_568, 3], [1_234_570, 1_234_575, 2]] as const) {
      const bytes = encodeMessage(at(after, upTo), { sender: R1, pagesOut: out });
      expect(bytes[2]).toBe(origin);
      expect(decodeFrame(bytes, { sender: R1, pagesIn: into })).toEqual(at(after, upTo));
    }
    // Contiguous: gap 0, one byte where upTo took three; page 'p' by its entry (1 byte, not 3); no
    // span, count or back (3 bytes).
    const next = encodeMessage(at(1_234_575, 1_234_576), { sender: R1, pagesOut: out });
    expect([...next]).toEqual([6, 6, 3, 0, 1, 0x90, 0xad, 0x4b, 0]); // version, delta, origin 3, gap 0, entry 0, count 1,234,576, head 0
    expect(encodeMessage(at(1_234_575, 1_234_576), { sender: R1 }).byteLength - next.byteLength).toBe(2 + 2 + 3);
    expect(decodeFrame(next, { sender: R1, pagesIn: into })).toEqual(at(1_234_575, 1_234_576));
    // Behind the previous one (never sent by a node): origin 0, upTo in full.
    const behind = encodeMessage(at(5, 6), { sender: R1, pagesOut: out });
    expect(behind[2]).toBe(0);
    expect(decodeFrame(behind, { sender: R1, pagesIn: into })).toEqual(at(5, 6));
    // Outside a session, or past 2^53-1, refused.
    badFrame(() => decodeFrame(Uint8Array.from([6, 6, 2, 0, 1, 0]), { sender: R1 }), /outside a session/);
    const far = new PageTableIn();
    far.lastUpTo = Number.MAX_SAFE_INTEGER;
    badFrame(() => decodeFrame(Uint8Array.from([6, 6, 2, 0, 1, 0]), { sender: R1, pagesIn: far }), /2\^53-1/);
    badFrame(() => decodeFrame(Uint8Array.from([6, 6, 2, 0, 0, 0]), { sender: R1, pagesIn: new PageTableIn() }), /span 0/);
    // Origin 3 by hand: gap 2 past upTo 10, page 'p' literal, count 5, head 0: (12, 13], seq 13.
    const ten = new PageTableIn();
    ten.lastUpTo = 10;
    expect(decodeFrame(Uint8Array.from([6, 6, 3, 2, 0, 1, 0x70, 5, 0]), { sender: R1, pagesIn: ten })).toEqual({ type: 'delta', range: { replica: R1, after: 12, upTo: 13 }, slots: [{ page: 'p', count: 5, seq: 13 }] });
    expect(ten.lastUpTo).toBe(13);
    badFrame(() => decodeFrame(Uint8Array.from([6, 6, 3, 0, 0, 1, 0x70, 5, 0]), { sender: R1 }), /origin 3\) outside a session/);
    badFrame(() => decodeFrame(Uint8Array.from([6, 6, 4, 0, 1]), { sender: R1, pagesIn: new PageTableIn() }), /origin 4 is none of/);
  });

  it('a full table redefines its least recently used entry, and the receiver follows', () => {
    const out = new PageTableOut(2);
    const into = new PageTableIn();
    const send = (upTo: number, pages: string[]) => decodeFrame(encodeMessage(delta(upTo, pages), { pagesOut: out }), { pagesIn: into }) as Delta;
    send(1, ['a', 'b']); // a → 0, b → 1
    send(2, ['a']); // b is now the least recently used
    expect(send(3, ['c']).type).toBe('delta'); // c takes b's entry
    expect(send(4, ['a', 'c', 'b', 'a']).slots.map((s) => s.page)).toEqual(['a', 'c', 'b', 'a']);
    expect(out.size).toBe(2);
  });

  it('a frame that fails to encode (too big) is undone in the table: the receiver, which never got it, still agrees', () => {
    const out = new PageTableOut();
    const into = new PageTableIn();
    const early = ['keep-1', 'keep-2'];
    const send = (message: Delta) => decodeFrame(encodeMessage(message, { sender: R1, pagesOut: out }), { sender: R1, pagesIn: into });
    send(delta(1, early));
    // 4,096 distinct 255-byte names: over 1 MiB, refused after every one was put in the table
    // (each evicting another, the early pages among them), its range taken as the last origin-2
    // upTo and its last name as the last definition.
    const huge = Array.from({ length: MAX_FRAME_ENTRIES }, (_, i) => `${i}`.padEnd(255, '.'));
    expect(() => encodeMessage(delta(2, huge), { sender: R1, pagesOut: out })).toThrow(/at most/);
    const after = encodeMessage(delta(2, early), { sender: R1, pagesOut: out });
    expect(decodeFrame(after, { sender: R1, pagesIn: into })).toEqual(delta(2, early));
    // Still held: referred to, not named; the range follows the last one sent (gap 0).
    expect(Buffer.from(after).toString('latin1')).not.toContain('keep');
    expect([...after.subarray(2, 5)]).toEqual([2, 0, 1]); // origin 2, gap 0, span 1 (two slots: not origin 3)
    // A new page is defined against the last name sent ('keep-2'), not the failed frame's.
    expect(send(delta(3, ['keep-3']))).toEqual(delta(3, ['keep-3']));
  });

  it('refuses a reference to an entry never defined, past the table, or outside a session', () => {
    const into = new PageTableIn();
    const out = new PageTableOut();
    const defined = encodeMessage(delta(1, ['p']), { pagesOut: out });
    const used = encodeMessage(delta(2, ['p']), { pagesOut: out });
    // The use without the definition before it: entry 0 is empty on a fresh receiver.
    badFrame(() => decodeFrame(used, { pagesIn: into }), /entry 0, which this session never defined/);
    badFrame(() => decodeFrame(defined), /outside a session/);
    expect(decodeFrame(defined, { pagesIn: into }).type).toBe('delta');
    expect(decodeFrame(used, { pagesIn: into })).toEqual(delta(2, ['p']));
    // The last entry can be defined and used; one past the definitions is refused.
    const at = (ref: number, name?: string) => {
      const head = [6, 6, 0, 1, 1, 1]; // version, delta, origin 0, upTo 1, span 1, one slot
      const refBytes: number[] = [];
      for (let v = ref; ; v = Math.floor(v / 128)) {
        if (v < 128) {
          refBytes.push(v);
          break;
        }
        refBytes.push((v % 128) | 128);
      }
      const nameBytes = name === undefined ? [] : [0, name.length, ...Buffer.from(name)];
      return Uint8Array.from([...head, ...refBytes, ...nameBytes, 1, 0, 0]);
    };
    expect(decodeFrame(at(2 * PAGE_TABLE_ENTRIES, 'last'), { sender: R1, pagesIn: into })).toMatchObject({ slots: [{ page: 'last' }] });
    expect(decodeFrame(at(PAGE_TABLE_ENTRIES), { sender: R1, pagesIn: into })).toMatchObject({ slots: [{ page: 'last' }] });
    badFrame(() => decodeFrame(at(2 * PAGE_TABLE_ENTRIES + 1, 'over'), { sender: R1, pagesIn: into }), /past the page table/);
    // A definition's name is checked like any page name.
    badFrame(() => decodeFrame(at(PAGE_TABLE_ENTRIES + 1, 'a\nb'), { sender: R1, pagesIn: into }), /control/);
  });

  it('refuses a delta that would not fit a frame with its names written out (as the broadcast tree relays it)', () => {
    // One 256-byte name defined, then referred to by 4,095 more slots: 16 KB on the wire, 1.06 MB written out.
    const name = Array.from({ length: 256 }, () => 0x61);
    const parts = [6, 6, 0, 1, 1, 0x80, 0x20, 0x81, 0x08, 0, 0x80, 0x02, ...name, 1, 0, 0];
    for (let i = 1; i < 4_096; i++) parts.push(1, 1, 0, 0);
    badFrame(() => decodeFrame(Uint8Array.from(parts), { sender: R1, pagesIn: new PageTableIn() }), /with its names written out/);
    // The same with 1,000 slots (as many as a node puts in one delta) fits, and reads back.
    const fits = [6, 6, 0, 1, 1, 0xe8, 0x07, 0x81, 0x08, 0, 0x80, 0x02, ...name, 1, 0, 0];
    for (let i = 1; i < 1_000; i++) fits.push(1, 1, 0, 0);
    const message = decodeFrame(Uint8Array.from(fits), { sender: R1, pagesIn: new PageTableIn() }) as Delta;
    expect(message.slots).toHaveLength(1_000);
    expect(decodeFrame(encodeMessage(message))).toEqual(message);
  });

  it('the bound is exact: a delta is refused exactly when its names written out pass the frame limit', () => {
    // Distinct 255-byte names sharing 250 bytes: ~10 B a slot in a session, 261 written out.
    const names = (n: number) => Array.from({ length: n }, (_, i) => 'x'.repeat(250) + String(i).padStart(5, '0'));
    let most = 3_900;
    while (true) {
      try {
        encodeMessage(delta(5, names(most + 1)));
        most += 1;
      } catch {
        break;
      }
    }
    for (const [n, fits] of [[most, true], [most + 1, false]] as const) {
      const bytes = encodeMessage(delta(5, names(n)), { sender: R1, pagesOut: new PageTableOut() });
      expect(bytes.byteLength).toBeLessThan(60_000);
      const read = () => decodeFrame(bytes, { sender: R1, pagesIn: new PageTableIn() });
      if (fits) expect(decodeFrame(encodeMessage(read()))).toEqual(delta(5, names(n)));
      else badFrame(read, /with its names written out/);
    }
  });

  it('refuses a slot head of 8 or more and an epoch 0 written out', () => {
    const frame = (...tail: number[]) => Uint8Array.from([6, 6, 0, 1, 1, 1, 0, 1, 0x70, 1, 0, ...tail]);
    expect(decodeFrame(frame(0), { sender: R1 })).toMatchObject({ slots: [{ page: 'p', count: 1, seq: 1 }] });
    expect(decodeFrame(frame(4, 2), { sender: R1 })).toMatchObject({ slots: [{ page: 'p', epoch: 2 }] });
    badFrame(() => decodeFrame(frame(4, 0), { sender: R1 }), /epoch 0 written out/);
    badFrame(() => decodeFrame(frame(8), { sender: R1 }), /kind and epoch 8/);
  });
});
