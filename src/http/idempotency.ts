/**
 * `Idempotency-Key` on `POST /api/views` (issue 14): a batch whose client gave up after its body
 * arrived (a client timeout, a cut connection) is still committed, and a client that retries it
 * would count it twice. With the same key and the same views, a retry to the same node gets the
 * first request's answer and counts nothing more; while the first is still committing it waits
 * for that commit. A first request that failed (nothing counted) leaves no entry: its retry
 * counts. The same key with other views is refused (422 `idempotency_key_reused`).
 *
 * Bounded: at most MAX_IDEMPOTENCY_KEYS keys and MAX_IDEMPOTENCY_BYTES of what they hold (the
 * key, a fingerprint of the views, 8 bytes a page count), the oldest used dropped first; kept
 * in memory, per node (a retry to another node, or after a restart, counts again).
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { AppError } from '../errors.js';
import { runSteps, type Steps } from '../steps.js';
import type { Increment, PageCount } from '../store/store.js';

export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';
/** A key is 1–this many visible ASCII characters (a UUID is 36). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 128;
/** Keys remembered at most. */
export const MAX_IDEMPOTENCY_KEYS = 10_000;
/** Bytes the remembered answers may hold (a maximal batch's ~80 KB: some 50 of them, or 10,000 small ones). */
export const MAX_IDEMPOTENCY_BYTES = 4 * 1024 * 1024;
/** Bytes an entry costs beside its counts: the key, the fingerprint, the map entry and the objects. */
const ENTRY_OVERHEAD_BYTES = 256;

const VISIBLE_ASCII = /^[\x21-\x7e]+$/;

interface Entry {
  readonly fingerprint: string;
  /** The page totals of the commit, in input order. */
  readonly counts: Promise<readonly number[]>;
  readonly bytes: number;
}

/** The request's key, undefined without one; AppError `bad_request` for a malformed one. */
export function idempotencyKey(req: IncomingMessage): string | undefined {
  const value = req.headers[IDEMPOTENCY_KEY_HEADER];
  if (value === undefined) return undefined;
  if (Array.isArray(value) || value.length === 0 || value.length > MAX_IDEMPOTENCY_KEY_LENGTH || !VISIBLE_ASCII.test(value)) {
    throw new AppError('bad_request', `Idempotency-Key must be one value of 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters (a UUID, say)`);
  }
  return value;
}

/** What identifies a batch's views (pages and amounts, in order). */
export function fingerprint(increments: readonly Increment[]): string {
  return runSteps(fingerprintSteps(increments));
}

/** Views hashed in one step of `fingerprintSteps`. */
const FINGERPRINT_VIEWS_PER_STEP = 256;

/** `fingerprint` in steps (src/steps.ts) of FINGERPRINT_VIEWS_PER_STEP views. */
export function* fingerprintSteps(increments: readonly Increment[]): Steps<string> {
  const hash = createHash('sha256');
  for (let i = 0; i < increments.length; i++) {
    const { page, by } = increments[i] as Increment;
    hash.update(`${by}\u0000${page}\u0000`);
    if ((i + 1) % FINGERPRINT_VIEWS_PER_STEP === 0) yield;
  }
  return hash.digest('base64url');
}

export class IdempotencyKeys {
  /** In order of last use (a hit moves its entry to the end). */
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(
    private readonly maxKeys = MAX_IDEMPOTENCY_KEYS,
    private readonly maxBytes = MAX_IDEMPOTENCY_BYTES,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * Counts `increments` with `count` once per key: a later call with the key and the same views
   * gets the first call's page totals (`replayed`) without counting; with other views it throws
   * `idempotency_key_reused`. A failed count forgets the key.
   */
  async run(
    key: string,
    increments: readonly Increment[],
    count: () => Promise<PageCount[]>,
    /** `fingerprint(increments)` when the caller computed it already (in steps). */
    print = fingerprint(increments),
  ): Promise<{ counts: PageCount[]; replayed: boolean }> {
    const held = this.entries.get(key);
    if (held !== undefined) {
      if (held.fingerprint !== print) throw new AppError('idempotency_key_reused', 'this Idempotency-Key was used for other views: use a new key for a new batch');
      this.entries.delete(key);
      this.entries.set(key, held);
      const totals = await held.counts;
      return { counts: increments.map(({ page }, i) => ({ page, count: totals[i] ?? 0 })), replayed: true };
    }
    const counting = count();
    const entry: Entry = { fingerprint: print, counts: counting.then((counts) => counts.map((c) => c.count)), bytes: ENTRY_OVERHEAD_BYTES + key.length + 8 * increments.length };
    // A failure counted nothing: the key goes, so a retry counts (also for whoever waits on it).
    entry.counts.catch(() => {
      if (this.entries.get(key) === entry) this.forget(key);
    });
    this.entries.set(key, entry);
    this.bytes += entry.bytes;
    this.evict();
    return { counts: await counting, replayed: false };
  }

  private evict(): void {
    while (this.entries.size > this.maxKeys || (this.bytes > this.maxBytes && this.entries.size > 1)) {
      const oldest = this.entries.keys().next().value as string;
      this.forget(oldest);
    }
  }

  private forget(key: string): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
    this.bytes -= entry.bytes;
  }
}
