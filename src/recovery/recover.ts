/**
 * Recovery of a whole cluster from the union of every node's backup (README, "Disaster recovery"): each backup
 * is restored into a scratch file and max-merged into one new database with the store's own
 * merge, so the result holds every view any backup held. The report says, per backup, how many
 * views it held and how many the union holds beyond it.
 *
 * The result carries no identity file: whoever opens it (a node seeded by RESTORE_FROM=all, or
 * an operator's copy on several machines) mints a replica id of its own, as after any restore.
 */
import { closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Log } from '../log.js';
import { openSqliteStore, type SqliteStore } from '../store/sqlite-store.js';
import { restoreBackup, restoreBackupAt, type LitestreamSetup } from './litestream.js';
import { mergeInto, stateSize, type StateSize } from './union.js';

export interface RecoveryOptions {
  readonly litestream: LitestreamSetup;
  /** REPLICA_URL, without a trailing slash: backup NAME lives at REPLICA_URL/NAME. */
  readonly replicaUrl: string;
  /** The backups to merge (NODE_IDs under REPLICA_URL). */
  readonly names: readonly string[];
  /** A new file to write the union to; without it only the report is made. */
  readonly output?: string;
  /** Restore every backup as of this time (RFC 3339) instead of its latest state. */
  readonly timestamp?: string;
  readonly log: Log;
}

export interface BackupReport {
  readonly name: string;
  readonly url: string;
  /** False when REPLICA_URL/NAME holds no backup (at `timestamp`, when given). */
  readonly found: boolean;
  readonly pages: number;
  readonly views: number;
  /** Views the union holds beyond this backup: what recovering from this one alone would lose. */
  readonly unionAdds: number;
}

export interface RecoveryReport {
  readonly backups: readonly BackupReport[];
  readonly union: StateSize;
  readonly output?: string;
}

export class RecoveryError extends Error {
  override readonly name: string = 'RecoveryError';
}

/** None of the backups asked for exists. */
export class NoBackupsError extends RecoveryError {
  override readonly name: string = 'NoBackupsError';
}

export async function recoverUnion(options: RecoveryOptions): Promise<RecoveryReport> {
  const { output, log } = options;
  if (output !== undefined) {
    for (const path of [output, `${output}-wal`, `${output}-shm`]) {
      if (existsSync(path)) throw new RecoveryError(`${path} exists: the union is written to a new file only (move it away first)`);
    }
    mkdirSync(dirname(output), { recursive: true });
  }
  // Scratch beside the output (same filesystem, so the result is renamed into place, and the
  // volume is where the room is), else in the system's temp folder.
  const scratch = mkdtempSync(join(output === undefined ? tmpdir() : dirname(output), `.recover-${output === undefined ? 'report' : basename(output)}-`));
  try {
    // Backup names start with a letter or digit (BACKUP_NAME), so `_union.db` is never `${name}.db`.
    const unionPath = join(scratch, '_union.db');
    const union = await openSqliteStore({ path: unionPath });
    const held: Array<Omit<BackupReport, 'unionAdds'>> = [];
    try {
      for (const name of options.names) {
        const url = `${options.replicaUrl}/${name}`;
        const restored = join(scratch, `${name}.db`);
        const found =
          options.timestamp === undefined
            ? await restoreBackup(options.litestream, { name, output: restored })
            : await restoreBackupAt(options.litestream, { name, output: restored, timestamp: options.timestamp });
        if (!found) {
          log.warn({ backup: name, url }, 'no backup there');
          held.push({ name, url, found: false, pages: 0, views: 0 });
          continue;
        }
        let source: SqliteStore | undefined;
        try {
          source = await openSqliteStore({ path: restored });
          const size = mergeInto(union, source);
          held.push({ name, url, found: true, ...size });
          log.info({ backup: name, url, ...size }, 'backup merged');
        } catch (error) {
          // A corrupt or forged backup: no union (it would carry the damage to every node).
          throw new RecoveryError(
            `backup ${name} at ${url} cannot be merged: ${error instanceof Error ? error.message : String(error)}. ` +
              'Nothing was written; leave that backup out with --from (RESTORE_FROM=NAME,NAME,…) and name the others.',
            { cause: error },
          );
        } finally {
          await source?.close();
          // One restored backup on disk at a time.
          rmSync(restored, { force: true });
          rmSync(`${restored}-identity.json`, { force: true });
        }
      }
      if (!held.some((backup) => backup.found)) throw new NoBackupsError(`none of the backups ${options.names.join(', ')} under ${options.replicaUrl} could be found`);
      const size = stateSize(union);
      const backups = held.map((backup) => ({ ...backup, unionAdds: backup.found ? size.views - backup.views : size.views }));
      await union.close();
      if (output !== undefined) moveDatabase(unionPath, output);
      return output === undefined ? { backups, union: size } : { backups, union: size, output };
    } finally {
      await union.close();
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * Moves the closed union database to `output`. Closing the last connection checkpointed the WAL
 * into the file, so the file alone is the database; its identity file stays behind on purpose.
 */
function moveDatabase(from: string, output: string): void {
  if (existsSync(`${from}-wal`)) throw new RecoveryError(`the union's WAL was not checkpointed at close (${from}-wal): not moving a partial database`);
  const partial = `${output}.partial`;
  copyFileSync(from, partial);
  const fd = openSync(partial, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(partial, output);
}
