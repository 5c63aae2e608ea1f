/**
 * The database file deleted or replaced under a running node (issue 14): before, writes went on
 * answering 200 into an unlinked file and were lost at the next start. Now the node notices
 * within seconds, refuses increments with 503 `database_gone`, says why on /readyz and /metrics,
 * and keeps serving reads from the file it has open.
 */
import { copyFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../helpers/build.js';
import { WRITER_HEADERS } from '../helpers/http-client.js';
import { eventually } from '../helpers/eventually.js';
import { NodeProcesses, TEST_ADMIN_TOKEN } from '../helpers/spawn-node.js';
import { FAST_LIVENESS, useClusters } from '../helpers/cluster.js';
import { waitForConvergence } from '../helpers/cluster-waits.js';
import { clusterStatus, increment, peerAt } from '../helpers/http-client.js';
import { TempDirs } from '../helpers/temp-dir.js';

const dirs = new TempDirs();
const nodes = new NodeProcesses();
const newCluster = useClusters();

beforeAll(() => ensureBuilt());
afterEach(async () => {
  await nodes.killAll();
  await dirs.removeAll();
});

async function post(url: string, page: string): Promise<{ status: number; code?: string }> {
  const response = await fetch(`${url}/api/pages/${page}/views`, { method: 'POST', headers: WRITER_HEADERS });
  const body = (await response.json()) as { error?: { code: string } };
  return { status: response.status, ...(body.error !== undefined ? { code: body.error.code } : {}) };
}

async function count(url: string, page: string): Promise<number> {
  const response = await fetch(`${url}/api/pages/${page}`);
  expect(response.status).toBe(200);
  return ((await response.json()) as { count: number }).count;
}

async function ready(url: string): Promise<{ status: number; code?: string; message?: string }> {
  const response = await fetch(`${url}/readyz`);
  const body = (await response.json()) as { error?: { code: string; message: string } };
  return { status: response.status, ...(body.error ?? {}) };
}

describe('a node whose database file goes away', () => {
  for (const how of ['deleted', 'replaced'] as const) {
    it(`notices the file ${how} within seconds and stops taking writes, reads still served`, async () => {
      const dir = await dirs.create('db-gone-');
      const path = join(dir, 'counters.db');
      const node = await nodes.start({ env: { DATABASE_PATH: path } });
      for (let i = 0; i < 5; i++) expect(await post(node.url, 'home')).toEqual({ status: 200 });
      expect(await ready(node.url)).toEqual({ status: 200 });

      if (how === 'deleted') {
        for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
      } else {
        // An older copy moved into place (rename is atomic: the path never goes missing).
        copyFileSync(path, join(dir, 'copy.db'));
        renameSync(join(dir, 'copy.db'), path);
      }
      await eventually(async () => expect(await ready(node.url)).toMatchObject({ status: 503, code: 'database_gone', message: expect.stringContaining(how === 'deleted' ? 'was deleted' : 'was replaced') }), {
        timeoutMs: 10_000,
      });
      expect(await post(node.url, 'home')).toEqual({ status: 503, code: 'database_gone' });
      const batch = await fetch(`${node.url}/api/views`, { method: 'POST', headers: { ...WRITER_HEADERS, 'content-type': 'application/json' }, body: JSON.stringify({ views: [{ page: 'home', by: 1 }] }) });
      expect(batch.status).toBe(503);
      expect(((await batch.json()) as { error: { code: string } }).error.code).toBe('database_gone');
      expect(await count(node.url, 'home')).toBe(5);
      const metrics = await (await fetch(`${node.url}/metrics`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } })).text();
      expect(metrics).toMatch(/^dsqlite_store_writes_blocked\{reason="database_gone"\} 1$/m);
      expect(node.logs.filter((entry) => typeof entry.msg === 'string' && entry.msg.includes(`${how === 'deleted' ? 'was deleted' : 'was replaced by another file'} while the node runs`))).toHaveLength(1);
      node.signal('SIGTERM');
      expect((await node.exited).code).toBe(0);
    });
  }

  it('stops merging what peers send, keeps its sessions (no redial loop) and keeps serving its state to them', async () => {
    const [a, b] = await newCluster().startMesh(2, { env: FAST_LIVENESS, names: ['a', 'b'] });
    for (let i = 0; i < 3; i++) await increment(a, 'home');
    await waitForConvergence([a, b]);
    const since = { a: peerAt(await clusterStatus(a), b.address)?.since, b: peerAt(await clusterStatus(b), a.address)?.since };
    expect(since.a).toBeDefined();
    for (const suffix of ['', '-wal', '-shm']) rmSync(a.databasePath + suffix, { force: true });
    await eventually(async () => expect(await ready(a.url)).toMatchObject({ status: 503, code: 'database_gone' }), { timeoutMs: 10_000 });

    // b keeps counting; its deltas and answers reach a, which drops them unmerged, round after round.
    const dropped = async () => Number(/^dsqlite_replication_merges_dropped_total (\S+)$/m.exec(await (await fetch(`${a.privateUrl}/metrics`)).text())?.[1] ?? 0);
    for (let i = 0; i < 4; i++) await increment(b, 'home');
    await eventually(async () => expect(await dropped()).toBeGreaterThanOrEqual(10), { timeoutMs: 20_000 });
    expect(await count(a.url, 'home')).toBe(3);
    expect(await count(b.url, 'home')).toBe(7);
    // The session both ways is the one from before: nobody closed it, nobody redialled.
    expect(peerAt(await clusterStatus(a), b.address)).toMatchObject({ state: 'connected', since: since.a });
    expect(peerAt(await clusterStatus(b), a.address)).toMatchObject({ state: 'connected', since: since.b });
    const said = (text: string) => a.logs.filter((entry) => typeof entry.msg === 'string' && entry.msg.includes(text));
    expect(said('merges from peers paused')).toHaveLength(1);
    expect(said('merge failed')).toHaveLength(0);
  });
});
