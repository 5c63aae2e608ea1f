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
  it('a stream of deltas reads back as sent through any table size, each frame never longer than its literal form', () => {
    const pool = ['/', '/a', '/blog/post-1', 'é/ü', 'x'.repeat(256), '/b', '/c', '/d'];
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.array(fc.constantFrom(...pool), { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 40 }),
        fc.boolean(),
        (capacity, frames, own) => {
          const out = new PageTableOut(capacity);
          const into = new PageTableIn();
          const sender = own ? R1 : undefined;
          frames.forEach((pages, i) => {
            const message = delta(i + 1, pages);
            const bytes = encodeMessage(message, { sender, pagesOut: out });
            expect(decodeFrame(bytes, { sender, pagesIn: into })).toEqual(message);
            expect(bytes.byteLength).toBeLessThanOrEqual(encodeMessage(message, { sender }).byteLength + pages.length);
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
    // Literal: reference 0, length, name. Defined: a 2-byte reference, length, name. Used: 1 byte.
    expect(first.byteLength).toBe(literal.byteLength + 1);
    expect(literal.byteLength - again.byteLength).toBe(1 + name.length);
    // The total, hour and day of one page in one frame: the name once.
    const three = encodeMessage({ type: 'delta', range: { replica: R1, after: 11, upTo: 12 }, slots: [{ page: 'fresh' as PageName, count: 1, seq: 12 }, { page: 'fresh' as PageName, count: 1, seq: 12, kind: 1, t: 490_000 }, { page: 'fresh' as PageName, count: 1, seq: 12, kind: 2, t: 20_000 }] }, { sender: R1, pagesOut: out });
    expect(Buffer.from(three).toString('latin1').split('fresh')).toHaveLength(2);
    expect(decodeFrame(three, { sender: R1, pagesIn: into })).toMatchObject({ slots: [{ page: 'fresh' }, { page: 'fresh', kind: 1 }, { page: 'fresh', kind: 2 }] });
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
    decodeFrame(encodeMessage(delta(1, early), { pagesOut: out }), { pagesIn: into });
    // 4,096 distinct 255-byte names: over 1 MiB, refused after every one was put in the table
    // (each evicting another, the early pages among them).
    const huge = Array.from({ length: MAX_FRAME_ENTRIES }, (_, i) => `${i}`.padEnd(255, '.'));
    expect(() => encodeMessage(delta(2, huge), { pagesOut: out })).toThrow(/at most/);
    const after = encodeMessage(delta(3, early), { pagesOut: out });
    expect(decodeFrame(after, { pagesIn: into })).toEqual(delta(3, early));
    // Still held: referred to, not named.
    expect(Buffer.from(after).toString('latin1')).not.toContain('keep');
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
      const head = [6, 6, 0, 1, 1, 1];
      const refBytes: number[] = [];
      for (let v = ref; ; v = Math.floor(v / 128)) {
        if (v < 128) {
          refBytes.push(v);
          break;
        }
        refBytes.push((v % 128) | 128);
      }
      const nameBytes = name === undefined ? [] : [name.length, ...Buffer.from(name)];
      return Uint8Array.from([...head, ...refBytes, ...nameBytes, 1, 0, 0]);
    };
    expect(decodeFrame(at(2 * PAGE_TABLE_ENTRIES, 'last'), { sender: R1, pagesIn: into })).toMatchObject({ slots: [{ page: 'last' }] });
    expect(decodeFrame(at(PAGE_TABLE_ENTRIES), { sender: R1, pagesIn: into })).toMatchObject({ slots: [{ page: 'last' }] });
    badFrame(() => decodeFrame(at(2 * PAGE_TABLE_ENTRIES + 1, 'over'), { sender: R1, pagesIn: into }), /past the page table/);
    // A definition's name is checked like any page name.
    badFrame(() => decodeFrame(at(PAGE_TABLE_ENTRIES + 1, 'a\nb'), { sender: R1, pagesIn: into }), /control/);
  });

  it('refuses a slot head of 8 or more and an epoch 0 written out', () => {
    const frame = (...tail: number[]) => Uint8Array.from([6, 6, 0, 1, 1, 1, 0, 1, 0x70, 1, 0, ...tail]);
    expect(decodeFrame(frame(0), { sender: R1 })).toMatchObject({ slots: [{ page: 'p', count: 1, seq: 1 }] });
    expect(decodeFrame(frame(4, 2), { sender: R1 })).toMatchObject({ slots: [{ page: 'p', epoch: 2 }] });
    badFrame(() => decodeFrame(frame(4, 0), { sender: R1 }), /epoch 0 written out/);
    badFrame(() => decodeFrame(frame(8), { sender: R1 }), /kind and epoch 8/);
  });
});
