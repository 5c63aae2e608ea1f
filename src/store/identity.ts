/**
 * Replica identity after possible data loss (DESIGN.md §1). A database that may have gone back in
 * time (restored from a backup, swapped for an older copy) must never count under its old id
 * again: peers hold higher values for that id and would swallow the new increments.
 *
 * Detection: an epoch bumped at every start, both in the database and in a small file beside it
 * that is not backed up. A missing file, a different id in the file, or a database epoch behind
 * the file's means the database is not the one that last ran here: mint a new id.
 *
 * Order at start: commit the bumped epoch to the database FIRST, then write the file. A crash in
 * between leaves the database ahead of the file, which is harmless (kept next time); the reverse
 * order would leave the file ahead and mint a new id needlessly.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { isReplicaId, type ReplicaId } from '../ids.js';

/** What the database or the identity file says about the identity. */
export interface StoredIdentity {
  readonly replicaId: ReplicaId;
  readonly epoch: number;
}

/** An identity file that exists but cannot be used (truncated, not JSON, wrong fields). */
export interface UnreadableIdentity {
  readonly unreadable: string;
}

export type IdentityFileContents = StoredIdentity | UnreadableIdentity | undefined;

/** What to do at start; `epoch` is the epoch to write to both the database and the file. */
export type IdentityDecision =
  | { readonly action: 'create'; readonly epoch: number }
  | { readonly action: 'keep'; readonly epoch: number }
  | { readonly action: 'mint'; readonly epoch: number; readonly reason: string };

/** Pure: decides the identity at start from the database's row and the identity file. */
export function decideIdentity(db: StoredIdentity | undefined, file: IdentityFileContents): IdentityDecision {
  if (db === undefined) return { action: 'create', epoch: (file !== undefined && 'epoch' in file ? file.epoch : 0) + 1 };
  if (file === undefined) return { action: 'mint', epoch: db.epoch + 1, reason: 'identity file missing' };
  if ('unreadable' in file) return { action: 'mint', epoch: db.epoch + 1, reason: `identity file unreadable: ${file.unreadable}` };
  const epoch = Math.max(db.epoch, file.epoch) + 1;
  if (file.replicaId !== db.replicaId) {
    return { action: 'mint', epoch, reason: `identity file holds replica ${file.replicaId}, the database ${db.replicaId}` };
  }
  if (db.epoch < file.epoch) {
    return { action: 'mint', epoch, reason: `database epoch ${db.epoch} is behind the identity file's ${file.epoch}: an older copy of the database` };
  }
  // Equal, or the database ahead (a crash between the two writes at the last start).
  return { action: 'keep', epoch };
}

/** Where the identity file of a database lives: beside it, outside what Litestream backs up. */
export function identityFilePath(databasePath: string): string {
  return `${databasePath}-identity.json`;
}

/** Storage of the identity file: the real file, or the memory twin's. */
export interface IdentityFile {
  read(): IdentityFileContents;
  write(identity: StoredIdentity): void;
}

/** The identity file at `path`, written atomically (temp file, fsync, rename, fsync the folder). */
export function diskIdentityFile(path: string): IdentityFile {
  return {
    read: () => readIdentityFile(path),
    write: (identity) => writeIdentityFile(path, identity),
  };
}

export function parseIdentity(text: string): StoredIdentity | UnreadableIdentity {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { unreadable: 'not JSON' };
  }
  if (typeof value !== 'object' || value === null) return { unreadable: 'not an object' };
  const { replicaId, epoch } = value as Record<string, unknown>;
  if (!isReplicaId(replicaId)) return { unreadable: 'replicaId is not 32 hex characters' };
  if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0) return { unreadable: 'epoch is not a non-negative integer' };
  return { replicaId, epoch };
}

export function readIdentityFile(path: string): IdentityFileContents {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return { unreadable: (error as Error).message };
  }
  return parseIdentity(text);
}

export function writeIdentityFile(path: string, identity: StoredIdentity): void {
  const temporary = `${path}.tmp`;
  const fd = openSync(temporary, 'w');
  try {
    writeSync(fd, `${JSON.stringify({ replicaId: identity.replicaId, epoch: identity.epoch })}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
  // Make the rename itself durable.
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
