/**
 * A session's page tables (protocol version 6, PROTOCOL.md §4b): a live `delta` names a page the
 * session has carried before by a small number instead of its name. Each direction of a session
 * has one table of PAGE_TABLE_ENTRIES entries; the sender chooses which entry a page goes in and
 * says so in the frame (a definition: the entry's number and the name), the receiver stores what
 * it is told and looks up what it is referred to. Both sides see the frames of a direction
 * exactly once and in order (the MAC chain of §3a ends the session otherwise), so the two tables
 * stay equal without any acknowledgement; a session's tables die with it.
 *
 * A page reference is one varUint:
 *   0                      the name follows and is not stored (frames encoded outside a session)
 *   1 … E                  entry ref − 1, defined earlier in this direction
 *   E + 1 … 2E             entry ref − E − 1 is (re)defined: the name follows, as varUint shared
 *                          (the bytes it shares with the previous definition's name in this
 *                          direction, all of them) · bytes (the rest)
 * with E = PAGE_TABLE_ENTRIES. The same state keeps the upTo of the direction's last origin-2
 * or -3 delta (sync.ts), whose successor says only how far past it its range starts. Pure: no I/O, no clock.
 */
import type { PageName } from '../ids.js';
import { bad } from './protocol-error.js';

/**
 * Entries of one direction's table. Bound: a receiver holds at most this many names of at most
 * 256 bytes each per session (≤ 256 KiB, ~40 KiB for names of 40 bytes); a sender the same plus
 * a Map entry each. 1,024 covers the pages a busy link carries at once (the benchmark's 1,000
 * load pages; a site's hot pages), and a page past it costs its name, as before version 6.
 */
export const PAGE_TABLE_ENTRIES = 1_024;
export const PAGE_REF_LITERAL = 0;

/** What the writer puts on the wire for one page. */
export interface PageRef {
  readonly ref: number;
  /** Whether the name follows the reference. */
  readonly named: boolean;
}

interface Change {
  readonly index: number;
  readonly page: string;
  /** The page the entry held before, when one was evicted. */
  readonly evicted: string | undefined;
}

/** Bytes two names share at their start (UTF-8; may end inside a character: the reader joins bytes). */
function sharedPrefix(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * The sending side: which entry holds which page, least recently used first (Map order), the
 * least recently used entry redefined when the table is full; the name of the last definition
 * (the next one is written as the bytes it shares with it and the rest) and the upTo of the last
 * origin-2 or -3 delta (the next one's `after` is written as the distance from it). A frame's changes
 * are held in a journal between `begin` and `commit`, so a frame that fails to encode (and is
 * never sent) is undone: the receiver never saw it.
 */
export class PageTableOut {
  private readonly entries = new Map<string, number>();
  private journal: Change[] | undefined;
  private lastName: Uint8Array = new Uint8Array(0);
  private saved: { readonly lastName: Uint8Array; readonly lastUpTo: number } | undefined;
  /** The upTo of the last origin-2 or -3 delta sent in this direction (0: none yet). */
  lastUpTo = 0;

  constructor(private readonly capacity = PAGE_TABLE_ENTRIES) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > PAGE_TABLE_ENTRIES) throw new RangeError(`page table capacity must be 1–${PAGE_TABLE_ENTRIES}`);
  }

  get size(): number {
    return this.entries.size;
  }

  begin(): void {
    this.journal = [];
    this.saved = { lastName: this.lastName, lastUpTo: this.lastUpTo };
  }

  commit(): void {
    this.journal = undefined;
    this.saved = undefined;
  }

  /** Undoes the definitions since `begin` (the order of use is only a preference: not restored). */
  rollback(): void {
    const journal = this.journal;
    const saved = this.saved;
    this.journal = undefined;
    this.saved = undefined;
    if (journal === undefined || saved === undefined) return;
    this.lastName = saved.lastName;
    this.lastUpTo = saved.lastUpTo;
    for (let i = journal.length - 1; i >= 0; i--) {
      const change = journal[i]!;
      this.entries.delete(change.page);
      if (change.evicted !== undefined) this.entries.set(change.evicted, change.index);
    }
  }

  /** The reference for `page` (already checked as a page name), the table updated to match. */
  ref(page: string): PageRef {
    const held = this.entries.get(page);
    if (held !== undefined) {
      this.entries.delete(page);
      this.entries.set(page, held);
      return { ref: 1 + held, named: false };
    }
    let index = this.entries.size;
    let evicted: string | undefined;
    if (index >= this.capacity) {
      const oldest = this.entries.entries().next().value!;
      evicted = oldest[0];
      index = oldest[1];
      this.entries.delete(evicted);
    }
    this.entries.set(page, index);
    this.journal?.push({ index, page, evicted });
    return { ref: PAGE_TABLE_ENTRIES + 1 + index, named: true };
  }

  /** A definition's name (UTF-8 `bytes`) as the bytes it shares with the previous one and the rest. */
  prefixed(bytes: Uint8Array): { readonly shared: number; readonly suffix: Uint8Array } {
    const shared = sharedPrefix(this.lastName, bytes);
    this.lastName = bytes;
    return { shared, suffix: bytes.subarray(shared) };
  }
}

/** The receiving side: the names it was told, by entry; the last definition's name; the last origin-2 or -3 upTo. */
export class PageTableIn {
  private readonly names: (PageName | undefined)[] = [];
  /** Each entry's name in UTF-8 bytes (what writing it out would cost). */
  private readonly lengths: number[] = [];
  private lastName: Uint8Array = new Uint8Array(0);
  /** The upTo of the last origin-2 or -3 delta received in this direction (0: none yet). */
  lastUpTo = 0;

  /** Whether `ref` (not 0) defines an entry, a name following; throws on a reference past the table. */
  static defines(ref: number): boolean {
    if (ref > 2 * PAGE_TABLE_ENTRIES) bad(`page reference ${ref} is past the page table (at most ${2 * PAGE_TABLE_ENTRIES})`);
    return ref > PAGE_TABLE_ENTRIES;
  }

  /** The page of a reference without a name: its entry must have been defined. */
  use(ref: number): PageName {
    const page = this.names[ref - 1];
    if (page === undefined) bad(`page reference ${ref} names entry ${ref - 1}, which this session never defined`);
    return page;
  }

  /** Entry ref − E − 1 is `page`, of `bytes` bytes. */
  define(ref: number, page: PageName, bytes: number): void {
    this.names[ref - PAGE_TABLE_ENTRIES - 1] = page;
    this.lengths[ref - PAGE_TABLE_ENTRIES - 1] = bytes;
  }

  /** The UTF-8 bytes of a defined entry's name (a reference `use` accepted). */
  bytesOf(ref: number): number {
    return this.lengths[ref - 1] ?? 0;
  }

  /**
   * A definition's name from the bytes it shares with the previous definition's and the rest, as
   * UTF-8 bytes (the caller decodes and checks them). One encoding only: `shared` must be all the
   * two names share (the rest may not begin with the previous name's next byte).
   */
  joined(shared: number, suffix: Uint8Array, maxBytes: number): Uint8Array {
    const last = this.lastName;
    if (shared > last.byteLength) bad(`page name shares ${shared} bytes with the previous definition of ${last.byteLength}`);
    if (shared + suffix.byteLength > maxBytes) bad(`page name is ${shared + suffix.byteLength} bytes; at most ${maxBytes} are allowed`);
    if (shared < last.byteLength && suffix.byteLength > 0 && suffix[0] === last[shared]) bad(`page name shares more than the ${shared} bytes it says with the previous definition`);
    const bytes = new Uint8Array(shared + suffix.byteLength);
    bytes.set(last.subarray(0, shared), 0);
    bytes.set(suffix, shared);
    this.lastName = bytes;
    return bytes;
  }
}
