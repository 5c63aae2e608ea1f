/**
 * Restore proven end to end: run.sh, the real Litestream binary, a `file://` replica, real nodes
 * on loopback. A node loses its machine (SIGKILL to node and Litestream, data folder deleted);
 * run.sh restores its backup; the node must come back under a NEW replica id with every
 * acknowledged increment, and converge with a peer that kept running. Then the harder case: the
 * backup is older than what the peers saw of that node, and still nothing is lost.
 *
 * The peer tests need the node's replication (PEERS); the backup-alone test does not.
 */
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../helpers/build.js';
import { eventually } from '../helpers/eventually.js';
import { NodeProcesses } from '../helpers/spawn-node.js';
import { TempDirs } from '../helpers/temp-dir.js';
import {
  RunShProcesses,
  TEST_SYNC_INTERVAL,
  addCounts,
  clusterStatus,
  countViews,
  groupGone,
  pageCounts,
  stopGracefully,
  waitForBackupToCatchUp,
  type RunShProcess,
} from './run-sh.js';

const CLUSTER_SECRET = 'deploy-test-secret-0123456789abcdef';
const PAGES = ['home', 'about', 'contact'];
const CONVERGE_TIMEOUT_MS = 15_000;

/** Counts for every page of PAGES (0 where none were counted), as pageCounts reports them. */
function allPages(counts: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(PAGES.map((page) => [page, counts[page] ?? 0]));
}

describe('restore from a Litestream backup', () => {
  const dirs = new TempDirs();
  const runs = new RunShProcesses();
  const nodes = new NodeProcesses();
  beforeAll(() => ensureBuilt());
  afterEach(async () => {
    await runs.killAll();
    await nodes.killAll();
    await dirs.removeAll();
  });
  afterAll(async () => {
    await runs.killAll();
    await nodes.killAll();
  });

  /** The machine is gone: node and Litestream die at once, the volume with them. */
  async function loseMachine(run: RunShProcess, dataDir: string): Promise<void> {
    run.killGroup();
    await run.exited;
    await groupGone(run.pid);
    rmSync(dataDir, { recursive: true, force: true });
  }

  async function expectConverged(urls: readonly string[], counted: Record<string, number>): Promise<void> {
    const expected = allPages(counted);
    await eventually(
      async () => {
        for (const url of urls) expect(await pageCounts(url, PAGES)).toEqual(expected);
        const digests = await Promise.all(urls.map(async (url) => (await clusterStatus(url)).digest));
        expect(new Set(digests).size).toBe(1);
      },
      { timeoutMs: CONVERGE_TIMEOUT_MS, intervalMs: 50 },
    );
  }

  it('comes back under a new replica id with every acknowledged increment, from the backup alone', async () => {
    const dir = await dirs.create('restore-alone-');
    const aDir = join(dir, 'a');
    const aPath = join(aDir, 'counters.db');
    const replicaRoot = join(dir, 'replica');
    const aBackup = `file://${replicaRoot}/a`;
    const aEnv = { DATABASE_PATH: aPath, NODE_NAME: 'a', REPLICA_URL: `file://${replicaRoot}`, LITESTREAM_SYNC_INTERVAL: TEST_SYNC_INTERVAL };

    let a = await runs.start(aEnv);
    const acknowledged = { home: 40, about: 15, contact: 5 };
    await countViews(a.url, acknowledged);
    const oldId = (await clusterStatus(a.url)).node.replicaId;
    // Kill only once the backup holds what the file holds: then nothing acknowledged can be lost.
    await waitForBackupToCatchUp(aPath, aBackup, dir);
    await loseMachine(a, aDir);

    a = await runs.start(aEnv);
    expect(a.output()).toContain(`run.sh: ${aPath} is missing: looking for a backup at ${aBackup}`);
    expect(a.output()).toContain(`run.sh: restored ${aPath} from ${aBackup}; the node will mint a new replica id`);
    expect(await pageCounts(a.url, PAGES)).toEqual(allPages(acknowledged));
    const status = await clusterStatus(a.url);
    expect(status.node.replicaId).not.toBe(oldId);
    // The restored file says what the old id had written; the new id starts from nothing.
    expect(status.versionVector[oldId]).toBeGreaterThan(0);
    expect(status.versionVector[status.node.replicaId] ?? 0).toBe(0);
    expect(a.output()).toContain('identity file missing');

    // It counts on from the restored totals under the new id.
    const afterRestore = { home: 2, contact: 1 };
    await countViews(a.url, afterRestore);
    expect(await pageCounts(a.url, PAGES)).toEqual(allPages(addCounts(acknowledged, afterRestore)));
    await stopGracefully(a);
  });

  /** Node B running plainly, and the settings of node A under run.sh backing up to a file replica. */
  async function backedUpPair(prefix: string) {
    const dir = await dirs.create(prefix);
    const aDir = join(dir, 'a');
    const aPath = join(aDir, 'counters.db');
    const replicaRoot = join(dir, 'replica');
    const b = await nodes.start({ env: { DATABASE_PATH: join(dir, 'b', 'counters.db'), NODE_NAME: 'b', CLUSTER_SECRET } });
    const aEnv = {
      DATABASE_PATH: aPath,
      NODE_NAME: 'a',
      REPLICA_URL: `file://${replicaRoot}`,
      LITESTREAM_SYNC_INTERVAL: TEST_SYNC_INTERVAL,
      CLUSTER_SECRET,
      PEERS: b.clusterAddress,
    };
    return { dir, aDir, aPath, replicaRoot, aBackup: `file://${replicaRoot}/a`, aEnv, b };
  }

  it('a restored node converges with a peer that kept running, nothing lost on either side', async () => {
    const { dir, aDir, aPath, aBackup, aEnv, b } = await backedUpPair('restore-peer-');
    let a = await runs.start(aEnv);

    const onA = { home: 30, about: 10 };
    const onB = { home: 5, contact: 5 };
    await Promise.all([countViews(a.url, onA), countViews(b.url, onB)]);
    const beforeLoss = addCounts(onA, onB);
    await expectConverged([a.url, b.url], beforeLoss);
    const oldId = (await clusterStatus(a.url)).node.replicaId;

    await waitForBackupToCatchUp(aPath, aBackup, dir);
    await loseMachine(a, aDir);
    const whileDown = { home: 4 };
    await countViews(b.url, whileDown);

    a = await runs.start(aEnv);
    expect(a.output()).toContain(`run.sh: restored ${aPath} from ${aBackup}`);
    const newId = (await clusterStatus(a.url)).node.replicaId;
    expect(newId).not.toBe(oldId);
    const afterRestore = { about: 3, contact: 1 };
    await countViews(a.url, afterRestore);
    await expectConverged([a.url, b.url], addCounts(beforeLoss, whileDown, afterRestore));
    const vv = (await clusterStatus(b.url)).versionVector;
    expect(Object.keys(vv)).toEqual(expect.arrayContaining([oldId, newId]));
  });

  it('loses nothing when the backup is older than what the peers saw of the node', async () => {
    const { dir, aDir, aPath, replicaRoot, aBackup, aEnv, b } = await backedUpPair('restore-stale-');
    let a = await runs.start(aEnv);
    const phase1 = { home: 12, about: 3 };
    await countViews(a.url, phase1);
    await expectConverged([a.url, b.url], phase1);
    const oldId = (await clusterStatus(a.url)).node.replicaId;

    // Keep a copy of the backup as it stands after phase 1: the "older backup".
    await stopGracefully(a);
    const staleCopy = join(dir, 'stale-backup');
    cpSync(join(replicaRoot, 'a'), staleCopy, { recursive: true });

    // Phase 2: the node (same file, same id) counts more, and so does the peer; both see all of it.
    a = await runs.start(aEnv);
    expect((await clusterStatus(a.url)).node.replicaId).toBe(oldId);
    const phase2OnA = { home: 20, contact: 6 };
    const phase2OnB = { about: 5 };
    await Promise.all([countViews(a.url, phase2OnA), countViews(b.url, phase2OnB)]);
    const seen = addCounts(phase1, phase2OnA, phase2OnB);
    await expectConverged([a.url, b.url], seen);

    // The machine is lost and only the older backup is left.
    await loseMachine(a, aDir);
    rmSync(join(replicaRoot, 'a'), { recursive: true, force: true });
    cpSync(staleCopy, join(replicaRoot, 'a'), { recursive: true });

    // Watch the peer while the restored node rejoins: its counts never go down.
    const observed: Array<Record<string, number>> = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) observed.push(await pageCounts(b.url, PAGES));
    })();

    a = await runs.start(aEnv);
    expect(a.output()).toContain(`run.sh: restored ${aPath} from ${aBackup}`);
    const newId = (await clusterStatus(a.url)).node.replicaId;
    expect(newId).not.toBe(oldId);
    // New views on the restored node count under the new id: the peer's higher values for the
    // old id must not swallow them.
    const afterRestore = { home: 2, about: 1 };
    await countViews(a.url, afterRestore);
    await expectConverged([a.url, b.url], addCounts(seen, afterRestore));

    watching = false;
    await watcher;
    expect(observed.length).toBeGreaterThan(0);
    for (const page of PAGES) {
      const series = observed.map((counts) => counts[page] as number);
      for (let i = 1; i < series.length; i++) expect(series[i]).toBeGreaterThanOrEqual(series[i - 1] as number);
      expect(series[0]).toBe(seen[page] ?? 0);
    }
  });
});
