/**
 * One node process per database file. Two processes on one file would both count under one
 * replica id, their seqs interleaving, which peers cannot tell apart from a file gone back in time.
 *
 * A lock file beside the database (`<DATABASE_PATH>.lock`) holds the owner's pid, node name, start
 * time and, on Linux, the kernel's start time of that pid (so a recycled pid is not taken for the
 * owner). It is taken atomically: the record is written to a file of our own first and then
 * hard-linked to the lock's name, which fails if the lock exists, so a lock is never seen half
 * written. A lock whose owner is gone (kill -9, power loss) is stale and is replaced.
 *
 * Not SQLite's `locking_mode=EXCLUSIVE`: Litestream must keep reading the file and its WAL while
 * the node runs.
 */
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { AppError } from '../errors.js';

export interface LockOwner {
  readonly pid: number;
  readonly node: string;
  /** ISO 8601 time the owner took the lock. */
  readonly startedAt: string;
  /** The kernel's start time of `pid` (clock ticks since boot, /proc/<pid>/stat), when known. */
  readonly processStart?: string;
}

export interface DatabaseLock {
  readonly path: string;
  /**
   * True when the disk was full: the lock was taken with an empty record (an empty file needs no
   * data block), which the next starter takes for stale. Still exclusive against a start racing
   * this one (the link is atomic), not against one that comes later; a full disk must not stop a
   * node from starting to serve reads (a crash loop, see write-health.ts).
   */
  readonly withoutRecord: boolean;
  /** Removes the lock if it is still ours. Idempotent. */
  release(): void;
}

/** Attempts at replacing a stale lock before giving up (another process may be doing the same). */
const TAKE_ATTEMPTS = 3;

export function lockFilePath(databasePath: string): string {
  return `${databasePath}.lock`;
}

/** The kernel's start time of `pid`, or undefined where /proc is not there. */
function processStartOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) is in parentheses and may hold spaces: count fields after its closing one.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19]; // field 22 overall
  } catch {
    return undefined;
  }
}

function isAlive(owner: LockOwner): boolean {
  if (owner.pid === process.pid) return false; // ourselves in an earlier life (containers reuse pids)
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    // EPERM: the pid exists but belongs to someone else; a recycled pid, or our owner under another user.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (owner.processStart === undefined) return true;
  const now = processStartOf(owner.pid);
  return now === undefined || now === owner.processStart;
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockOwner>;
    if (typeof value.pid !== 'number' || !Number.isSafeInteger(value.pid) || value.pid <= 0) return undefined;
    return {
      pid: value.pid,
      node: typeof value.node === 'string' ? value.node.slice(0, 128) : '?',
      startedAt: typeof value.startedAt === 'string' ? value.startedAt.slice(0, 40) : '?',
      ...(typeof value.processStart === 'string' ? { processStart: value.processStart } : {}),
    };
  } catch {
    return undefined;
  }
}

function inUse(databasePath: string, owner: LockOwner): AppError {
  return new AppError(
    'database_in_use',
    `DATABASE_PATH ${databasePath} is in use by another node process: pid ${owner.pid} (node ${JSON.stringify(owner.node)}, started ${owner.startedAt}); ` +
      'stop that process first, or give this node its own DATABASE_PATH',
  );
}

function isNoSpace(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

function cannotWrite(databasePath: string, error: unknown): AppError {
  const code = (error as NodeJS.ErrnoException).code ?? 'error';
  return new AppError('start_failed', `cannot write beside DATABASE_PATH ${databasePath} (${code}): the directory must exist or be creatable, and be writable by this user`, {
    cause: error,
  });
}

/**
 * Takes the lock of `databasePath` for this process, or throws `database_in_use` naming the live
 * owner (`start_failed` when the directory cannot be written). The directory must exist.
 */
export function lockDatabase(databasePath: string, owner: { node: string; startedAt: string }): DatabaseLock {
  const path = lockFilePath(databasePath);
  const processStart = processStartOf(process.pid);
  const record: LockOwner = { pid: process.pid, node: owner.node, startedAt: owner.startedAt, ...(processStart !== undefined ? { processStart } : {}) };
  const text = `${JSON.stringify(record)}\n`;
  const mine = `${path}.${process.pid}.tmp`;
  let withoutRecord = false;
  try {
    writeFileSync(mine, text, { mode: 0o644 });
  } catch (error) {
    if (!isNoSpace(error)) throw cannotWrite(databasePath, error);
    try {
      writeFileSync(mine, '', { mode: 0o644 });
      withoutRecord = true;
    } catch (again) {
      throw cannotWrite(databasePath, again);
    }
  }
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        linkSync(mine, path);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw cannotWrite(databasePath, error);
      }
      let existing: string;
      try {
        existing = readFileSync(path, 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
        throw cannotWrite(databasePath, error);
      }
      const holder = parseOwner(existing);
      if (holder !== undefined && isAlive(holder)) throw inUse(databasePath, holder);
      if (attempt >= TAKE_ATTEMPTS) throw holder !== undefined ? inUse(databasePath, holder) : cannotWrite(databasePath, new Error('the lock file keeps changing'));
      // Stale: move it aside under a name of our own, and drop it only if it is the one judged
      // stale (another process may have replaced it meanwhile; then put theirs back).
      const aside = `${path}.${process.pid}.stale`;
      try {
        renameSync(path, aside);
      } catch {
        continue;
      }
      if (readFileSync(aside, 'utf8') === existing) unlinkSync(aside);
      else {
        try {
          linkSync(aside, path);
        } catch {
          // Someone else holds the lock now; the next attempt reads theirs.
        }
        unlinkSync(aside);
      }
    }
  } finally {
    try {
      unlinkSync(mine);
    } catch {
      // Already gone: nothing to clean up.
    }
  }
  let held = true;
  return {
    path,
    withoutRecord,
    release() {
      if (!held) return;
      held = false;
      try {
        if (readFileSync(path, 'utf8') === (withoutRecord ? '' : text)) unlinkSync(path);
      } catch {
        // Gone already (an operator removed it): nothing to release.
      }
    },
  };
}
