/**
 * The backups under REPLICA_URL: one per node, at REPLICA_URL/NODE_ID (see litestream.yml).
 * A `file://` replica is listed by reading its folder; for the object stores Litestream offers
 * no listing, so their names are given (`recover --from a,b,c`).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** run.sh's rule for NODE_ID (and so for a backup's name). */
export const BACKUP_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Litestream 0.3 keeps every generation of a replica under this folder. */
const GENERATIONS_FOLDER = 'generations';

export class BackupListError extends Error {
  override readonly name = 'BackupListError';
}

/** The names given on the command line, checked: comma-separated, each a valid NODE_ID, no repeats. */
export function parseBackupNames(text: string): string[] {
  const names = text.split(',').map((name) => name.trim()).filter((name) => name !== '');
  if (names.length === 0) throw new BackupListError('--from needs at least one backup name (comma-separated NODE_IDs)');
  for (const name of names) {
    if (!BACKUP_NAME.test(name)) throw new BackupListError(`backup name ${JSON.stringify(name)} is not a NODE_ID (letters, digits, '.', '_' or '-')`);
  }
  const repeated = names.find((name, i) => names.indexOf(name) !== i);
  if (repeated !== undefined) throw new BackupListError(`backup ${repeated} is named twice in --from`);
  return names;
}

/** Every backup under a `file://` REPLICA_URL, in name order; other schemes need --from. */
export function listBackups(replicaUrl: string): string[] {
  if (!replicaUrl.startsWith('file://')) {
    throw new BackupListError(
      `cannot list the backups under ${replicaUrl} (Litestream lists one path, not a prefix): name them with --from NODE_ID,NODE_ID,… ` +
        '(the folder names under REPLICA_URL, e.g. from your store\'s console or `fly machines list` for machine ids)',
    );
  }
  let root: string;
  try {
    root = fileURLToPath(replicaUrl);
  } catch (error) {
    throw new BackupListError(`REPLICA_URL ${replicaUrl} is not a usable file URL: ${(error as Error).message}`);
  }
  if (!existsSync(root)) throw new BackupListError(`REPLICA_URL ${replicaUrl}: the folder ${root} does not exist`);
  return readdirSync(root, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && BACKUP_NAME.test(entry.name) && existsSync(join(root, entry.name, GENERATIONS_FOLDER)))
    .map((entry) => entry.name)
    .sort();
}
