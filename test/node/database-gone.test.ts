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
import { TempDirs } from '../helpers/temp-dir.js';

const dirs = new TempDirs();
const nodes = new NodeProcesses();

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
});
