/**
 * Losing the whole cluster, proven end to end with real processes: three nodes under run.sh, each
 * backed up by the real Litestream binary to its own path of one `file://` replica, take load and
 * die at different moments (SIGKILL, SIGTERM, SIGKILL); every data folder is deleted. Then the
 * README's procedure, step by step: look at the backups with the run.sh helpers (which must work
 * without a database), `run.sh recover` for the report, and three fresh nodes with
 * RESTORE_FROM=all. Every view any backup held must be on every node, and the nodes converge.
 * Then a point in time: the cluster set back to before a bad deploy, an idle node's views kept.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { readBackups, readCounters, unionCounts } from './backups.js';
import { useRunSh,
  TEST_SYNC_INTERVAL,
  addCounts,
  clusterStatus,
  countView,
  countViews,
  groupGone,
  pageCounts,
  stopGracefully,
  waitForBackupToCatchUp,
  type RunShProcess,
} from './run-sh.js';

const CLUSTER_SECRET = 'recover-test-secret-0123456789abcdef';
const NAMES = ['a', 'b', 'c'] as const;
const CONVERGE_TIMEOUT_MS = 20_000;
/** Views each loop must have acknowledged past a mark before the next node dies. */
const VIEWS_BETWEEN_LOSSES = 15;

/** A client counting views of one page, one request at a time, until stopped or refused. */
class Load {
  acknowledged = 0;
  private running = true;
  private readonly done: Promise<void>;

  constructor(url: string, page: string) {
    this.done = (async () => {
      while (this.running) {
        try {
          await countView(url, page);
        } catch {
          return; // The node is gone: what it acknowledged before stays counted above.
        }
        this.acknowledged++;
      }
    })();
  }

  async stop(): Promise<number> {
    this.running = false;
    await this.done;
    return this.acknowledged;
  }
}

/** Three real nodes under run.sh, their Litestream backups, restores and a recovery: ~55 s alone on 2 cores, more under load (a timeout, not a speed goal). */
const SLOW_RECOVERY_MS = 180_000;

describe('whole-cluster recovery from the union of every backup', () => {
  const { dirs, runs } = useRunSh();

  async function expectConverged(nodes: readonly RunShProcess[], expected: Record<string, number>): Promise<void> {
    const pages = Object.keys(expected);
    await eventually(
      async () => {
        for (const node of nodes) expect(await pageCounts(node.url, pages)).toEqual(expected);
        const digests = await Promise.all(nodes.map(async (node) => (await clusterStatus(node.url)).digest));
        expect(new Set(digests).size).toBe(1);
      },
      { timeoutMs: CONVERGE_TIMEOUT_MS, intervalMs: 100 },
    );
  }

  /** Three nodes under run.sh in `dir`, each backing up to REPLICA_URL/<name>. */
  function clusterIn(dir: string) {
    const replicaRoot = join(dir, 'replica');
    const REPLICA_URL = `file://${replicaRoot}`;
    const dataDir = (name: string) => join(dir, name);
    const env = (name: string, peers: readonly RunShProcess[], extra: Record<string, string> = {}) => ({
      DATABASE_PATH: join(dataDir(name), 'counters.db'),
      NODE_NAME: name,
      REPLICA_URL,
      LITESTREAM_SYNC_INTERVAL: TEST_SYNC_INTERVAL,
      CLUSTER_SECRET,
      ...(peers.length > 0 ? { PEERS: peers.map((peer) => `127.0.0.1:${peer.clusterPort}`).join(',') } : {}),
      ...extra,
    });
    /** a, then b dialling a, then c dialling both: one mesh, every port chosen by the system. */
    async function startCluster(extra: Record<string, string> = {}): Promise<RunShProcess[]> {
      const started: RunShProcess[] = [];
      for (const name of NAMES) started.push(await runs.start(env(name, started, extra)));
      return started;
    }
    return { replicaRoot, REPLICA_URL, dataDir, env, startCluster };
  }

  async function loseMachine(run: RunShProcess): Promise<void> {
    run.killGroup();
    await run.exited;
    await groupGone(run.pid);
  }

  it('three nodes lost at different moments come back from the union with every view any backup held', async () => {
    const dir = await dirs.create('recover-cluster-');
    const { replicaRoot, REPLICA_URL, dataDir, env, startCluster } = clusterIn(dir);

    // Phase 1: load on every node, converged, and every backup caught up: all of it is held.
    const [a, b, c] = (await startCluster()) as [RunShProcess, RunShProcess, RunShProcess];
    const phase1 = { home: 30, about: 12, contact: 6 };
    await Promise.all([countViews(a.url, { home: 10, about: 12 }), countViews(b.url, { home: 10, contact: 6 }), countViews(c.url, { home: 10 })]);
    await expectConverged([a, b, c], phase1);
    for (const name of NAMES) await waitForBackupToCatchUp(join(dataDir(name), 'counters.db'), `${REPLICA_URL}/${name}`, dir);

    // Phase 2: load on every node while they die one after the other, each in its own way.
    const loads = { a: new Load(a.url, 'on-a'), b: new Load(b.url, 'on-b'), c: new Load(c.url, 'on-c'), shared: new Load(c.url, 'home') };
    const progress = async (marks: Record<string, number>) =>
      eventually(() => {
        for (const [key, mark] of Object.entries(marks)) expect(loads[key as keyof typeof loads].acknowledged).toBeGreaterThanOrEqual(mark);
      }, { timeoutMs: CONVERGE_TIMEOUT_MS });
    await progress({ a: VIEWS_BETWEEN_LOSSES, b: VIEWS_BETWEEN_LOSSES, c: VIEWS_BETWEEN_LOSSES });
    await loseMachine(a); // the machine is gone: node and Litestream at once
    const onA = await loads.a.stop();
    await progress({ b: loads.b.acknowledged + VIEWS_BETWEEN_LOSSES, c: loads.c.acknowledged + VIEWS_BETWEEN_LOSSES });
    const onB = await loads.b.stop().then(async (acknowledged) => {
      await stopGracefully(b); // SIGTERM: Litestream ships the last WAL before it exits
      return acknowledged;
    });
    await progress({ c: loads.c.acknowledged + VIEWS_BETWEEN_LOSSES });
    await loseMachine(c);
    const onC = await loads.c.stop();
    const onCShared = await loads.shared.stop();
    expect(Math.min(onA, onB, onC)).toBeGreaterThanOrEqual(VIEWS_BETWEEN_LOSSES);
    for (const name of NAMES) rmSync(dataDir(name), { recursive: true, force: true });

    // What the backups hold, read with Litestream and SQL alone.
    const held = await readBackups(replicaRoot, NAMES, dir);
    const union = unionCounts(held.values());
    // Everything acknowledged before the backups caught up is there, and all that b acknowledged
    // (it stopped cleanly); killed nodes may lose at most their last sync interval. A killed
    // node may also have committed (and shipped) the one view its client was still waiting for
    // when the machine went: each load sends one request at a time, so at most one more.
    for (const [page, n] of Object.entries(addCounts(phase1, { 'on-b': onB }))) expect(union[page]).toBeGreaterThanOrEqual(n);
    expect(union['on-a'] ?? 0).toBeLessThanOrEqual(onA + 1);
    expect(union['on-c'] ?? 0).toBeLessThanOrEqual(onC + 1);
    expect(union.home ?? 0).toBeLessThanOrEqual(phase1.home + onCShared + 1);

    // README step 1: the helpers work on the lost disk.
    for (const name of NAMES) {
      const listed = await runs.runToExit(env(name, []), ['litestream', 'generations']);
      expect(listed.code, listed.output).toBe(0);
      expect(listed.output).toMatch(/^file\s+[0-9a-f]{16}\s/m);
      for (const command of ['snapshots', 'wal']) {
        const shown = await runs.runToExit(env(name, []), ['litestream', command]);
        expect(shown.code, shown.output).toBe(0);
        expect(shown.output).toMatch(/^file\s+[0-9a-f]{16}\s/m);
      }
      const copy = join(dir, `copy-${name}.db`);
      const restored = await runs.runToExit(env(name, []), ['litestream', 'restore', '-o', copy]);
      expect(restored.code, restored.output).toBe(0);
      expect(readCounters(copy).views).toBe(held.get(name)?.views);
    }

    // README step 2: the report.
    const report = await runs.runToExit(env('a', []), ['recover']);
    expect(report.code, report.output).toBe(0);
    const lines = report.output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { backup?: string; views?: number; unionAdds?: number; union?: { backups: number; views: number } });
    const totalUnion = Object.values(union).reduce((x, y) => x + y, 0);
    for (const name of NAMES) {
      const line = lines.find((entry) => entry.backup === name);
      expect(line, report.output).toMatchObject({ views: held.get(name)?.views, unionAdds: totalUnion - (held.get(name)?.views ?? 0) });
      expect(report.output).toContain(`recover: backup ${name}: ${held.get(name)?.views} views on`);
    }
    expect(lines.find((entry) => entry.union !== undefined)?.union).toEqual({ backups: 3, pages: Object.keys(union).length, views: totalUnion });

    // README step 3: fresh nodes seeded from the union; every view any backup held is on every node.
    const fresh = await startCluster({ RESTORE_FROM: 'all' });
    for (const node of fresh) expect(node.output()).toContain('RESTORE_FROM=all: seeding it from the union');
    await expectConverged(fresh, union);
    const ids = await Promise.all(fresh.map(async (node) => (await clusterStatus(node.url)).node.replicaId));
    expect(new Set(ids).size).toBe(3);
    // They count on.
    await countViews(fresh[0]?.url ?? '', { home: 2 });
    await expectConverged(fresh, addCounts(union, { home: 2 }));
  }, SLOW_RECOVERY_MS);

  it('sets the whole cluster back to a point in time before a bad deploy, idle nodes included', async () => {
    const dir = await dirs.create('recover-pitr-');
    const { replicaRoot, REPLICA_URL, dataDir, env, startCluster } = clusterIn(dir);
    const [a, b, c] = (await startCluster()) as [RunShProcess, RunShProcess, RunShProcess];
    const good = { home: 9, about: 4 };
    await Promise.all([countViews(a.url, { home: 3 }), countViews(b.url, { home: 3, about: 4 }), countViews(c.url, { home: 3 })]);
    await expectConverged([a, b, c], good);
    for (const name of NAMES) await waitForBackupToCatchUp(join(dataDir(name), 'counters.db'), `${REPLICA_URL}/${name}`, dir);
    // Node c stops counting here: nothing it ships after this carries a view it counted.
    await loseMachine(c);
    // T: a whole second after every backup held the good state, before the bad deploy counts.
    const at = new Date(Math.ceil((Date.now() + 1) / 1000) * 1000);
    await eventually(() => expect(Date.now()).toBeGreaterThan(at.getTime() + 1000), { timeoutMs: 5000 });
    const bad = { home: 25, junk: 40 };
    await Promise.all([countViews(a.url, { home: 25, junk: 20 }), countViews(b.url, { junk: 20 })]);
    await expectConverged([a, b], addCounts(good, bad));
    for (const name of ['a', 'b']) await waitForBackupToCatchUp(join(dataDir(name), 'counters.db'), `${REPLICA_URL}/${name}`, dir);
    await Promise.all([stopGracefully(a), stopGracefully(b)]);
    for (const name of NAMES) rmSync(dataDir(name), { recursive: true, force: true });

    const timestamp = at.toISOString().replace(/\.000Z$/, 'Z');
    // The report as of T: every backup held the good state then (c's generation ended before T).
    const report = await runs.runToExit(env('a', []), ['recover', '--timestamp', timestamp]);
    expect(report.code, report.output).toBe(0);
    const total = (counts: Record<string, number>) => Object.values(counts).reduce((x, y) => x + y, 0);
    for (const name of NAMES) expect(report.output).toContain(`recover: backup ${name} as of ${timestamp}: ${total(good)} views on 2 pages; the union adds 0`);
    // One backup at a time, as the README shows it (a node that wrote after T).
    const then = join(dir, 'a-then.db');
    const restored = await runs.runToExit(env('a', []), ['litestream', 'restore', '-timestamp', timestamp, '-o', then]);
    expect(restored.code, restored.output).toBe(0);
    expect(readCounters(then).views).toBe(total(good));
    // The latest state still holds the bad deploy's views (nothing was deleted).
    expect(unionCounts((await readBackups(replicaRoot, NAMES, dir)).values())).toEqual(addCounts(good, bad));

    const fresh = await startCluster({ RESTORE_FROM: 'all', RESTORE_TIMESTAMP: timestamp });
    await expectConverged(fresh, { ...good, junk: 0 });
  }, SLOW_RECOVERY_MS);
});
