/**
 * The digest sum recounted off the start path (issue 14). The store keeps its digest sum in the
 * database (migration 0003) but writes it a moment after each commit (DIGEST_STORE_DELAY_MS, issue
 * 19), so a kill -9 within that moment, or a Litestream restore of a backup taken then, opens with
 * the row NULL: the sum is unknown, and recounting it visits every slot (seconds at a million).
 *
 * Instead of scanning at open, the store serves at once and this recounts the sum in slices of
 * RECOUNT_SLICE_ROWS rows, one per loop turn, on a read-only connection of its own holding one
 * read transaction: in WAL mode that transaction sees the database as it was when its first read
 * ran (`pin()`, at open, before the store commits anything), whatever the store commits later.
 * The store meanwhile adds every commit's change to its running sum as usual (from 0), so at the
 * end the digest is snapshot sum + changes since, exactly what a scan at that moment would give.
 * While it runs, the WAL cannot be checkpointed past the snapshot (it grows by what is written in
 * those seconds) and the store's digest is not known (see SqliteStore.digest()).
 */
import Database from 'better-sqlite3';
import { addToDigest, pageEpochDigestTerm, slotDigestTerm } from '../crdt/g-counter.js';
import type { PageName, ReplicaId } from '../ids.js';
import { BUSY_TIMEOUT_MS } from './migrate.js';

/** Slots (or reset pages) hashed per loop turn: ~3–5 µs each here, so a few ms per turn. */
export const RECOUNT_SLICE_ROWS = 1_000;

export class DigestRecount {
  private readonly db: Database.Database;
  private slots: IterableIterator<[PageName, ReplicaId, number, number]> | undefined;
  private resets: IterableIterator<[PageName, number]> | undefined;
  private sum = 0n;
  private rowsSeen = 0;
  private finished = false;

  /** Opens its connection and pins the snapshot: call before the store commits anything. */
  constructor(path: string) {
    this.db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      this.db.exec('BEGIN');
      // The first read starts the read transaction: the snapshot every slice reads from.
      this.db.prepare('SELECT 1 FROM store_stats LIMIT 1').get();
      this.slots = this.db
        .prepare<[], [PageName, ReplicaId, number, number]>('SELECT s.page, r.replica_id, s.count, s.epoch FROM slots s JOIN replicas r ON r.id = s.replica WHERE s.count > 0')
        .raw()
        .iterate();
    } catch (error) {
      this.db.close();
      throw error;
    }
  }

  /** Rows (slots and reset pages) counted so far. */
  get rows(): number {
    return this.rowsSeen;
  }

  get done(): boolean {
    return this.finished;
  }

  /** The snapshot's digest sum; only once `done`. */
  get snapshotSum(): bigint {
    if (!this.finished) throw new Error('the digest recount has not finished');
    return addToDigest(0n, this.sum);
  }

  /** Counts up to `maxRows` more rows; true once every row is counted (the connection is then closed). */
  step(maxRows = RECOUNT_SLICE_ROWS): boolean {
    if (this.finished) return true;
    let sum = 0n;
    let rows = 0;
    while (rows < maxRows && this.slots !== undefined) {
      const next = this.slots.next();
      if (next.done === true) {
        this.slots = undefined;
        // Reset pages' epochs are terms too (read in the same snapshot).
        this.resets = this.db.prepare<[], [PageName, number]>('SELECT page, epoch FROM pages WHERE epoch > 0').raw().iterate();
        break;
      }
      const [page, replica, count, epoch] = next.value;
      sum += slotDigestTerm(page, replica, count, epoch);
      rows++;
    }
    while (rows < maxRows && this.resets !== undefined) {
      const next = this.resets.next();
      if (next.done === true) {
        this.resets = undefined;
        break;
      }
      sum += pageEpochDigestTerm(next.value[0], next.value[1]);
      rows++;
    }
    this.sum = addToDigest(this.sum, sum);
    this.rowsSeen += rows;
    if (this.slots !== undefined || this.resets !== undefined) return false;
    this.finished = true;
    this.close();
    return true;
  }

  /** Ends the read transaction and closes the connection (idempotent). */
  close(): void {
    if (!this.db.open) return;
    this.slots?.return?.();
    this.resets?.return?.();
    this.slots = undefined;
    this.resets = undefined;
    this.db.close();
  }
}
