/**
 * Resets and deletes with real processes (README, "Admin"): a reset on one node of three
 * converges everywhere — also to a node frozen (SIGSTOP) while it happened, and to a node
 * restored from a copy of its database taken before it — and the page counts again from zero.
 * A page pushed to the limit is repaired by a reset. The admin routes refuse requests without an
 * admin token and change nothing.
 */
import { copyFileSync, existsSync, rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { identityFilePath } from '../../src/store/identity.js';
import { FAST_LIVENESS, useClusters } from '../helpers/cluster.js';
import { waitForConvergence, waitForMesh } from '../helpers/cluster-waits.js';
import { eventually } from '../helpers/eventually.js';
import { increment, pageCount, totals, WRITER_HEADERS } from '../helpers/http-client.js';
import type { ClusterNode } from '../helpers/cluster-node.js';

const ADMIN_TOKEN = 'test-admin-token-0123456789';
const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` };
const ENV = { ...FAST_LIVENESS, ADMIN_TOKENS: ADMIN_TOKEN };

const newCluster = useClusters();

async function admin(node: ClusterNode, method: string, path: string, body?: unknown, headers: Record<string, string> = ADMIN): Promise<Response> {
  const init: RequestInit = body === undefined ? { method, headers } : { method, headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) };
  return fetch(`${node.url}${path}`, { ...init, signal: AbortSignal.timeout(5_000) });
}

async function resetPage(node: ClusterNode, page: string): Promise<void> {
  const response = await admin(node, 'POST', `/api/admin/pages/${encodeURIComponent(page)}/reset`);
  expect(response.status).toBe(200);
  expect(await response.json()).toMatchObject({ page, count: 0 });
}

const DATABASE_FILES = ['', '-wal', '-shm'];

function copyDatabase(node: ClusterNode, suffix: string): void {
  for (const file of DATABASE_FILES) if (existsSync(node.databasePath + file)) copyFileSync(node.databasePath + file, `${node.databasePath}${file}.${suffix}`);
}

function restoreDatabase(node: ClusterNode, suffix: string): void {
  for (const file of DATABASE_FILES) {
    rmSync(node.databasePath + file, { force: true });
    if (existsSync(`${node.databasePath}${file}.${suffix}`)) copyFileSync(`${node.databasePath}${file}.${suffix}`, node.databasePath + file);
  }
}

describe('resets across a real cluster', () => {
  it('converge on every node, across a partition and a restore from before the reset; the page counts from zero', async () => {
    const nodes = await newCluster().startMesh(3, { env: ENV });
    const [a, b, c] = nodes;
    await increment(a, 'p', 5);
    await increment(b, 'p', 3);
    await increment(c, 'kept', 2);
    await waitForConvergence(nodes);

    // A backup of c taken before the reset: stopped cleanly, its file copied, started again.
    await c.terminate();
    copyDatabase(c, 'before-reset');
    await c.start();
    await waitForMesh(nodes);

    // b is frozen while the reset happens at a.
    b.pause();
    await resetPage(a, 'p');
    expect(await pageCount(a, 'p')).toBe(0);
    await eventually(async () => expect(await pageCount(c, 'p')).toBe(0), { timeoutMs: 15_000 });
    b.resume();
    const afterReset = await waitForConvergence(nodes);
    expect(afterReset.totals).toEqual({ kept: 2 });
    for (const node of nodes) expect(await pageCount(node, 'p')).toBe(0);

    // It counts again from zero, wherever it is counted.
    expect(await increment(b, 'p')).toBe(1);
    expect(await increment(c, 'p', 2)).toBe(3);
    expect((await waitForConvergence(nodes)).totals).toEqual({ kept: 2, p: 3 });

    // c restored from the copy taken before the reset (p = 8 there): stopped, the old file
    // put back, its identity file gone, started. The reset reaches it and drops the old counts.
    await c.terminate();
    restoreDatabase(c, 'before-reset');
    rmSync(identityFilePath(c.databasePath), { force: true });
    await c.start();
    const restored = await waitForConvergence(nodes);
    expect(restored.totals).toEqual({ kept: 2, p: 3 });
    for (const node of nodes) expect(await pageCount(node, 'p')).toBe(3);
  });

  it('repair a page pushed to the limit, delete pages and prefixes, and refuse callers without an admin token', async () => {
    const nodes = await newCluster().startMesh(2, { env: ENV });
    const [a, b] = nodes;

    // A page broken by an old overflow (a token holder's `by` of 2^53 − 1).
    expect(await increment(a, 'broken', Number.MAX_SAFE_INTEGER)).toBe(Number.MAX_SAFE_INTEGER);
    const refused = await fetch(`${a.url}/api/pages/broken/views`, { method: 'POST', headers: WRITER_HEADERS });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('counter_overflow');
    await waitForConvergence(nodes);

    // Without the admin token: refused, nothing reset.
    const anonymous = await admin(a, 'POST', '/api/admin/pages/broken/reset', undefined, {});
    expect(anonymous.status).toBe(401);
    const writer = await admin(a, 'DELETE', '/api/admin/pages/broken', undefined, WRITER_HEADERS);
    expect(writer.status).toBe(403);
    const prefixWithoutToken = await admin(a, 'POST', '/api/admin/delete-prefix', { prefix: 'b' }, { authorization: 'Bearer not-an-admin-token-at-all' });
    expect(prefixWithoutToken.status).toBe(403);
    expect(await pageCount(b, 'broken')).toBe(Number.MAX_SAFE_INTEGER);

    await resetPage(b, 'broken');
    await eventually(async () => expect(await pageCount(a, 'broken')).toBe(0), { timeoutMs: 15_000 });
    expect(await increment(a, 'broken')).toBe(1);

    // Delete one page, then every page under a prefix (a page named like the prefix would go too).
    for (const page of ['/junk', '/junk/a', '/junk/b/c', '/junkyard', '/keep']) await increment(a, page);
    await waitForConvergence(nodes);
    const deleted = await admin(b, 'DELETE', '/api/admin/pages/%2Fkeep');
    expect(deleted.status).toBe(200);
    expect(await deleted.json()).toMatchObject({ page: '/keep', deleted: true });
    const prefix = await admin(b, 'POST', '/api/admin/delete-prefix', { prefix: '/junk/' });
    expect(prefix.status).toBe(200);
    expect(await prefix.json()).toEqual({ prefix: '/junk/', deleted: 2 });
    const bad = await admin(b, 'POST', '/api/admin/delete-prefix', { prefix: '' });
    expect(bad.status).toBe(400);
    const converged = await waitForConvergence(nodes);
    expect(converged.totals).toEqual({ broken: 1, '/junk': 1, '/junkyard': 1 });
    expect(await totals(a)).toEqual(converged.totals);
  });
});
