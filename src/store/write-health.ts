/**
 * Whether the store can write, and why not: the disk is full (SQLITE_FULL, ENOSPC), or the
 * database file at its path is no longer the one the store has open (deleted or replaced while
 * the node runs: every write would go to an unlinked file and be lost at the next start). Either
 * way reads go on from the open file and writes are refused with a 503 that names the reason.
 * A full disk heals by itself (a probe write, see `DISK_PROBE_INTERVAL_MS`); a replaced file
 * does not, short of a restart, unless the same file comes back at the path.
 */
import { statfsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { AppError } from '../errors.js';

/** How often a store whose writes are blocked tries again, and checks its file is still its own. */
export const WRITE_HEALTH_INTERVAL_MS = 1_000;
/** Free bytes the filesystem must report before a probe write is even tried after a full disk. */
export const DISK_HEADROOM_BYTES = 64 * 1024;

export interface WriteBlock {
  readonly code: 'disk_full' | 'database_gone';
  readonly reason: string;
}

/** A SQLite or file-system error that means "no room on the disk" (or over a quota). */
export function isDiskFull(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT') return true;
  const cause = (error as { cause?: unknown } | null)?.cause;
  return cause !== undefined && cause !== error && isDiskFull(cause);
}

export function diskFullBlock(path: string): WriteBlock {
  return { code: 'disk_full', reason: `the disk holding ${path} is full: increments are refused until space is freed (reads still work)` };
}

export function blockError(block: WriteBlock): AppError {
  return new AppError(block.code, block.reason);
}

/** The device and inode of the file at `path`, or undefined when there is none. */
export interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
}

export function fileIdentity(path: string): FileIdentity | undefined {
  try {
    const stats = statSync(path);
    return { dev: stats.dev, ino: stats.ino };
  } catch {
    return undefined;
  }
}

/** Why the file at `path` is not the one opened as `opened`, or undefined when it still is. */
export function databaseGoneBlock(path: string, opened: FileIdentity): WriteBlock | undefined {
  const now = fileIdentity(path);
  if (now !== undefined && now.dev === opened.dev && now.ino === opened.ino) return undefined;
  const what = now === undefined ? 'was deleted' : 'was replaced by another file';
  return {
    code: 'database_gone',
    reason: `the database file ${path} ${what} while the node runs: writes are refused (they would be lost), reads come from the file still open; restart the node to open what is at the path now`,
  };
}

/** Free bytes for an unprivileged writer on the filesystem of `path` (Infinity if unknown). */
export function freeBytes(path: string): number {
  try {
    const stats = statfsSync(dirname(path));
    return stats.bavail * stats.bsize;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}
