/**
 * `distributed-sqlite recover [--output PATH] [--from A,B,…] [--timestamp T]`: the union of every
 * node's backup under REPLICA_URL (see recover.ts). Meant to be run through `run.sh recover`,
 * which sets up the environment as for a start (REPLICA_URL checked, endpoint and region,
 * LITESTREAM_BIN and LITESTREAM_CONFIG).
 *
 * Output: one JSON object per backup and one for the union on stdout (for scripts), the same in
 * words on stderr. Exit 0 when the union was made, 1 when it failed, 2 for a bad command line,
 * 3 when there is no backup at all (run.sh then starts the node empty).
 */
import { join } from 'node:path';
import type { Log } from '../log.js';
import { BackupListError, listBackups, parseBackupNames } from './backup-names.js';
import { defaultLitestreamBin, packageRoot } from './litestream.js';
import { NoBackupsError, recoverUnion, type RecoveryReport } from './recover.js';

export const RECOVER_USAGE = `usage: distributed-sqlite recover [--output PATH] [--from NAME,NAME,…] [--timestamp RFC3339]
  Restores every node's backup under REPLICA_URL (a file:// replica is listed; otherwise name them
  with --from), merges them (max per slot) and reports per backup how many views it held and what
  the union adds. --output writes the union to a new database file; --timestamp takes each backup
  as of that time. Environment: REPLICA_URL, DATABASE_PATH, LITESTREAM_BIN, LITESTREAM_CONFIG
  (run.sh recover sets them up as for a start).`;

export const EXIT_NO_BACKUPS = 3;

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

export interface CommandIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly log: Log;
}

interface RecoverArgs {
  output?: string;
  from?: string;
  timestamp?: string;
}

class UsageError extends Error {}

function parseArgs(args: readonly string[]): RecoverArgs {
  const parsed: RecoverArgs = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    if (flag !== '--output' && flag !== '--from' && flag !== '--timestamp') throw new UsageError(`unknown argument ${JSON.stringify(arg)}`);
    const value = eq === -1 ? args[++i] : arg.slice(eq + 1);
    if (value === undefined || value === '') throw new UsageError(`${flag} needs a value`);
    const key = flag.slice(2) as keyof RecoverArgs;
    if (parsed[key] !== undefined) throw new UsageError(`${flag} is given twice`);
    parsed[key] = value;
  }
  if (parsed.timestamp !== undefined && (!RFC3339.test(parsed.timestamp) || Number.isNaN(Date.parse(parsed.timestamp)))) {
    throw new UsageError(`--timestamp must be an RFC 3339 time such as 2026-01-31T12:00:00Z, got ${JSON.stringify(parsed.timestamp)}`);
  }
  return parsed;
}

export async function runRecoverCommand(args: readonly string[], io: CommandIo): Promise<number> {
  let parsed: RecoverArgs;
  let names: string[];
  const replicaUrl = io.env.REPLICA_URL?.replace(/\/+$/, '');
  try {
    parsed = parseArgs(args);
    if (replicaUrl === undefined || replicaUrl === '') throw new UsageError('REPLICA_URL is not set: it names where the backups are');
    names = parsed.from !== undefined ? parseBackupNames(parsed.from) : listBackups(replicaUrl);
    if (names.length === 0) {
      io.stderr(`distributed-sqlite recover: there are no backups under ${replicaUrl}\n`);
      return EXIT_NO_BACKUPS;
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`distributed-sqlite recover: ${error.message}\n\n${RECOVER_USAGE}\n`);
      return 2;
    }
    if (error instanceof BackupListError) {
      io.stderr(`distributed-sqlite recover: ${error.message}\n`);
      return 1;
    }
    throw error;
  }

  const root = packageRoot();
  const env = { ...io.env, DATABASE_PATH: io.env.DATABASE_PATH ?? join(root, 'data', 'counters.db') };
  let report: RecoveryReport;
  try {
    report = await recoverUnion({
      litestream: { bin: io.env.LITESTREAM_BIN ?? defaultLitestreamBin(root), config: io.env.LITESTREAM_CONFIG ?? join(root, 'litestream.yml'), env },
      replicaUrl,
      names,
      ...(parsed.output !== undefined ? { output: parsed.output } : {}),
      ...(parsed.timestamp !== undefined ? { timestamp: parsed.timestamp } : {}),
      log: io.log,
    });
  } catch (error) {
    io.stderr(`distributed-sqlite recover: ${error instanceof Error ? error.message : String(error)}\n`);
    return error instanceof NoBackupsError ? EXIT_NO_BACKUPS : 1;
  }
  writeReport(report, parsed.timestamp, io);
  return 0;
}

function writeReport(report: RecoveryReport, timestamp: string | undefined, io: CommandIo): void {
  const at = timestamp === undefined ? '' : ` as of ${timestamp}`;
  for (const backup of report.backups) {
    io.stdout(`${JSON.stringify({ backup: backup.name, url: backup.url, found: backup.found, pages: backup.pages, views: backup.views, unionAdds: backup.unionAdds })}\n`);
    io.stderr(
      backup.found
        ? `recover: backup ${backup.name}${at}: ${backup.views} views on ${backup.pages} pages; the union adds ${backup.unionAdds}\n`
        : `recover: backup ${backup.name}: none at ${backup.url}${at}\n`,
    );
  }
  const found = report.backups.filter((backup) => backup.found).length;
  io.stdout(`${JSON.stringify({ union: { backups: found, pages: report.union.pages, views: report.union.views }, output: report.output ?? null })}\n`);
  io.stderr(
    `recover: union of ${found} backup${found === 1 ? '' : 's'}${at}: ${report.union.views} views on ${report.union.pages} pages; ` +
      (report.output === undefined ? 'nothing written (no --output)\n' : `written to ${report.output}\n`),
  );
}
