/**
 * A peer's proof that this node's replica went back in time (its vector holds a higher seq of our
 * kept id) arriving while a large local commit is spread over loop turns (issue 14): the rotation
 * waits for the commit, the honest peer is not refused. Real SQLite stores, the simulated network.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import type { PageName } from '../../src/ids.js';
import type { Log } from '../../src/log.js';
import { Replicator } from '../../src/replication/replicator.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite-store.js';
import { SimulatedNetwork } from '../../src/transport/simulated-network.js';

const dirs: string[] = [];
const closing: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const close of closing.splice(0).reverse()) await close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function store(name: string): Promise<{ store: SqliteStore; path: string }> {
  const dir = mkdtempSync(join(tmpdir(), `rotation-${name}-`));
  dirs.push(dir);
  const path = join(dir, 'counters.db');
  return { store: await openSqliteStore({ path, writeHealthIntervalMs: 0, pruneIntervalMs: 0 }), path };
}

it('mints after a spread commit ends when a peer proves our replica went back in time during it, without refusing the peer', async () => {
  // A: an id kept from its last (clean) run, at seq 1.
  const first = await store('a');
  await first.store.increment([{ page: 'home' as PageName, by: 1 }]);
  await first.store.close();
  const a = await openSqliteStore({ path: first.path, writeHealthIntervalMs: 0, pruneIntervalMs: 0 });
  closing.push(() => a.close());
  expect(a.identity.outcome).toBe('kept');
  const old = a.replicaId;
  // B holds seq 5 of A's id: A's file went back in time.
  const { store: b } = await store('b');
  closing.push(() => b.close());
  b.merge([{ page: 'home' as PageName, replica: old, count: 5, seq: 5 }], [{ replica: old, after: 0, upTo: 5 }]);

  const errors: string[] = [];
  const log: Log = { debug() {}, info() {}, warn() {}, error: (_object, message) => errors.push(message ?? '') };
  const network = new SimulatedNetwork();
  const replicator = (s: SqliteStore, address: string, name: string, logTo: Log) =>
    new Replicator({ store: s, transport: network.transport(address), cluster: 'c', secret: 'secret', node: { name, version: 'test', startedAt: 0 }, log: logTo, heartbeatIntervalMs: 0, antiEntropyIntervalMs: 0 });
  const ra = replicator(a, 'a:1', 'a', log);
  const rb = replicator(b, 'b:1', 'b', { debug() {}, info() {}, warn() {}, error() {} });
  closing.push(() => rb.stop(), () => ra.stop());

  const counted = a.increment(Array.from({ length: 5_000 }, (_, i) => ({ page: `/bulk/${i}` as PageName, by: 1 })));
  let held = a.writesHeld();
  for (let i = 0; i < 10_000 && held === undefined; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    held = a.writesHeld();
  }
  expect(held).toBeDefined();
  ra.start();
  rb.start();
  rb.setPeers(['a:1']);
  // The handshake and both vectors, while A's commit is open (dials and answers take turns).
  let turns = 0;
  while (a.writesHeld() !== undefined && turns++ < 100_000) {
    network.runUntilQuiet();
    if (a.writesHeld() !== undefined) expect(a.replicaId).toBe(old);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  expect(network.stats().framesDelivered).toBeGreaterThan(4);
  await held;
  await counted;
  expect(a.replicaId).not.toBe(old);
  expect(a.identity.outcome).toBe('minted');
  expect(errors).toEqual([]);
});
