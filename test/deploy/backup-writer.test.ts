/**
 * One writer per backup path, with real processes: two nodes on one host without NODE_NAMEs both
 * take the host name as their backup name; the second is refused before Litestream writes a
 * byte, with a message naming the other writer. The node that owns the path restarts through the
 * fast path (no node process for the check), and after losing its data folder takes its own
 * backup over (same name, machine and database path). With NODE_NAME set, the name is the
 * identity: a container recreated under a new host name takes its own backup back. Another writer
 * is refused only while live; BACKUP_TAKEOVER=1 overrides, and a silent one is taken over.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { useRunSh, TEST_SYNC_INTERVAL, countViews, groupGone, listFiles, pageCount, stopGracefully, waitForBackupToCatchUp } from './run-sh.js';

const EXIT_OTHER_WRITER = 3;
const CHECKING = 'run.sh: checking who wrote the latest generation';

describe('one writer per backup path', () => {
  const { dirs, runs } = useRunSh();

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
    // The first node keeps running and shipping (its digest row is written a moment after each
    // commit), so what must not change is the set of generations and everything outside them.
    const shipped = () => listFiles(replicaRoot).filter((file) => !/\/generations\/[0-9a-f]{16}\/wal\//.test(file));
    const generations = () => [...new Set(listFiles(replicaRoot).map((file) => /\/generations\/([0-9a-f]{16})\//.exec(file)?.[1]))];
    const filesBefore = shipped();
    const generationsBefore = generations();

    const second = await runs.runToExit(env('second'));
    expect(second.code, second.output).toBe(EXIT_OTHER_WRITER);
    expect(second.output).toContain(`refusing to replicate to ${backup}: its latest generation was written by node ${JSON.stringify(host)}`);
    expect(second.output).toContain(`for ${join(dir, 'first', 'counters.db')}`);
    expect(second.output).toContain('Give this node a NODE_NAME of its own');
    // It restored the other node's backup to look at it, and took it away again; nothing shipped.
    expect(existsSync(join(dir, 'second', 'counters.db'))).toBe(false);
    expect(second.output).not.toContain('replicating to');
    expect(generations()).toEqual(generationsBefore);
    expect(shipped()).toEqual(filesBefore);

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

  /** A `uname` on PATH that answers `uname -n` with $FAKE_HOST: the container's host name. */
  function fakeUname(dir: string): string {
    const bin = join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'uname'), '#!/bin/sh\nprintf "%s\\n" "$FAKE_HOST"\n');
    chmodSync(join(bin, 'uname'), 0o755);
    return `${bin}:${process.env.PATH ?? ''}`;
  }

  it('with NODE_NAME set, a node recreated under a new host name that lost its volume takes its own backup back', async () => {
    const dir = await dirs.create('backup-writer-rename-');
    const replicaRoot = join(dir, 'replica');
    const databasePath = join(dir, 'data', 'counters.db');
    const env = (host: string) => ({
      PATH: fakeUname(dir),
      FAKE_HOST: host,
      HOSTNAME: host,
      NODE_NAME: 'web',
      DATABASE_PATH: databasePath,
      REPLICA_URL: `file://${replicaRoot}`,
      LITESTREAM_SYNC_INTERVAL: TEST_SYNC_INTERVAL,
    });
    let run = await runs.start(env('container-1'));
    await countViews(run.url, { home: 5 });
    await waitForBackupToCatchUp(databasePath, `file://${replicaRoot}/web`, dir);
    run.killGroup();
    await run.exited;
    await groupGone(run.pid);
    rmSync(join(dir, 'data'), { recursive: true, force: true });

    // Recreated at once (the backup is seconds old, so its writer still looks live) under a new
    // host name: the same writer by its NODE_NAME, not refused with its restored file deleted.
    run = await runs.start(env('container-2'));
    expect(run.output()).toContain(CHECKING);
    expect(run.output()).not.toContain('refusing');
    expect(await pageCount(run.url, 'home')).toBe(5);
    await stopGracefully(run);
  });

  it('refuses a live writer of the same NODE_NAME; BACKUP_TAKEOVER=1 overrides; a silent one is taken over', async () => {
    const dir = await dirs.create('backup-writer-live-');
    const replicaRoot = join(dir, 'replica');
    const backup = `file://${replicaRoot}/web`;
    const env = (folder: string, extra: Record<string, string> = {}) => ({
      NODE_NAME: 'web',
      DATABASE_PATH: join(dir, folder, 'counters.db'),
      REPLICA_URL: `file://${replicaRoot}`,
      LITESTREAM_SYNC_INTERVAL: TEST_SYNC_INTERVAL,
      ...extra,
    });
    const first = await runs.start(env('first'));
    await countViews(first.url, { home: 4 });
    await waitForBackupToCatchUp(join(dir, 'first', 'counters.db'), backup, dir);

    const refused = await runs.runToExit(env('second'));
    expect(refused.code, refused.output).toBe(EXIT_OTHER_WRITER);
    expect(refused.output).toContain(`refusing to replicate to ${backup}: its latest generation was written by node "web"`);
    expect(refused.output).toContain(`for ${join(dir, 'first', 'counters.db')}`);
    expect(refused.output).toContain('start this one with BACKUP_TAKEOVER=1');
    expect(existsSync(join(dir, 'second', 'counters.db'))).toBe(false);

    // The operator knows the first is gone: the override takes its path over at once.
    first.killGroup();
    await first.exited;
    await groupGone(first.pid);
    const second = await runs.start(env('second', { BACKUP_TAKEOVER: '1' }));
    expect(second.output()).toContain(`BACKUP_TAKEOVER=1: taking ${backup} over from node "web"`);
    expect(await pageCount(second.url, 'home')).toBe(4);
    await stopGracefully(second);

    // A writer silent for long (its backup's files an hour old): not live, taken over unasked.
    const hourAgo = new Date(Date.now() - 3_600_000);
    for (const file of listFiles(replicaRoot)) utimesSync(join(replicaRoot, file), hourAgo, hourAgo);
    const third = await runs.start(env('third'));
    expect(third.output()).toMatch(new RegExp(`taking ${backup.replaceAll('/', '\\/')} over from node "web" .*so that writer is not live`));
    expect(await pageCount(third.url, 'home')).toBe(4);
    await stopGracefully(third);
  });

  it('a second node starting beside a new one on an empty path is refused: the first snapshot names its writer', async () => {
    const dir = await dirs.create('backup-writer-together-');
    const replicaRoot = join(dir, 'replica');
    // A long sync interval: nothing but the first snapshot is shipped while the second starts.
    const env = (folder: string) => ({ NODE_NAME: 'web', DATABASE_PATH: join(dir, folder, 'counters.db'), REPLICA_URL: `file://${replicaRoot}`, LITESTREAM_SYNC_INTERVAL: '1m' });
    const first = await runs.start(env('first'));
    expect(first.output()).toContain(`run.sh: no generation at file://${replicaRoot}/web yet: recording this node in ${join(dir, 'first', 'counters.db')} as its writer`);
    await eventually(() => expect(listFiles(join(replicaRoot, 'web')).some((file) => file.includes('/snapshots/'))).toBe(true));

    const second = await runs.runToExit(env('second'));
    expect(second.code, second.output).toBe(EXIT_OTHER_WRITER);
    expect(second.output).not.toContain('records no writer');
    expect(second.output).toContain(`refusing to replicate to file://${replicaRoot}/web: its latest generation was written by node "web"`);
    expect(readdirSync(join(dir, 'second')).filter((name) => !name.startsWith('.'))).toEqual([]);
    await stopGracefully(first);
  });
});
