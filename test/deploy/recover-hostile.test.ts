/**
 * `run.sh recover` against backups it must not trust, with real processes: a backup file is a
 * SQLite file anyone with write access to the store can forge, and restoring it gives no
 * guarantee about its values. Each forged file is shipped into a `file://` replica by the real
 * Litestream binary; the recovery must refuse it with a message naming the backup and write
 * nothing, so the damage never reaches a node.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { PageName } from '../../src/ids.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import { hermeticEnv } from '../helpers/spawn-node.js';
import { LITESTREAM_BIN, useRunSh } from './run-sh.js';

const execFileAsync = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname;

/** A node's database with `views` counted, then changed by `forge` with plain SQL (checks off). */
async function forgedDatabase(path: string, views: Record<string, number>, forge: (db: Database.Database) => void): Promise<void> {
  const store = await openSqliteStore({ path });
  await store.increment(Object.entries(views).map(([page, by]) => ({ page: page as PageName, by })));
  await store.close();
  const db = new Database(path);
  try {
    db.pragma('ignore_check_constraints = ON');
    forge(db);
  } finally {
    db.close();
  }
}

/** Ships `path` to REPLICA_URL/NAME with the real Litestream (replicate until a short command exits). */
async function ship(path: string, replicaRoot: string, name: string): Promise<void> {
  await execFileAsync(LITESTREAM_BIN, ['replicate', '-config', join(ROOT, 'litestream.yml'), '-exec', 'sleep 1'], {
    cwd: ROOT,
    env: hermeticEnv({ DATABASE_PATH: path, REPLICA_URL: `file://${replicaRoot}`, NODE_ID: name, LITESTREAM_SYNC_INTERVAL: '100ms' }),
  });
}

describe('recover refuses a forged or corrupt backup', () => {
  const { dirs, runs } = useRunSh();

  async function recoverWith(forge: (db: Database.Database) => void, honest: Record<string, number> = { home: 3 }) {
    const dir = await dirs.create('recover-hostile-');
    const replicaRoot = join(dir, 'replica');
    await forgedDatabase(join(dir, 'honest.db'), honest, () => {});
    await forgedDatabase(join(dir, 'forged.db'), { home: 2, about: 1 }, forge);
    await ship(join(dir, 'honest.db'), replicaRoot, 'a');
    await ship(join(dir, 'forged.db'), replicaRoot, 'b');
    const output = join(dir, 'union', 'counters.db');
    const result = await runs.runToExit({ REPLICA_URL: `file://${replicaRoot}`, DATABASE_PATH: join(dir, 'node', 'counters.db') }, ['recover', '--output', output]);
    return { ...result, outputPath: output };
  }

  it.each([
    ['slot counts raised under their totals', (db: Database.Database) => db.exec(`UPDATE slots SET count = ${Number.MAX_SAFE_INTEGER - 1}`), /totals \d but its slots sum to 9007199254740990: an inconsistent/],
    ['a negative count', (db: Database.Database) => db.exec('UPDATE slots SET count = -5'), /slot count -5 is not an integer/],
    ['a fractional seq', (db: Database.Database) => db.exec('UPDATE slots SET seq = 1.5'), /slot seq 1.5 is not an integer/],
    ['a page name with a control character', (db: Database.Database) => db.exec("UPDATE slots SET page = 'x' || char(10) WHERE page = 'about'; UPDATE pages SET page = 'x' || char(10) WHERE page = 'about'"), /control characters/],
    ['a replica id that is not one', (db: Database.Database) => db.exec("UPDATE replicas SET replica_id = upper(replica_id) WHERE seq > 0"), /not a replica id/],
    // Slots are read page by page: a slot whose page lost its row would be dropped silently.
    ['slots of a page with no total', (db: Database.Database) => db.exec("DELETE FROM pages WHERE page = 'about'"), /it holds 2 slots but its pages list 1: slots of pages with no total/],
    ['a page total that is not the sum of its slots', (db: Database.Database) => db.exec("UPDATE pages SET total = 7 WHERE page = 'about'"), /page "about" totals 7 but its slots sum to 1/],
    // A register of the day's visitor sketch beside each day bucket, at a rank no 64-bit hash gives (1–51).
    [
      'a register rank past 51',
      (db: Database.Database) => db.exec(`INSERT INTO series_slots (page, kind, t, replica, count, seq, epoch) SELECT page, 3, t * 16384 + 9, replica, 1000000000, seq, epoch FROM series_slots WHERE kind = 2`),
      /rank must be 1–51, got 1000000000/,
    ],
  ])('%s: exit 1, the backup named, nothing written', async (_what, forge, message) => {
    const result = await recoverWith(forge, { home: 3 });
    expect(result.code, result.output).toBe(1);
    expect(result.output).toMatch(message);
    expect(result.output).toContain('backup b at file://');
    expect(result.output).toContain('leave that backup out with --from');
    expect(existsSync(result.outputPath)).toBe(false);
  });

  it('a page whose slots pass 2^53-1 across backups: the union saturates its total as the nodes do', async () => {
    // Two writers' large `by` on two nodes: each backup is sound, their union passes MAX_TOTAL.
    // Nodes cap such a total at 2^53-1 (crdt/g-counter.ts MAX_TOTAL); refusing it here would make
    // a cluster holding that page unrecoverable.
    const dir = await dirs.create('recover-saturated-');
    const replicaRoot = join(dir, 'replica');
    await forgedDatabase(join(dir, 'one.db'), { home: Number.MAX_SAFE_INTEGER - 1, about: 1 }, () => {});
    await forgedDatabase(join(dir, 'two.db'), { home: 3 }, () => {});
    await ship(join(dir, 'one.db'), replicaRoot, 'a');
    await ship(join(dir, 'two.db'), replicaRoot, 'b');
    const output = join(dir, 'union', 'counters.db');
    const result = await runs.runToExit({ REPLICA_URL: `file://${replicaRoot}`, DATABASE_PATH: join(dir, 'node', 'counters.db') }, ['recover', '--output', output]);
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain(`recover: union of 2 backups: ${Number.MAX_SAFE_INTEGER} views on 2 pages`);
    const union = await openSqliteStore({ path: output });
    try {
      expect(union.count('home' as PageName)).toBe(Number.MAX_SAFE_INTEGER);
      expect(union.pageSlots('home' as PageName).map((slot) => slot.count).sort((x, y) => x - y)).toEqual([3, Number.MAX_SAFE_INTEGER - 1]);
      expect(union.count('about' as PageName)).toBe(1);
    } finally {
      await union.close();
    }
  });

  it('merges a backup whose name is the one the union is made under', async () => {
    const dir = await dirs.create('recover-names-');
    const replicaRoot = join(dir, 'replica');
    await forgedDatabase(join(dir, 'one.db'), { home: 3 }, () => {});
    await forgedDatabase(join(dir, 'two.db'), { home: 4 }, () => {});
    await ship(join(dir, 'one.db'), replicaRoot, 'a');
    await ship(join(dir, 'two.db'), replicaRoot, 'union');
    const output = join(dir, 'union', 'counters.db');
    const env = { REPLICA_URL: `file://${replicaRoot}`, DATABASE_PATH: join(dir, 'node', 'counters.db') };
    const listed = await runs.runToExit(env, ['recover', '--output', output]);
    expect(listed.code, listed.output).toBe(0);
    expect(listed.output).toContain('recover: backup union: 4 views on 1 pages; the union adds 3');
    expect(listed.output).toContain('recover: union of 2 backups: 7 views on 1 pages');
    // A name given that has no backup is reported as none, not taken for the union's own file.
    const named = await runs.runToExit(env, ['recover', '--from', 'a,union,ghost']);
    expect(named.code, named.output).toBe(0);
    expect(named.output).toContain('recover: backup ghost: none at');
    expect(named.output).toContain('recover: union of 2 backups: 7 views on 1 pages');
    const missing = await runs.runToExit({ ...env, REPLICA_URL: `file://${join(dir, 'other')}` }, ['recover', '--from', 'union']);
    expect(missing.code, missing.output).toBe(3);
  });
});
