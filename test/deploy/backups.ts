/**
 * An oracle for the recovery tests, independent of src/recovery: each backup restored with the
 * Litestream binary itself, read with plain SQL, and the union computed as the G-Counter defines
 * it (per page, the sum over replicas of the highest count any backup holds for that replica).
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { restoreBackup } from './run-sh.js';

export interface BackupContent {
  /** The backup's total views (sum of page totals). */
  readonly views: number;
  /** page → replica id → count. */
  readonly slots: ReadonlyMap<string, ReadonlyMap<string, number>>;
}

export function readCounters(path: string): BackupContent {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT s.page AS page, r.replica_id AS replica, s.count AS count FROM slots s JOIN replicas r ON r.id = s.replica').all() as Array<{
      page: string;
      replica: string;
      count: number;
    }>;
    const views = (db.prepare('SELECT coalesce(sum(total), 0) FROM pages').pluck().get() as number) ?? 0;
    const slots = new Map<string, Map<string, number>>();
    for (const { page, replica, count } of rows) {
      let page_ = slots.get(page);
      if (page_ === undefined) slots.set(page, (page_ = new Map()));
      page_.set(replica, count);
    }
    return { views, slots };
  } finally {
    db.close();
  }
}

/** Restores and reads the latest state of every named backup under `replicaRoot`. */
export async function readBackups(replicaRoot: string, names: readonly string[], scratchDir: string): Promise<Map<string, BackupContent>> {
  const contents = new Map<string, BackupContent>();
  for (const name of names) {
    const output = join(scratchDir, `oracle-${name}-${Date.now()}.db`);
    await restoreBackup(`file://${replicaRoot}/${name}`, output);
    contents.set(name, readCounters(output));
  }
  return contents;
}

/** page → views in the max-merge of `backups`. */
export function unionCounts(backups: Iterable<BackupContent>): Record<string, number> {
  const merged = new Map<string, Map<string, number>>();
  for (const backup of backups) {
    for (const [page, slots] of backup.slots) {
      let into = merged.get(page);
      if (into === undefined) merged.set(page, (into = new Map()));
      for (const [replica, count] of slots) into.set(replica, Math.max(into.get(replica) ?? 0, count));
    }
  }
  const counts: Record<string, number> = {};
  for (const [page, slots] of merged) counts[page] = [...slots.values()].reduce((a, b) => a + b, 0);
  return counts;
}
