/**
 * Schema migrations: numbered SQL files under `migrations/` (`0001_init.sql`, …), applied in one
 * transaction and tracked with `PRAGMA user_version`. A database whose version is newer than the
 * newest migration was written by newer code: it is refused rather than guessed at.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { AppError } from '../errors.js';

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export interface MigrateResult {
  /** The schema version before. */
  readonly from: number;
  /** The schema version after (the newest migration). */
  readonly to: number;
}

export interface MigrateOptions {
  /** The folder holding the numbered SQL files (default: `migrations/` of this package). */
  readonly directory?: string;
}

const MIGRATION_FILE = /^(\d+)_([A-Za-z0-9_-]+)\.sql$/;
const MIGRATIONS_FOLDER = 'migrations';
/** How long a statement waits for another connection's lock (Litestream's, a second process). */
export const BUSY_TIMEOUT_MS = 5000;

/**
 * The package's `migrations/` folder. Walks up from this module to the directory holding
 * package.json, so it works both from `src/store/` (TypeScript run by vitest) and from
 * `dist/src/store/` (compiled).
 */
export function migrationsDirectory(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, MIGRATIONS_FOLDER))) return join(dir, MIGRATIONS_FOLDER);
    const parent = dirname(dir);
    if (parent === dir) throw new AppError('internal', `no ${MIGRATIONS_FOLDER}/ folder found above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** The migrations in `directory`, in order; their numbers must run 1, 2, 3 … without a gap. */
export function loadMigrations(directory: string = migrationsDirectory()): Migration[] {
  const migrations: Migration[] = [];
  for (const file of readdirSync(directory)) {
    const match = MIGRATION_FILE.exec(file);
    if (match === null) continue;
    migrations.push({ version: Number(match[1]), name: match[2] ?? '', sql: readFileSync(join(directory, file), 'utf8') });
  }
  migrations.sort((a, b) => a.version - b.version);
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new AppError('internal', `migration ${migration.version}_${migration.name} is out of sequence: expected number ${index + 1}`);
    }
  });
  return migrations;
}

/**
 * Brings `db` to the newest schema in one transaction (all pending migrations or none).
 * Refuses a database newer than the code with AppError `database_too_new`.
 */
export function migrate(db: Database.Database, options: MigrateOptions = {}): MigrateResult {
  const migrations = loadMigrations(options.directory);
  const latest = migrations.length;
  // IMMEDIATE: take the write lock before reading user_version, so two processes migrating the
  // same file at once cannot both apply the same step.
  const run = db.transaction((): MigrateResult => {
    const from = db.pragma('user_version', { simple: true }) as number;
    if (from > latest) {
      throw new AppError(
        'database_too_new',
        `the database has schema version ${from}, newer than this code's newest migration ${latest}: run a newer version of distributed-sqlite`,
      );
    }
    for (const migration of migrations) {
      if (migration.version <= from) continue;
      db.exec(migration.sql);
      db.pragma(`user_version = ${migration.version}`);
    }
    return { from, to: latest };
  });
  return run.immediate();
}

/** `npm run migrate`: opens (creating if needed) the database file, migrates it, closes it. */
export function migrateFile(path: string, options: MigrateOptions = {}): MigrateResult {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    // WAL from the first write on, as the store (and Litestream) expect.
    db.pragma('journal_mode = WAL');
    return migrate(db, options);
  } finally {
    db.close();
  }
}
