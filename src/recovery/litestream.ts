/**
 * The Litestream binary as the recovery uses it: restore one node's backup (REPLICA_URL/NAME)
 * into a file of our choosing, with the same configuration file as run.sh (litestream.yml), so
 * the endpoint, region and credentials settings apply exactly as at a start.
 */
import { execFile } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
  /** Restore this generation (its latest state, or at `timestamp`). */
  readonly generation?: string;
}

/** One line of `litestream generations`: times in whole seconds (RFC 3339, UTC). */
export interface Generation {
  readonly generation: string;
  readonly start: string;
  readonly end: string;
}

const GENERATION_LINE = /^\S+\s+([0-9a-f]{16})\s+\S+\s+(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\s+(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\s*$/;

function run(setup: LitestreamSetup, args: readonly string[], env: Record<string, string | undefined>): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(setup.bin, args, { env, timeout: RESTORE_TIMEOUT_MS, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(String(stderr).slice(-MAX_STDERR_CHARS).trim() || error.message));
      else resolve(String(stdout));
    });
  });
}

/**
 * The generations of REPLICA_URL/NAME. Litestream's `generations` stats the database to show the
 * lag, so it is pointed at an empty placeholder file: the backup path does not depend on it.
 */
export async function listGenerations(setup: LitestreamSetup, name: string): Promise<Generation[]> {
  const dir = mkdtempSync(join(tmpdir(), 'litestream-generations-'));
  const placeholder = join(dir, 'placeholder.db');
  closeSync(openSync(placeholder, 'w'));
  try {
    const stdout = await run(setup, ['generations', '-config', setup.config, placeholder], { ...setup.env, DATABASE_PATH: placeholder, NODE_ID: name });
    const generations: Generation[] = [];
    for (const line of stdout.split('\n')) {
      const match = GENERATION_LINE.exec(line);
      if (match !== null) generations.push({ generation: match[1] as string, start: match[2] as string, end: match[3] as string });
    }
    return generations;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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
  if (request.generation !== undefined) args.push('-generation', request.generation);
  args.push(databasePath);
  return run(setup, args, { ...setup.env, NODE_ID: request.name }).then(
    // -if-replica-exists: exit 0 and no file when there is no backup.
    () => existsSync(request.output),
    (error: unknown) => Promise.reject(new Error(`litestream restore of backup ${request.name} failed: ${(error as Error).message}`)),
  );
}

/**
 * The state of REPLICA_URL/NAME as of `timestamp`. Litestream restores a time only from a
 * generation whose span contains it, so a node that wrote nothing after `timestamp` (idle, or
 * stopped) would look like no backup at all; its state then is its latest generation that ended
 * before `timestamp`, in full. False when no generation had started by then.
 */
export async function restoreBackupAt(setup: LitestreamSetup, request: RestoreRequest & { readonly timestamp: string }): Promise<boolean> {
  if (await restoreBackup(setup, request)) return true;
  const at = Date.parse(request.timestamp);
  // Whole seconds: a generation whose shown end is at or before `timestamp` but whose real end
  // was after it would have contained it, and Litestream would have restored it above.
  const before = (await listGenerations(setup, request.name)).filter((g) => Date.parse(g.start) <= at && Date.parse(g.end) <= at);
  if (before.length === 0) return false;
  const latest = before.reduce((a, b) => (Date.parse(b.end) > Date.parse(a.end) ? b : a));
  const { timestamp: _ignored, ...latestState } = request;
  return restoreBackup(setup, { ...latestState, generation: latest.generation });
}
