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
import { addToDigest, anyDigestKey, pageEpochDigestTerm, slotDigestTerm } from '../crdt/digest.js';
import type { PageName, ReplicaId } from '../ids.js';
import { BUSY_TIMEOUT_MS } from './migrate.js';

/** Slots (or reset pages) hashed per loop turn: ~3–5 µs each here, so a few ms per turn. */
export const RECOUNT_SLICE_ROWS = 1_000;

/** One kind of row the sum has a term for, and the term of a row. */
interface Phase {
  readonly sql: string;
  readonly term: (row: unknown[]) => bigint;
}

/**
 * The rows the digest sum has terms for, all read in the one snapshot: total slots, reset pages'
 * epochs, and series slots (day buckets and sketch registers; hour buckets have none).
 */
const PHASES: readonly Phase[] = [
  {
    sql: 'SELECT s.page, r.replica_id, s.count, s.epoch FROM slots s JOIN replicas r ON r.id = s.replica WHERE s.count > 0',
    term: (row) => slotDigestTerm(row[0] as PageName, row[1] as ReplicaId, row[2] as number, row[3] as number),
  },
  { sql: 'SELECT page, epoch FROM pages WHERE epoch > 0', term: (row) => pageEpochDigestTerm(row[0] as PageName, row[1] as number) },
  {
    sql: 'SELECT s.page, r.replica_id, s.count, s.epoch, s.kind, s.t FROM series_slots s JOIN replicas r ON r.id = s.replica WHERE s.kind <> 1',
    term: (row) => BigInt(row[2] as number) * anyDigestKey({ page: row[0] as PageName, replica: row[1] as ReplicaId, epoch: row[3] as number, kind: row[4] as 2 | 3, t: row[5] as number }),
  },
];

export class DigestRecount {
  private readonly db: Database.Database;
  /** The phase being read, by index into PHASES, and its rows; undefined once every phase is read. */
  private phase = 0;
  private rowsOfPhase: IterableIterator<unknown[]> | undefined;
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
      this.rowsOfPhase = this.iterate(0);
    } catch (error) {
      this.db.close();
      throw error;
    }
  }

  private iterate(phase: number): IterableIterator<unknown[]> | undefined {
    const spec = PHASES[phase];
    return spec === undefined ? undefined : this.db.prepare<[], unknown[]>(spec.sql).raw().iterate();
  }

  /** Rows (slots, reset pages and series slots) counted so far. */
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
    while (rows < maxRows && this.rowsOfPhase !== undefined) {
      const next = this.rowsOfPhase.next();
      if (next.done === true) {
        this.phase++;
        this.rowsOfPhase = this.iterate(this.phase);
        continue;
      }
      const spec = PHASES[this.phase];
      if (spec !== undefined) sum += spec.term(next.value);
      rows++;
    }
    this.sum = addToDigest(this.sum, sum);
    this.rowsSeen += rows;
    if (this.rowsOfPhase !== undefined) return false;
    this.finished = true;
    this.close();
    return true;
  }

  /** Ends the read transaction and closes the connection (idempotent). */
  close(): void {
    if (!this.db.open) return;
    this.rowsOfPhase?.return?.();
    this.rowsOfPhase = undefined;
    this.db.close();
  }
}
