/**
 * A full disk under a real node process (issue 14), on a real 2 MiB tmpfs: increments are refused
 * with 503 `disk_full` while reads go on, /readyz and /metrics say why, the log says it once;
 * stops and starts on the full disk neither crash nor mint a replica id; freeing space brings the
 * node back by itself. Skips, saying why, where a tmpfs cannot be mounted (not root).
 */
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readIdentityFile } from '../../src/store/identity.js';
import { ensureBuilt } from '../helpers/build.js';
import { pageCount, readiness, tryIncrement } from '../helpers/http-client.js';
import { eventually } from '../helpers/eventually.js';
import { NodeProcesses, TEST_ADMIN_TOKEN, type SpawnedNode } from '../helpers/spawn-node.js';
import { Tmpfs, tmpfsProblem } from '../helpers/tmpfs.js';

const nodes = new NodeProcesses();
const mounts: Tmpfs[] = [];
const problem = tmpfsProblem();
if (problem !== undefined) process.stderr.write(`disk-full tests skipped: ${problem}\n`);

beforeAll(() => ensureBuilt());
afterEach(async () => {
  await nodes.killAll();
  for (const disk of mounts.splice(0)) disk.unmount();
});

async function metric(url: string, line: string): Promise<string | undefined> {
  const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } })).text();
  return text.split('\n').find((l) => l.startsWith(line));
}

function logged(node: SpawnedNode, pattern: RegExp): Array<Record<string, unknown>> {
  return node.logs.filter((entry) => typeof entry.msg === 'string' && pattern.test(entry.msg));
}

describe.skipIf(problem !== undefined)('a node on a full disk', () => {
  it('refuses increments with 503 disk_full, keeps reads, says why, survives restarts without minting, and recovers when space returns', async () => {
    const disk = Tmpfs.mount('2m');
    mounts.push(disk);
    const databasePath = join(disk.dir, 'counters.db');
    const env = { DATABASE_PATH: databasePath };
    let node = await nodes.start({ env });
    const replicaId = ((await (await fetch(`${node.url}/api/cluster`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } })).json()) as { node: { replicaId: string } }).node.replicaId;

    let acked = 0;
    for (let i = 0; i < 20; i++) {
      expect((await tryIncrement(node, 'home')).status).toBe(200);
      acked++;
    }
    disk.fill();
    // Long page names need new pages in the WAL: the disk runs out within a few requests. Every
    // answer is a 200 (counted) or a 503 disk_full, never a 500.
    let refused = 0;
    for (let i = 0; i < 400 && refused < 50; i++) {
      const answer = await tryIncrement(node, `${'long-page-name-'.repeat(15)}${i}`);
      if (answer.status === 200) continue;
      expect(answer).toEqual({ status: 503, code: 'disk_full' });
      refused++;
    }
    expect(refused).toBe(50);
    expect(await tryIncrement(node, 'home')).toEqual({ status: 503, code: 'disk_full' });
    expect(await pageCount(node, 'home')).toBe(acked);
    expect(await readiness(node)).toMatchObject({ status: 503, code: 'disk_full', message: expect.stringMatching(/disk .* is full/) });
    expect(await metric(node.url, 'dsqlite_store_writes_blocked{reason="disk_full"}')).toMatch(/ 1$/);
    expect(logged(node, /is full: increments are refused/)).toHaveLength(1);

    // A clean stop on the full disk still writes its stop record (into the pre-made spare).
    node.signal('SIGTERM');
    expect((await node.exited).code).toBe(0);
    expect(readIdentityFile(`${databasePath}-identity.json`)).toMatchObject({ replicaId, stoppedAtSeq: expect.any(Number) });

    // Starts on the still-full disk: no crash, reads served, the id kept; a kill -9 while the
    // start's commit waits for space changes nothing on disk, so the next start keeps it too.
    for (const stop of ['SIGKILL', 'SIGTERM'] as const) {
      // The stop released the database lock, and with it the lock file's block: full again.
      disk.fill();
      node = await nodes.start({ env });
      expect(logged(node, /^store opened/)).toEqual([expect.objectContaining({ outcome: 'kept', replicaId, pending: 'disk full' })]);
      // The lock is taken all the same, with an empty record (an empty file needs no block).
      expect(logged(node, /^disk full: the database lock/)).toHaveLength(1);
      expect(await pageCount(node, 'home')).toBe(acked);
      expect(await readiness(node)).toMatchObject({ status: 503, code: 'disk_full' });
      expect(await tryIncrement(node, 'home')).toEqual({ status: 503, code: 'disk_full' });
      node.signal(stop);
      await node.exited;
    }

    node = await nodes.start({ env });
    disk.free();
    await eventually(async () => expect(await readiness(node)).toEqual({ status: 200 }), { timeoutMs: 15_000 });
    expect(await tryIncrement(node, 'home')).toEqual({ status: 200 });
    expect(await pageCount(node, 'home')).toBe(acked + 1);
    expect(await metric(node.url, 'dsqlite_store_writes_blocked{reason="disk_full"}')).toMatch(/ 0$/);
    expect(await metric(node.url, 'dsqlite_store_replicas ')).toBe('dsqlite_store_replicas 1');
    expect(logged(node, /^writes accepted again/)).toHaveLength(1);
    node.signal('SIGTERM');
    expect((await node.exited).code).toBe(0);
  });
});
