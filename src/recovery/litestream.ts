/**
 * The Litestream binary as the recovery uses it: restore one node's backup (REPLICA_URL/NAME)
 * into a file of our choosing, with the same configuration file as run.sh (litestream.yml), so
 * the endpoint, region and credentials settings apply exactly as at a start.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Litestream's own names for its restore failures are in its stderr; keep a bounded tail. */
const MAX_STDERR_CHARS = 4000;
/** A restore of one backup (snapshot plus WAL since) that takes longer has stalled. */
export const RESTORE_TIMEOUT_MS = 10 * 60_000;

export interface LitestreamSetup {
  /** The litestream binary. */
  readonly bin: string;
  /** litestream.yml. */
  readonly config: string;
  /** The environment Litestream expands litestream.yml with (REPLICA_URL, DATABASE_PATH, …). */
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** The package folder (holding package.json), from `src/recovery/` or `dist/src/recovery/`. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  return dir;
}

/** The platform binary of @flydotio/litestream (not its npm wrapper, which would not pass signals). */
export function defaultLitestreamBin(root = packageRoot()): string {
  return join(root, 'node_modules', '@flydotio', `litestream-${process.platform}-${process.arch}`, 'litestream');
}

export interface RestoreRequest {
  /** The backup's name: the NODE_ID under REPLICA_URL. */
  readonly name: string;
  /** A new file to restore into. */
  readonly output: string;
  /** RFC 3339: restore the state as of then (Litestream's -timestamp). */
  readonly timestamp?: string;
}

/**
 * Restores the latest generation of REPLICA_URL/NAME (or its state at `timestamp`) into
 * `output`. Resolves `false` when there is no such backup; rejects with Litestream's message on
 * any other failure.
 */
export function restoreBackup(setup: LitestreamSetup, request: RestoreRequest): Promise<boolean> {
  const databasePath = setup.env.DATABASE_PATH;
  if (databasePath === undefined) return Promise.reject(new Error('DATABASE_PATH is not set: litestream.yml names the database by it'));
  const args = ['restore', '-config', setup.config, '-if-replica-exists', '-o', request.output];
  if (request.timestamp !== undefined) args.push('-timestamp', request.timestamp);
  args.push(databasePath);
  return new Promise((resolve, reject) => {
    execFile(
      setup.bin,
      args,
      { env: { ...setup.env, NODE_ID: request.name }, timeout: RESTORE_TIMEOUT_MS, maxBuffer: 1 << 20 },
      (error, _stdout, stderr) => {
        if (error !== null) {
          reject(new Error(`litestream restore of backup ${request.name} failed: ${String(stderr).slice(-MAX_STDERR_CHARS).trim() || error.message}`));
          return;
        }
        // -if-replica-exists: exit 0 and no file when there is no backup.
        resolve(existsSync(request.output));
      },
    );
  });
}
