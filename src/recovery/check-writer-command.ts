/**
 * `distributed-sqlite check-backup-writer`: run by run.sh before `litestream replicate` when this
 * data folder did not write the latest generation of its backup path itself (a new or restored
 * database). Restores that generation into a scratch file and compares the writer it records
 * with this node (see backup-writer.ts). With `--restored`, DATABASE_PATH was restored from
 * that very generation at this start, so it is read instead (no second restore). Exit 0: no
 * backup, no writer recorded, or this node; 3: another node writes there (the message says which,
 * and what to change); 1: it could not tell.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { describeWriter, readWriter, sameWriter, writerFromEnv } from './backup-writer.js';
import { defaultLitestreamBin, packageRoot, restoreBackup } from './litestream.js';
import type { CommandIo } from './recover-command.js';

export const EXIT_OTHER_WRITER = 3;

export async function runCheckWriterCommand(args: readonly string[], io: CommandIo): Promise<number> {
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
  // Named after the database: run.sh removes this database's leftovers (a SIGKILL skips `finally`).
  const scratch = mkdtempSync(join(dirname(me.databasePath), `.backup-writer-${basename(me.databasePath)}-`));
  try {
    const restored = restoredHere ? me.databasePath : join(scratch, 'latest.db');
    const found =
      restoredHere ||
      (await restoreBackup(
        { bin: io.env.LITESTREAM_BIN ?? defaultLitestreamBin(root), config: io.env.LITESTREAM_CONFIG ?? join(root, 'litestream.yml'), env: io.env },
        { name: me.nodeId, output: restored },
      ));
    if (!found) return 0;
    const recorded = readWriter(restored);
    if (recorded === undefined) {
      say(`the latest generation at ${path} records no writer (made by an older version): taking it over`);
      return 0;
    }
    if (sameWriter(recorded, me)) return 0;
    say(
      `refusing to replicate to ${path}: its latest generation was written by ${describeWriter(recorded)} (since ${recorded.since}), ` +
        `and this is ${describeWriter(me)}. Two writers on one backup path make it unrestorable. Give this node a NODE_NAME of its own ` +
        '(off Fly.io the backup name is NODE_NAME, else the host name); if that node is gone for good, its backup stays readable by `run.sh recover`.',
    );
    return EXIT_OTHER_WRITER;
  } catch (error) {
    say(`could not read the backup at ${path}: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
