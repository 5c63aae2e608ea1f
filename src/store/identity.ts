/**
 * Replica identity after possible data loss (docs/design.md, "Invariants"). A database that may
 * have gone back in time (restored from a backup, swapped for another copy, or missing its last
 * commits) must never count under its old id again: peers hold higher values for that id and
 * would swallow the new increments (max-merge), and its new seqs would look already seen.
 *
 * Detection: a small file beside the database, not backed up, and an epoch bumped at every start
 * in both. While the node runs the file is `{replicaId, epoch}`; a clean close() rewrites it as
 * `{replicaId, epoch, stoppedAtSeq}` once the last queued commit is in, the database still open.
 * At start the id is kept only if the file is there and readable, names the database's id, its
 * epoch is not ahead of the database's, AND it holds a clean-stop record whose `stoppedAtSeq`
 * equals the database's local seq (its version-vector entry for its own id). Anything else mints.
 *
 * Why the clean-stop record, not the epoch alone: the epoch only tells runs apart. A copy of the
 * database taken DURING the current run (same epoch, fewer commits) and swapped in while the node
 * is down would pass the epoch check, and the node would count again under an id peers already
 * hold higher values for. The seq tells that copy apart. And after an unclean stop nothing proves
 * the database holds every commit peers saw: under synchronous=NORMAL a power loss can drop the
 * last WAL commits (only a killed process is survived).
 *
 * Consequence, intended: a node restarted after a crash (kill -9, power loss, OOM) takes a new
 * replica id. It keeps every slot it has, the old id's included (those stay valid state and heal
 * from peers); the cost is one more replica id in the version vector and per page it touches
 * again, per crash. A clean stop followed by a power loss that drops WAL commits shows up as a
 * database behind `stoppedAtSeq`, and mints too.
 *
 * Order at start: commit the bumped epoch to the database FIRST, then write the file (running, no
 * stop record). A crash in between leaves the database's epoch ahead of the file and the previous
 * run's stop record in place, with no commit since (increments are taken only after the file is
 * written): harmless, the id is kept next time. The reverse order would leave the file ahead and
 * mint needlessly. Order at close: the last commit, then the stop record; a crash in between
 * leaves the running record, which mints (safe). A mid-run mint commits the database first, then
 * writes the new id as running.
 *
 * A full disk (issue 14): the file is written into a spare beside it that already holds a block
 * (`identitySparePath`, re-made after every write), so the stop record of a clean stop on a full
 * disk still lands and the next start keeps the id. A start whose database commit fails on a full
 * disk writes no file at all and serves reads until the commit goes through (see sqlite-store.ts),
 * so ENOSPC anywhere leaves either the previous state or the new one, and restarts mint nothing.
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { isReplicaId, type ReplicaId } from '../ids.js';

/** What the database or the identity file says about the identity. */
export interface StoredIdentity {
  readonly replicaId: ReplicaId;
  readonly epoch: number;
}

/** The database's side at start: its identity and its local seq (vv entry of its own id). */
export interface DatabaseIdentity extends StoredIdentity {
  readonly localSeq: number;
}

/** The identity file: `stoppedAtSeq` is there only after a clean stop (absent while running). */
export interface IdentityRecord extends StoredIdentity {
  readonly stoppedAtSeq?: number;
}

/** An identity file that exists but cannot be used (truncated, not JSON, wrong fields). */
export interface UnreadableIdentity {
  readonly unreadable: string;
}

export type IdentityFileContents = IdentityRecord | UnreadableIdentity | undefined;

/** What to do at start; `epoch` is the epoch to write to both the database and the file. */
export type IdentityDecision =
  | { readonly action: 'create'; readonly epoch: number }
  | { readonly action: 'keep'; readonly epoch: number }
  | { readonly action: 'mint'; readonly epoch: number; readonly reason: string };

/** Pure: decides the identity at start from the database's row and the identity file. */
export function decideIdentity(db: DatabaseIdentity | undefined, file: IdentityFileContents): IdentityDecision {
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
  if (file.stoppedAtSeq === undefined) {
    return { action: 'mint', epoch, reason: 'the node did not stop cleanly (no clean-stop record): its last commits may not be durable' };
  }
  if (file.stoppedAtSeq !== db.localSeq) {
    return {
      action: 'mint',
      epoch,
      reason: `database is at seq ${db.localSeq} but the node stopped at seq ${file.stoppedAtSeq}: the database is another copy (or lost its last commits)`,
    };
  }
  // Epochs equal, or the database ahead (a crash between the two writes at the last start).
  return { action: 'keep', epoch };
}

/** Where the identity file of a database lives: beside it, outside what Litestream backs up. */
export function identityFilePath(databasePath: string): string {
  return `${databasePath}-identity.json`;
}

/** Storage of the identity file: the real file, or the memory twin's. */
export interface IdentityFile {
  read(): IdentityFileContents;
  /** Replaces the file atomically: a running record, or with `stoppedAtSeq` at a clean stop. */
  write(identity: IdentityRecord): void;
}

/** The identity file at `path`, written atomically (temp file, fsync, rename, fsync the folder). */
export function diskIdentityFile(path: string): IdentityFile {
  return {
    read: () => readIdentityFile(path),
    write: (identity) => writeIdentityFile(path, identity),
  };
}

export function parseIdentity(text: string): IdentityRecord | UnreadableIdentity {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { unreadable: 'not JSON' };
  }
  if (typeof value !== 'object' || value === null) return { unreadable: 'not an object' };
  const { replicaId, epoch, stoppedAtSeq } = value as Record<string, unknown>;
  if (!isReplicaId(replicaId)) return { unreadable: 'replicaId is not 32 hex characters' };
  if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0) return { unreadable: 'epoch is not a non-negative integer' };
  if (stoppedAtSeq === undefined) return { replicaId, epoch };
  if (typeof stoppedAtSeq !== 'number' || !Number.isSafeInteger(stoppedAtSeq) || stoppedAtSeq < 0) {
    return { unreadable: 'stoppedAtSeq is not a non-negative integer' };
  }
  return { replicaId, epoch, stoppedAtSeq };
}

/** Exactly the record's fields (no stray properties, no `stoppedAtSeq: undefined`). */
export function identityRecord(identity: IdentityRecord): IdentityRecord {
  const { replicaId, epoch, stoppedAtSeq } = identity;
  return stoppedAtSeq === undefined ? { replicaId, epoch } : { replicaId, epoch, stoppedAtSeq };
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

/** The spare beside the identity file: written in place and renamed over it, then made again. */
export function identitySparePath(path: string): string {
  return `${path}.spare`;
}

/**
 * Bytes the spare holds: more than any record (about 100 bytes), so writing a record into it
 * overwrites blocks it already has and needs no free space.
 */
export const IDENTITY_SPARE_BYTES = 512;

export function writeIdentityFile(path: string, identity: IdentityRecord): void {
  const spare = identitySparePath(path);
  // In place into the spare when there is one (no new block needed), else a new file.
  const fd = openSync(spare, existsSync(spare) ? 'r+' : 'w');
  try {
    const text = `${JSON.stringify(identityRecord(identity))}\n`;
    writeSync(fd, text, 0);
    ftruncateSync(fd, Buffer.byteLength(text));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(spare, path);
  // Make the rename itself durable.
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
  makeSpare(spare);
}

/**
 * The next write's spare, taking the blocks the old file just gave back. Best effort: without
 * one, the next write makes a new file (which a full disk refuses; the caller copes with that).
 */
function makeSpare(spare: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(spare, 'w');
    writeSync(fd, Buffer.alloc(IDENTITY_SPARE_BYTES, 0x20));
    fsyncSync(fd);
  } catch {
    // ENOSPC and the like: no spare this time.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
