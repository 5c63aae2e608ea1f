/**
 * The "disk" of the memory twin: what stands for the database file and, separately, the identity
 * file beside it. Both outlive a MemoryStore, so tests can crash and reopen a store, put back a
 * stale copy of the database, or lose the identity file.
 */
import { cloneState, emptyState, type GCounterState, type Slot } from '../crdt/g-counter.js';
import type { PageName } from '../ids.js';
import type { ReplicaId } from '../ids.js';
import { identityRecord, type IdentityFileContents, type IdentityRecord, type StoredIdentity } from './identity.js';

/** The schema version the memory twin models (the SQLite store's migrations count). */
export const MEMORY_SCHEMA_VERSION = 7;

/** page → series key (series.ts `seriesKey`) → series slot: the hour and day buckets and sketch registers. */
export type SeriesState = Map<PageName, Map<string, Slot>>;

/** What the database file holds. Mutated in place by commits, so it survives a crash. */
export interface MemoryDatabase {
  schemaVersion: number;
  state: GCounterState;
  series: SeriesState;
  /** Version vector (entries above 0 only). */
  vv: Map<ReplicaId, number>;
  /** Every replica id the database has seen (the SQLite store's interning table). */
  replicas: Set<ReplicaId>;
  identity: StoredIdentity | undefined;
}

/** A frozen copy of the database, to restore later as a stale copy. */
export interface MemoryDatabaseSnapshot {
  readonly database: MemoryDatabase;
}

function emptyDatabase(): MemoryDatabase {
  return { schemaVersion: 0, state: emptyState(), series: new Map(), vv: new Map(), replicas: new Set(), identity: undefined };
}

function cloneDatabase(database: MemoryDatabase): MemoryDatabase {
  return {
    schemaVersion: database.schemaVersion,
    state: cloneState(database.state),
    series: new Map([...database.series].map(([page, slots]) => [page, new Map(slots)])),
    vv: new Map(database.vv),
    replicas: new Set(database.replicas),
    identity: database.identity,
  };
}

/** The "disk" of one memory store: the database and the identity file, which outlive the store. */
export class MemoryDisk {
  database: MemoryDatabase = emptyDatabase();
  identityFile: IdentityFileContents = undefined;

  snapshotDatabase(): MemoryDatabaseSnapshot {
    return { database: cloneDatabase(this.database) };
  }

  /** Replaces the database with a stale copy; the identity file stays as it is. */
  restoreDatabase(snapshot: MemoryDatabaseSnapshot): void {
    this.database = cloneDatabase(snapshot.database);
  }

  deleteIdentityFile(): void {
    this.identityFile = undefined;
  }

  writeIdentityFile(identity: IdentityRecord): void {
    this.identityFile = identityRecord(identity);
  }
}
