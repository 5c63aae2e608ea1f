/**
 * run.sh's documented modes, with real processes: no REPLICA_URL (node alone), a REPLICA_URL with
 * no backup yet (start empty, back up), settings it refuses (exit 2 naming the setting), a backup
 * it cannot read (exit 1), leftovers of a lost database, and RESTORE_FROM.
 */
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { useRunSh,
  TEST_SYNC_INTERVAL,
  clusterStatus,
  countViews,
  dumpDatabase,
  listFiles,
  pageCount,
  stopGracefully,
  waitForBackupToCatchUp,
} from './run-sh.js';

const EXIT_BAD_CONFIG = 2;

describe('run.sh', () => {
  const { dirs, runs } = useRunSh();

  it('without REPLICA_URL says so and execs the node itself, which migrates (no Litestream, no second process)', async () => {
    const dir = await dirs.create('run-sh-plain-');
    const databasePath = join(dir, 'data', 'counters.db');
    const run = await runs.start({ DATABASE_PATH: databasePath, NODE_NAME: 'plain' });

    expect(run.output()).toContain('run.sh: REPLICA_URL is not set: running the node without Litestream');
    // One process: no separate `node … migrate` before the node (the store migrates as it opens).
    expect(run.output()).not.toContain('"msg":"migrated"');
    expect(dumpDatabase(databasePath)).toMatch(/^\{"user_version":[1-9]/);
    // run.sh exec'd the node: the listening process is run.sh's own pid.
    expect(run.nodePid).toBe(run.pid);
    await countViews(run.url, { home: 3 });
    expect(await pageCount(run.url, 'home')).toBe(3);

    run.signal('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
    expect(run.output()).not.toContain('litestream');
  });

  it('with REPLICA_URL and no backup starts empty, runs the node under Litestream and backs up only the database', async () => {
    const dir = await dirs.create('run-sh-fresh-');
    const databasePath = join(dir, 'data', 'counters.db');
    const replicaRoot = join(dir, 'replica');
    const env = { DATABASE_PATH: databasePath, NODE_NAME: 'fresh', REPLICA_URL: `file://${replicaRoot}/`, LITESTREAM_SYNC_INTERVAL: TEST_SYNC_INTERVAL };
    const run = await runs.start(env);

    expect(run.output()).toContain(`run.sh: backup of ${databasePath}: file://${replicaRoot}/fresh, synced every ${TEST_SYNC_INTERVAL}`);
    expect(run.output()).toContain('run.sh: no backup; starting empty, will bootstrap from peers');
    // Litestream is the main process and the node its child.
    expect(run.nodePid).not.toBe(run.pid);
    await countViews(run.url, { home: 5, about: 2 });
    await waitForBackupToCatchUp(databasePath, `file://${replicaRoot}/fresh`, dir);

    await stopGracefully(run);

    // The backup holds the database and its WAL, nothing else: no identity file.
    const files = listFiles(join(replicaRoot, 'fresh'));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) expect(file).toMatch(/^generations\/[0-9a-f]{16}\/(snapshots\/[0-9a-f]{8}\.snapshot|wal\/[0-9a-f]{8}_[0-9a-f]{8}\.wal)\.lz4$/);
    expect(existsSync(`${databasePath}-identity.json`)).toBe(true);

    // `run.sh litestream …` looks at this node's backup with the start's settings.
    const generations = await runs.runToExit(env, ['litestream', 'generations']);
    expect(generations.code, generations.output).toBe(0);
    expect(generations.output).toMatch(/^file\s+[0-9a-f]{16}\s/m);
    const copy = join(dir, 'inspected.db');
    const restored = await runs.runToExit(env, ['litestream', 'restore', '-o', copy]);
    expect(restored.code, restored.output).toBe(0);
    expect(dumpDatabase(copy)).toBe(dumpDatabase(databasePath));
    const usage = await runs.runToExit(env, ['litestream', 'replicate']);
    expect(usage.code).toBe(EXIT_BAD_CONFIG);
    expect(usage.output).toContain('run.sh: error: usage: run.sh [litestream generations|snapshots|wal|restore [ARGS] | recover [ARGS]]');

    // A second start finds the database and keeps it (and its replica id).
    const again = await runs.start(env);
    expect(again.output()).toContain(`run.sh: ${databasePath} exists: not restoring`);
    expect(await pageCount(again.url, 'home')).toBe(5);
    await stopGracefully(again);
  });

  it.each([
    ['no scheme', 'backups/here'],
    ['an unsupported scheme', 'http://bucket/path'],
    ['an S3 URL without a bucket', 's3://'],
    ['a relative file URL', 'file://relative/dir'],
    ['a query string', 's3://bucket/path?endpoint=x'],
    ['a space', 'file:///tmp/with space'],
  ])('refuses a REPLICA_URL with %s: exit 2, says why, starts nothing', async (_what, replicaUrl) => {
    const dir = await dirs.create('run-sh-bad-url-');
    const databasePath = join(dir, 'counters.db');
    const result = await runs.runToExit({ DATABASE_PATH: databasePath, NODE_NAME: 'bad', REPLICA_URL: replicaUrl });
    expect(result.code).toBe(EXIT_BAD_CONFIG);
    expect(result.output).toContain('run.sh: error: REPLICA_URL must');
    expect(result.output).toContain(replicaUrl);
    expect(result.output).not.toContain('listening');
    expect(existsSync(databasePath)).toBe(false);
  });

  it.each([
    ['a backup name that is not a path segment', { NODE_NAME: 'a/b' }, 'the backup name'],
    ['a malformed sync interval', { LITESTREAM_SYNC_INTERVAL: 'often' }, 'LITESTREAM_SYNC_INTERVAL must'],
    ['a malformed RESTORE_FROM', { RESTORE_FROM: '../other' }, 'RESTORE_FROM must'],
    ['a RESTORE_FROM list with a malformed name', { RESTORE_FROM: 'a,../b' }, 'RESTORE_FROM must'],
    ['RESTORE_FROM=all on an object store', { REPLICA_URL: 's3://bucket/prefix', RESTORE_FROM: 'all' }, 'RESTORE_FROM=all lists the backups of a file:// replica only'],
    ['a RESTORE_TIMESTAMP that is not RFC 3339', { RESTORE_FROM: 'all', RESTORE_TIMESTAMP: 'yesterday' }, 'RESTORE_TIMESTAMP must be an RFC 3339 time'],
    ['a RESTORE_TIMESTAMP for one backup', { RESTORE_FROM: 'a', RESTORE_TIMESTAMP: '2026-01-31T14:00:00Z' }, 'RESTORE_TIMESTAMP needs RESTORE_FROM=all or NAME,NAME,…'],
    ['a non-boolean path-style flag', { LITESTREAM_FORCE_PATH_STYLE: 'yes please' }, 'LITESTREAM_FORCE_PATH_STYLE must'],
    // Litestream pastes these into litestream.yml before parsing it: a newline adds YAML keys.
    ['an endpoint that adds a YAML key', { LITESTREAM_ENDPOINT: 'https://s3.example\n        sync-interval: 1h' }, 'LITESTREAM_ENDPOINT must not contain whitespace or control characters'],
    ['an endpoint from AWS_ENDPOINT_URL_S3 with a newline', { AWS_ENDPOINT_URL_S3: 'https://s3.example\nretention: 1s' }, 'LITESTREAM_ENDPOINT must not contain whitespace or control characters'],
    ['a region with a space', { LITESTREAM_REGION: 'eu west' }, 'LITESTREAM_REGION must not contain whitespace or control characters'],
    ['a region with a control character', { AWS_REGION: 'auto\u0007' }, 'LITESTREAM_REGION must not contain whitespace or control characters'],
  ])('refuses %s: exit 2 and names the setting', async (_what, env, message) => {
    const dir = await dirs.create('run-sh-bad-');
    const result = await runs.runToExit({ DATABASE_PATH: join(dir, 'counters.db'), NODE_NAME: 'bad', REPLICA_URL: `file://${dir}/replica`, ...env });
    expect(result.code).toBe(EXIT_BAD_CONFIG);
    expect(result.output).toContain(`run.sh: error: ${message}`);
    expect(existsSync(join(dir, 'counters.db'))).toBe(false);
  });

  it('stops with exit 1 when the backup location cannot be read, rather than start empty beside it', async () => {
    const dir = await dirs.create('run-sh-unreadable-');
    // A file where the replica folder should be: Litestream cannot list generations there.
    writeFileSync(join(dir, 'replica'), 'not a folder');
    const result = await runs.runToExit({ DATABASE_PATH: join(dir, 'data', 'counters.db'), NODE_NAME: 'n', REPLICA_URL: `file://${dir}/replica` });
    expect(result.code).toBe(1);
    expect(result.output).toContain(`run.sh: error: could not read the backup at file://${dir}/replica/n`);
    expect(result.output).not.toContain('listening');
  });

  it('removes the scratch copies a killed start left in the data folder, and only this database’s', async () => {
    const dir = await dirs.create('run-sh-scratch-');
    const data = join(dir, 'data');
    const databasePath = join(data, 'counters.db');
    // What a SIGKILL during `recover --output` or `check-backup-writer` leaves: folders holding
    // full database copies (a `finally` never runs).
    const leftovers = [join(data, '.recover-counters.db-a1B2c3'), join(data, '.backup-writer-counters.db-d4E5f6')];
    const another = join(data, '.recover-other.db-g7H8i9');
    for (const folder of [...leftovers, another]) {
      mkdirSync(folder, { recursive: true });
      writeFileSync(join(folder, 'copy.db'), 'a full copy of a database');
    }
    const run = await runs.start({ DATABASE_PATH: databasePath, NODE_NAME: 'scratch', REPLICA_URL: `file://${dir}/replica`, LITESTREAM_SYNC_INTERVAL: TEST_SYNC_INTERVAL });
    for (const folder of leftovers) {
      expect(run.output()).toContain(`run.sh: removing ${folder}, a scratch folder left by an earlier start that was killed`);
      expect(existsSync(folder)).toBe(false);
    }
    // Another database's run may be using its own scratch folder right now.
    expect(existsSync(join(another, 'copy.db'))).toBe(true);
    await stopGracefully(run);
  });

  it('ships everything at SIGTERM; removes a WAL left without its database; RESTORE_FROM seeds a node with no backup of its own', async () => {
    const dir = await dirs.create('run-sh-restore-from-');
    const replicaRoot = join(dir, 'replica');
    // The default sync interval (10s): only the stop itself ships the views.
    const common = { REPLICA_URL: `file://${replicaRoot}` };

    // Node "old" counts and is stopped at once: Litestream ships the WAL as it stops.
    const oldPath = join(dir, 'old', 'counters.db');
    const old = await runs.start({ ...common, DATABASE_PATH: oldPath, NODE_NAME: 'old' });
    await countViews(old.url, { home: 7 });
    const oldId = (await clusterStatus(old.url)).node.replicaId;
    await stopGracefully(old);

    // Node "new": its folder holds only a stray WAL; RESTORE_FROM names the old node's backup.
    const newPath = join(dir, 'new', 'counters.db');
    mkdirSync(join(dir, 'new'));
    writeFileSync(`${newPath}-wal`, 'stale frames of a lost database');
    const fresh = await runs.start({ ...common, DATABASE_PATH: newPath, NODE_NAME: 'new', RESTORE_FROM: 'old' });
    expect(fresh.output()).toContain(`run.sh: removing ${newPath}-wal, left over from a database that is gone`);
    expect(fresh.output()).toContain(`run.sh: no backup of its own; RESTORE_FROM=old: looking for a backup at file://${replicaRoot}/old`);
    expect(fresh.output()).toContain(`run.sh: restored ${newPath} from file://${replicaRoot}/old`);
    expect(await pageCount(fresh.url, 'home')).toBe(7);
    const freshId = (await clusterStatus(fresh.url)).node.replicaId;
    expect(freshId).not.toBe(oldId);

    // It backs up under its own name, never the old node's path.
    await eventually(() => expect(listFiles(join(replicaRoot, 'new')).length).toBeGreaterThan(0));
    await stopGracefully(fresh);
  });

  it('RESTORE_FROM=all seeds a node with no database and no backup of its own from the union of every backup', async () => {
    const dir = await dirs.create('run-sh-restore-all-');
    const replicaRoot = join(dir, 'replica');
    const common = { REPLICA_URL: `file://${replicaRoot}` };
    // Two nodes count apart (no peers): each backup holds only its own views of "home".
    const counted = { x: { home: 3, about: 2 }, y: { home: 4 } };
    const oldIds: string[] = [];
    for (const [name, views] of Object.entries(counted)) {
      const node = await runs.start({ ...common, DATABASE_PATH: join(dir, name, 'counters.db'), NODE_NAME: name });
      await countViews(node.url, views);
      oldIds.push((await clusterStatus(node.url)).node.replicaId);
      await stopGracefully(node); // Litestream ships the WAL as it stops
    }

    // A node of a name no backup has: the union of x's and y's, not one of them.
    const newPath = join(dir, 'z', 'counters.db');
    const fresh = await runs.start({ ...common, DATABASE_PATH: newPath, NODE_NAME: 'z', RESTORE_FROM: 'all' });
    expect(fresh.output()).toContain(`run.sh: ${newPath} is missing; RESTORE_FROM=all: seeding it from the union of the backups under file://${replicaRoot}`);
    expect(fresh.output()).toContain(`run.sh: seeded ${newPath} from the union`);
    expect(await pageCount(fresh.url, 'home')).toBe(7);
    expect(await pageCount(fresh.url, 'about')).toBe(2);
    expect(oldIds).not.toContain((await clusterStatus(fresh.url)).node.replicaId);
    // It counts on, and backs up under its own name.
    await countViews(fresh.url, { home: 1 });
    expect(await pageCount(fresh.url, 'home')).toBe(8);
    await eventually(() => expect(listFiles(join(replicaRoot, 'z')).length).toBeGreaterThan(0));
    await stopGracefully(fresh);
  });
});
