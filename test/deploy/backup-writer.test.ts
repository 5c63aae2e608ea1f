/**
 * One writer per backup path, with real processes: two nodes on one host without NODE_NAMEs both
 * take the host name as their backup name; the second is refused before Litestream writes a
 * byte, with a message naming the other writer. The node that owns the path restarts through the
 * fast path (no node process for the check), and after losing its data folder takes its own
 * backup over (same name, machine and database path).
 */
import { existsSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../helpers/build.js';
import { TempDirs } from '../helpers/temp-dir.js';
import { RunShProcesses, TEST_SYNC_INTERVAL, countViews, groupGone, listFiles, pageCount, stopGracefully, waitForBackupToCatchUp } from './run-sh.js';

const EXIT_OTHER_WRITER = 3;
const CHECKING = 'run.sh: checking who wrote the latest generation';

describe('one writer per backup path', () => {
  const dirs = new TempDirs();
  const runs = new RunShProcesses();
  beforeAll(() => ensureBuilt());
  afterEach(async () => {
    await runs.killAll();
    await dirs.removeAll();
  });
  afterAll(() => runs.killAll());

  it('refuses a second node on the same backup path, and lets the owner restart and recover', async () => {
    const dir = await dirs.create('backup-writer-');
    const replicaRoot = join(dir, 'replica');
    // No NODE_NAME: both fall back to the host name, the mistake the check is for.
    const host = process.env.HOSTNAME ?? hostname();
    const env = (folder: string) => ({
      DATABASE_PATH: join(dir, folder, 'counters.db'),
      NODE_NAME: undefined,
      HOSTNAME: host,
      REPLICA_URL: `file://${replicaRoot}`,
      LITESTREAM_SYNC_INTERVAL: TEST_SYNC_INTERVAL,
    });
    const backup = `file://${replicaRoot}/${host}`;

    let first = await runs.start(env('first'));
    await countViews(first.url, { home: 7 });
    await waitForBackupToCatchUp(join(dir, 'first', 'counters.db'), backup, dir);
    const filesBefore = listFiles(replicaRoot);

    const second = await runs.runToExit(env('second'));
    expect(second.code, second.output).toBe(EXIT_OTHER_WRITER);
    expect(second.output).toContain(`refusing to replicate to ${backup}: its latest generation was written by node ${JSON.stringify(host)}`);
    expect(second.output).toContain(`for ${join(dir, 'first', 'counters.db')}`);
    expect(second.output).toContain('Give this node a NODE_NAME of its own');
    // It restored the other node's backup to look at it, and took it away again; nothing shipped.
    expect(existsSync(join(dir, 'second', 'counters.db'))).toBe(false);
    expect(second.output).not.toContain('replicating to');
    expect(listFiles(replicaRoot)).toEqual(filesBefore);

    // The owner: a restart takes the fast path (its folder wrote the latest generation).
    await countViews(first.url, { home: 1 });
    await stopGracefully(first);
    first = await runs.start(env('first'));
    expect(first.output()).not.toContain(CHECKING);
    expect(await pageCount(first.url, 'home')).toBe(8);

    // The owner loses its folder: it restores its own backup and is let through as the same writer.
    await waitForBackupToCatchUp(join(dir, 'first', 'counters.db'), backup, dir);
    first.killGroup();
    await first.exited;
    await groupGone(first.pid);
    rmSync(join(dir, 'first'), { recursive: true, force: true });
    first = await runs.start(env('first'));
    expect(first.output()).toContain(CHECKING);
    expect(await pageCount(first.url, 'home')).toBe(8);
    await stopGracefully(first);
  });
});
