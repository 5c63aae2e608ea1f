/**
 * The SQLite file under the store: opening it with the pragmas the store depends on (WAL, the
 * durability level, the busy timeout, who checkpoints), migrated; reading those pragmas back;
 * and its size on disk.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Log } from '../log.js';
import { BUSY_TIMEOUT_MS, migrate } from './migrate.js';

export interface ConnectionOptions {
  readonly path: string;
  /** `normal` (default) survives a killed process; `full` also survives power loss. */
  readonly synchronous?: 'normal' | 'full';
  /** `external` when Litestream runs: SQLite then never checkpoints the WAL itself. */
  readonly checkpoints?: 'sqlite' | 'external';
  /** Where the migrations live (default: the package's `migrations/`). */
  readonly migrationsDirectory?: string;
}

export interface ConnectionPragmas {
  readonly journalMode: string;
  readonly synchronous: 'normal' | 'full' | 'other';
  readonly busyTimeoutMs: number;
  readonly walAutocheckpoint: number;
}

/** Opens (creating the folder and file if needed), sets the pragmas and migrates; closes again on failure. */
export function openConnection(options: ConnectionOptions, log: Log): Database.Database {
  mkdirSync(dirname(options.path), { recursive: true });
  const db = new Database(options.path);
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    const journalMode = db.pragma('journal_mode = WAL', { simple: true });
    // Some filesystems cannot do WAL; counting still works there, but Litestream cannot back it up.
    if (journalMode !== 'wal') log.warn({ path: options.path, journalMode }, 'the database is not in WAL mode');
    db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    // Litestream needs to be the only one checkpointing, or it can miss WAL frames.
    if (options.checkpoints === 'external') db.pragma('wal_autocheckpoint = 0');
    migrate(db, { directory: options.migrationsDirectory });
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

export function readPragmas(db: Database.Database): ConnectionPragmas {
  const level = db.pragma('synchronous', { simple: true }) as number;
  return {
    journalMode: String(db.pragma('journal_mode', { simple: true })),
    synchronous: level === 1 ? 'normal' : level === 2 ? 'full' : 'other',
    busyTimeoutMs: db.pragma('busy_timeout', { simple: true }) as number,
    walAutocheckpoint: db.pragma('wal_autocheckpoint', { simple: true }) as number,
  };
}

/** Bytes of the database file and its WAL. */
export function databaseBytes(path: string): number {
  let bytes = 0;
  for (const file of [path, `${path}-wal`]) {
    try {
      bytes += statSync(file).size;
    } catch {
      // No WAL file yet (or already checkpointed away).
    }
  }
  return bytes;
}
