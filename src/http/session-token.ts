/**
 * Session tokens (`Counter-Session`): what a client has seen, signed by the cluster, so that any
 * node can answer it with at least that — read-your-writes and monotonic reads across nodes,
 * failovers and restores. The token carries, for the pages it touched, the per-replica slot values
 * the client saw: a G-Counter the node max-merges into its answer without waiting for anything.
 *
 * Binary (then base64url, no padding):
 *
 *   u8 version (1) | varuint pages | pages × (8-byte page hash | varuint epoch | varuint floor |
 *   varuint slots | slots × (16-byte replica id | varuint count)) | 16-byte MAC
 *
 * - page hash: the first 8 bytes of SHA-256 of the page name (UTF-8): names are up to 256 bytes,
 *   the token at most 512 characters. A client chooses page names, so it can search offline for
 *   two that collide (about 2^32 hashes); the collision only lets it be answered, for one page,
 *   with what its own token saw of the other: no node state and no other client's answer changes.
 * - epoch: the page's reset epoch (src/crdt/reset.ts) the slots and the floor count in. A reset
 *   ends them: a node whose page is at a higher epoch ignores them; a node that has not seen the
 *   reset yet (its page at a lower epoch) answers them, the new epoch's values, as they are.
 * - floor: the count the client was shown for the page. The answer is at least the floor even
 *   when slots had to be dropped to keep the size bound.
 * - MAC: HMAC-SHA256 over everything before it, truncated to 16 bytes, with a key every node of
 *   the cluster derives from CLUSTER_SECRET by HKDF (`sessionKey`); a foreign or edited token
 *   fails it.
 *
 * Size rule (`MAX_SESSION_TOKEN_CHARS`): the pages of the latest answer come first, then the
 * earlier ones, most recent first; pages that no longer fit are dropped (their guarantee with
 * them). Within a page that alone does not fit, the smallest slots are dropped and the floor
 * keeps the total from going down.
 *
 * Over 300 lines: the token's format, its merge rules and its encoder and decoder stay together so
 * that the layout above is read and written in one file (as the codec pairs each message's write
 * and read).
 */
import { hash, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { epochOf, type SlotValue } from '../crdt/g-counter.js';
import { AppError } from '../errors.js';
import { HmacSha256 } from '../hmac-sha256.js';
import { REPLICA_ID_BYTES, replicaIdFromBytes, type ReplicaId } from '../ids.js';

export const SESSION_HEADER = 'Counter-Session';
export const MAX_SESSION_TOKEN_CHARS = 512;
/** Raw bytes that fit in MAX_SESSION_TOKEN_CHARS of base64url. */
const MAX_TOKEN_BYTES = Math.floor((MAX_SESSION_TOKEN_CHARS * 3) / 4);
const TOKEN_VERSION = 1;
const MAC_BYTES = 16;
const PAGE_HASH_BYTES = 8;
/** What the pages of a token may take: the token less its version, page count (≤ 2 bytes) and MAC. */
const PAGES_BUDGET_BYTES = MAX_TOKEN_BYTES - MAC_BYTES - 1 - 2;
/**
 * More pages than a token can ever hold: each takes at least its hash and three one-byte varuints.
 * An answer for many pages (a batch) remembers only its first this many: `sign` would drop the
 * rest anyway, so the token is the same, without reading slots for pages it cannot carry.
 */
export const MAX_TOKEN_PAGES = Math.floor(PAGES_BUDGET_BYTES / (PAGE_HASH_BYTES + 3)) + 1;
const KEY_BYTES = 32;
const HKDF_SALT = 'distributed-sqlite/counter-session/v1';
const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** What a session saw of one page. */
export interface SessionPage {
  /** Hex of the page hash (`pageHash`). */
  readonly hash: string;
  /** The page's reset epoch the floor and the slots count in. */
  readonly epoch: number;
  readonly floor: number;
  readonly slots: ReadonlyMap<ReplicaId, number>;
}

/** Pages, most recent first. */
export interface Session {
  readonly pages: readonly SessionPage[];
}

export const EMPTY_SESSION: Session = { pages: [] };

/** The token key: from CLUSTER_SECRET by HKDF (all nodes agree), or random for a lone node without one. */
export function sessionKey(secret: string, cluster: string): Buffer {
  if (secret === '') return randomBytes(KEY_BYTES);
  return Buffer.from(hkdfSync('sha256', secret, HKDF_SALT, cluster, KEY_BYTES));
}

/**
 * Page hashes remembered (every answer hashes its page into the token: a SHA-256 of ~2 µs).
 * Names are client-chosen, up to 256 bytes, and copied out of the request line (routes.ts
 * decodePageName): at most ~1.5 MB held; past the bound the whole
 * cache is dropped, so a flood of new names costs a hash each, as before, and no more memory.
 */
export const PAGE_HASH_CACHE_ENTRIES = 4_096;
const pageHashes = new Map<string, string>();

export function pageHash(page: string): string {
  let held = pageHashes.get(page);
  if (held === undefined) {
    // One-shot hash (no Hash object per answer); the first PAGE_HASH_BYTES bytes are the first hex digits.
    held = hash('sha256', page, 'hex').slice(0, PAGE_HASH_BYTES * 2);
    if (pageHashes.size >= PAGE_HASH_CACHE_ENTRIES) pageHashes.clear();
    pageHashes.set(page, held);
  }
  return held;
}

/**
 * The answer for a page: its slots (all of the page's current epoch, as a store holds them)
 * max-merged with what the session saw, never below the floor. By epoch: the session's values of
 * an older epoch are ignored (a reset ended them); of a newer one (this node has not seen that
 * reset yet) they are the answer, since this node's slots are the ones the reset ended; of the
 * same epoch they max-merge. Without the page in the session: exactly the sum of `slots`.
 */
export function mergeSeen(
  page: string,
  slots: Iterable<{ readonly replica: ReplicaId; readonly count: number } & Pick<SlotValue, 'epoch'>>,
  session: Session,
): { count: number; epoch: number; replicas: Map<ReplicaId, number> } {
  let replicas = new Map<ReplicaId, number>();
  let epoch = 0;
  for (const slot of slots) {
    replicas.set(slot.replica, slot.count);
    epoch = epochOf(slot);
  }
  // Most answers carry no token: no page hash to compute then.
  const seen = session.pages.length === 0 ? undefined : findPage(session, pageHash(page));
  let floor = 0;
  if (seen !== undefined && seen.epoch >= epoch) {
    if (seen.epoch > epoch) {
      replicas = new Map();
      epoch = seen.epoch;
    }
    floor = seen.floor;
    for (const [replica, count] of seen.slots) if (count > (replicas.get(replica) ?? 0)) replicas.set(replica, count);
  }
  let sum = 0;
  for (const count of replicas.values()) sum += count;
  // Slots of different replicas can add up past 2^53 - 1 (writers' large `by` on two nodes): the
  // answer stays a safe integer, so the token signed from it is one every node accepts.
  return { count: Math.min(Math.max(sum, floor), Number.MAX_SAFE_INTEGER), epoch, replicas };
}

/**
 * True when the session saw `page` at a newer reset epoch than `slots()` (this node's, of the page's
 * current epoch) are in: this node has not received that reset yet. The slots are read only for a
 * page the session holds.
 */
export function resetAhead(page: string, slots: () => Iterable<Pick<SlotValue, 'epoch'>>, session: Session): boolean {
  if (session.pages.length === 0) return false;
  const seen = findPage(session, pageHash(page));
  if (seen === undefined) return false;
  let epoch = 0;
  for (const slot of slots()) {
    epoch = epochOf(slot);
    break;
  }
  return seen.epoch > epoch;
}

/** The page hashes a session holds, for answering many pages (a listing) without hashing into every one. */
export function sessionPageHashes(session: Session): ReadonlySet<string> {
  return new Set(session.pages.map((page) => page.hash));
}

function findPage(session: Session, hash: string): SessionPage | undefined {
  for (const page of session.pages) if (page.hash === hash) return page;
  return undefined;
}

/**
 * The session after answers for `pages` (what was shown, in the epoch it was shown in): those
 * first, then the earlier ones (an absent epoch is 0). What the session saw of an older epoch is
 * forgotten.
 */
export function remember(
  session: Session,
  pages: ReadonlyArray<{ page: string; count: number; epoch?: number; replicas: ReadonlyMap<ReplicaId, number> }>,
): Session {
  const out: SessionPage[] = [];
  const seen = new Set<string>();
  for (const { page, count, epoch = 0, replicas } of pages) {
    const hash = pageHash(page);
    if (seen.has(hash)) continue;
    seen.add(hash);
    const found = findPage(session, hash);
    // An answer never has an older epoch than the session's (mergeSeen); should one, keep the newer.
    if (found !== undefined && found.epoch > epoch) {
      out.push(found);
      continue;
    }
    const before = found !== undefined && found.epoch === epoch ? found : undefined;
    const slots = new Map(replicas);
    if (before !== undefined) for (const [replica, value] of before.slots) if (value > (slots.get(replica) ?? 0)) slots.set(replica, value);
    out.push({ hash, epoch, floor: Math.max(count, before?.floor ?? 0), slots });
  }
  for (const page of session.pages) if (!seen.has(page.hash)) out.push(page);
  return { pages: out };
}

/** Signs and encodes sessions; verifies and decodes tokens. */
export class SessionTokens {
  /** Pads computed once (hmac-sha256.ts): no HMAC object per answer. */
  private readonly hmac: HmacSha256;

  constructor(key: Buffer) {
    this.hmac = new HmacSha256(key);
  }

  /**
   * The token bytes of one `sign` (synchronous, so one buffer serves every call): written in
   * place, byte for byte what lib0's encoder wrote before (issue 19: two encoders, a copy and a
   * Buffer per replica id took ~10 µs of each answer's ~15).
   */
  private readonly scratch = Buffer.alloc(MAX_TOKEN_BYTES);

  /** The token for `session`, at most MAX_SESSION_TOKEN_CHARS (see the size rule above). */
  sign(session: Session): string {
    const out = this.scratch;
    out[0] = TOKEN_VERSION;
    // out[1] is the page count, a one-byte varuint: a page takes at least PAGE_HASH_BYTES + 3
    // bytes, so fewer than 128 fit in PAGES_BUDGET_BYTES.
    const pagesStart = 2;
    const pagesEnd = pagesStart + PAGES_BUDGET_BYTES;
    let at = pagesStart;
    let count = 0;
    for (const page of session.pages) {
      const left = pagesEnd - at;
      // Most pages surely fit (their largest encoding is within what is left): written at once.
      if (encodedPageBound(page) <= left) {
        at = writePageAt(out, at, page, positiveSlots(page));
        count++;
        continue;
      }
      // A page that does not fit ends the token: later pages are older (the size rule).
      const part = encodePage(page, left);
      if (part === undefined) break;
      out.set(part, at);
      at += part.byteLength;
      count++;
    }
    if (count > 0x7f) throw new Error(`a token cannot hold ${count} pages`);
    out[1] = count;
    this.mac(out.subarray(0, at)).copy(out, at);
    return out.toString('base64url', 0, at + MAC_BYTES);
  }

  /** The session a token carries; a malformed, edited or foreign token is a 400 `bad_session`. */
  verify(token: string): Session {
    const bad = (why: string): AppError => new AppError('bad_session', `the Counter-Session header ${why}; send back a token a node gave you, or none`);
    if (token.length > MAX_SESSION_TOKEN_CHARS) throw bad(`is longer than ${MAX_SESSION_TOKEN_CHARS} characters`);
    if (!BASE64URL.test(token)) throw bad('is not base64url');
    const raw = Buffer.from(token, 'base64url');
    // One token per session: Node's decoder ignores a trailing partial character, so "token"
    // and "tokenA" would both verify. Only the canonical encoding of the bytes is accepted.
    if (raw.toString('base64url') !== token) throw bad('is not canonical base64url');
    if (raw.byteLength < 1 + 1 + MAC_BYTES) throw bad('is too short');
    const body = raw.subarray(0, raw.byteLength - MAC_BYTES);
    const mac = raw.subarray(raw.byteLength - MAC_BYTES);
    if (!timingSafeEqual(mac, this.mac(body))) throw bad('does not verify (edited, or from another cluster)');
    try {
      return decodeSession(body);
    } catch (error) {
      throw bad(error instanceof Error ? `is malformed: ${error.message}` : 'is malformed');
    }
  }

  private mac(body: Uint8Array): Buffer {
    return this.hmac.digest(body).subarray(0, MAC_BYTES);
  }
}

/** Bytes of a varuint of `n` at most (lib0 writes 7 bits a byte; counts are below 2^53). */
const MAX_VARUINT_BYTES = 8;

/** The most bytes `writePage` can take for `page`: a bound, no encoding. */
function encodedPageBound(page: SessionPage): number {
  return PAGE_HASH_BYTES + 3 * MAX_VARUINT_BYTES + page.slots.size * (REPLICA_ID_BYTES + MAX_VARUINT_BYTES);
}

/** The page's slots above zero, largest first (the order the size rule drops them in, from the end). */
function positiveSlots(page: SessionPage): Array<[ReplicaId, number]> {
  return [...page.slots].filter(([, count]) => count > 0).sort((a, b) => b[1] - a[1]);
}

/** lib0's varUint (7 bits a byte, low first) of a safe integer into `out` at `at`; returns the end. */
function writeVarUintAt(out: Buffer, at: number, value: number): number {
  let rest = value;
  while (rest > 0x7f) {
    out[at++] = 0x80 | rest % 0x80;
    rest = Math.floor(rest / 0x80);
  }
  out[at++] = rest;
  return at;
}

/** `writePage` with every slot, into `out` at `at` (the caller checked `encodedPageBound`); returns the end. */
function writePageAt(out: Buffer, at: number, page: SessionPage, slots: ReadonlyArray<readonly [ReplicaId, number]>): number {
  at += out.write(page.hash, at, PAGE_HASH_BYTES, 'hex');
  at = writeVarUintAt(out, at, page.epoch);
  at = writeVarUintAt(out, at, page.floor);
  at = writeVarUintAt(out, at, slots.length);
  for (const [replica, count] of slots) {
    at += out.write(replica, at, REPLICA_ID_BYTES, 'hex');
    at = writeVarUintAt(out, at, count);
  }
  return at;
}

/** One page's entry with its first `keep` slots (all by default). */
function writePage(encoder: encoding.Encoder, page: SessionPage, slots: ReadonlyArray<readonly [ReplicaId, number]>, keep = slots.length): void {
  encoding.writeUint8Array(encoder, Buffer.from(page.hash, 'hex'));
  encoding.writeVarUint(encoder, page.epoch);
  encoding.writeVarUint(encoder, page.floor);
  encoding.writeVarUint(encoder, keep);
  for (let i = 0; i < keep; i++) {
    const [replica, count] = slots[i] as readonly [ReplicaId, number];
    encoding.writeUint8Array(encoder, Buffer.from(replica, 'hex'));
    encoding.writeVarUint(encoder, count);
  }
}

/** One page's entry within `budget` bytes (smallest slots dropped to fit), or undefined when even the bare entry does not fit. */
function encodePage(page: SessionPage, budget: number): Uint8Array | undefined {
  const slots = positiveSlots(page);
  for (let keep = slots.length; keep >= 0; keep--) {
    const encoder = encoding.createEncoder();
    writePage(encoder, page, slots, keep);
    if (encoding.length(encoder) <= budget) return encoding.toUint8Array(encoder);
    if (keep === 0) return undefined;
    // Past the budget: drop the smallest slots quickly rather than one by one (at least one).
    const over = encoding.length(encoder) - budget;
    keep = Math.max(1, keep - Math.floor(over / (REPLICA_ID_BYTES + 9)));
  }
  return undefined;
}

/** `n` bytes, checked against the end (lib0 would read past it into a pooled buffer). */
function take(decoder: decoding.Decoder, n: number): Uint8Array {
  if (decoder.pos + n > decoder.arr.length) throw new Error('it ends early');
  return decoding.readUint8Array(decoder, n);
}

function readCount(decoder: decoding.Decoder): number {
  const value = decoding.readVarUint(decoder);
  if (!Number.isSafeInteger(value)) throw new Error('a count is not a safe integer');
  return value;
}

function decodeSession(body: Uint8Array): Session {
  const decoder = decoding.createDecoder(Uint8Array.from(body));
  const version = decoding.readUint8(decoder);
  if (version !== TOKEN_VERSION) throw new Error(`version ${version} is not ${TOKEN_VERSION}`);
  const count = decoding.readVarUint(decoder);
  const pages: SessionPage[] = [];
  const hashes = new Set<string>();
  for (let i = 0; i < count; i++) {
    const hash = Buffer.from(take(decoder, PAGE_HASH_BYTES)).toString('hex');
    if (hashes.has(hash)) throw new Error('a page is listed twice');
    hashes.add(hash);
    const epoch = readCount(decoder);
    const floor = readCount(decoder);
    const slotCount = decoding.readVarUint(decoder);
    const slots = new Map<ReplicaId, number>();
    for (let j = 0; j < slotCount; j++) {
      const replica = replicaIdFromBytes(take(decoder, REPLICA_ID_BYTES));
      if (replica === undefined || slots.has(replica)) throw new Error('a replica id is bad or listed twice');
      slots.set(replica, readCount(decoder));
    }
    pages.push({ hash, epoch, floor, slots });
  }
  if (decoding.hasContent(decoder)) throw new Error('bytes after the last page');
  return { pages };
}
