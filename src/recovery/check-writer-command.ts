/**
 * `distributed-sqlite check-backup-writer`: run by run.sh before `litestream replicate` when this
 * data folder did not write the latest generation of its backup path itself (a new, restored or
 * empty database). Restores that generation into a scratch file and compares the writer it
 * records with this node (see backup-writer.ts). With `--restored`, DATABASE_PATH was restored
 * from that very generation at this start, so it is read instead (no second restore).
 *
 * Another writer is refused only while it is live: its latest generation ended less than
 * WRITER_STALE_SYNC_INTERVALS sync intervals ago (at least WRITER_STALE_MIN_MS). Older, it is
 * taken over; BACKUP_TAKEOVER=1 takes over a live-looking one (the operator knows it is gone).
 *
 * On every exit 0 the writer is recorded in DATABASE_PATH (created and migrated if missing)
 * before Litestream starts, so even the first snapshot of a new path names its writer: a second
 * node starting beside it is refused, not let through as "no writer recorded".
 *
 * Exit 0: no backup, no writer recorded (an older version), this node, or a stale or overridden
 * writer; 3: another live node writes there (the message says which, and what to change); 1: it
 * could not tell.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { describeWriter, readWriter, recordWriter, sameWriter, writerFromEnv, type BackupWriter } from './backup-writer.js';
import { defaultLitestreamBin, listGenerations, packageRoot, restoreBackup, type LitestreamSetup } from './litestream.js';
import type { CommandIo } from './recover-command.js';

export const EXIT_OTHER_WRITER = 3;
/** A writer whose latest generation ended this many sync intervals ago is not live any more. */
export const WRITER_STALE_SYNC_INTERVALS = 5;
/** …and at least this long ago (Litestream shows `end` in whole seconds; short test intervals). */
export const WRITER_STALE_MIN_MS = 60_000;
/** run.sh's default LITESTREAM_SYNC_INTERVAL. */
const DEFAULT_SYNC_INTERVAL_MS = 10_000;

const DURATION = /^(\d+)(ms|s|m|h)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** LITESTREAM_SYNC_INTERVAL (run.sh checks its shape) in milliseconds. */
export function syncIntervalMs(value: string | undefined): number {
  const match = DURATION.exec(value ?? '');
  if (match === null) return DEFAULT_SYNC_INTERVAL_MS;
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
}

/** How long after its latest generation's end a writer is taken for gone. */
export function staleAfterMs(syncMs: number): number {
  return Math.max(WRITER_STALE_SYNC_INTERVALS * syncMs, WRITER_STALE_MIN_MS);
}

export async function runCheckWriterCommand(args: readonly string[], io: CommandIo, now: () => number = Date.now): Promise<number> {
  const say = (text: string) => io.stderr(`distributed-sqlite check-backup-writer: ${text}\n`);
  const restoredHere = args.length === 1 && args[0] === '--restored';
  if (args.length > 0 && !restoredHere) {
    say(`takes no argument but --restored, got ${JSON.stringify(args.join(' '))}`);
    return 2;
  }
  const me = writerFromEnv(io.env);
  const replicaUrl = io.env.REPLICA_URL?.replace(/\/+$/, '');
  if (me === undefined || replicaUrl === undefined || replicaUrl === '') {
    say('needs NODE_ID, BACKUP_MACHINE, DATABASE_PATH and REPLICA_URL (run.sh sets them)');
    return 2;
  }
  const path = `${replicaUrl}/${me.nodeId}`;
  const root = packageRoot();
  const setup: LitestreamSetup = { bin: io.env.LITESTREAM_BIN ?? defaultLitestreamBin(root), config: io.env.LITESTREAM_CONFIG ?? join(root, 'litestream.yml'), env: io.env };
  // Named after the database: run.sh removes this database's leftovers (a SIGKILL skips `finally`).
  const scratch = mkdtempSync(join(dirname(me.databasePath), `.backup-writer-${basename(me.databasePath)}-`));
  try {
    const verdict = await check(setup, me, path, restoredHere ? me.databasePath : join(scratch, 'latest.db'), restoredHere, io.env.BACKUP_TAKEOVER === '1', now, say);
    if (verdict !== 0) return verdict;
    recordWriter(me.databasePath, me).close();
    return 0;
  } catch (error) {
    say(`could not read the backup at ${path}: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function check(
  setup: LitestreamSetup,
  me: BackupWriter,
  path: string,
  restored: string,
  restoredHere: boolean,
  takeover: boolean,
  now: () => number,
  say: (text: string) => void,
): Promise<number> {
  const found = restoredHere || (await restoreBackup(setup, { name: me.nodeId, output: restored }));
  if (!found) return 0;
  const recorded = readWriter(restored);
  if (recorded === undefined) {
    say(`the latest generation at ${path} records no writer (made by an older version): taking it over`);
    return 0;
  }
  if (sameWriter(recorded, me)) return 0;
  const other = `${describeWriter(recorded)} (since ${recorded.since})`;
  if (takeover) {
    say(`BACKUP_TAKEOVER=1: taking ${path} over from ${other}`);
    return 0;
  }
  const ends = (await listGenerations(setup, me.nodeId)).map((generation) => Date.parse(generation.end));
  const lastEnd = Math.max(...ends);
  const staleAfter = staleAfterMs(syncIntervalMs(setup.env.LITESTREAM_SYNC_INTERVAL));
  const age = now() - lastEnd;
  if (ends.length > 0 && age > staleAfter) {
    say(`taking ${path} over from ${other}: its latest generation ended ${Math.round(age / 1000)}s ago (more than ${staleAfter / 1000}s), so that writer is not live`);
    return 0;
  }
  say(
    `refusing to replicate to ${path}: its latest generation was written by ${other}, ${ends.length > 0 ? `${Math.round(age / 1000)}s ago` : 'lately'}, ` +
      `and this is ${describeWriter(me)}. Two writers on one backup path make it unrestorable. Give this node a NODE_NAME of its own ` +
      `(off Fly.io the backup name is NODE_NAME, else the host name). If that node is gone for good, start this one with BACKUP_TAKEOVER=1 ` +
      `(or wait: a writer silent for ${staleAfter / 1000}s is taken over); its backup stays readable by \`run.sh recover\` either way.`,
  );
  return EXIT_OTHER_WRITER;
}
