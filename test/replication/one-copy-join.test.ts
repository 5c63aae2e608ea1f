/**
 * One copy on join (issue 18, sync-source.ts), in the deterministic simulation of the bench's
 * scale phase: the real `Replicator` of every node over the memory store, a simulated network
 * with 50 ms links and 1% loss (retransmitted), one virtual clock and one seed. A node joins a
 * settled cluster that holds state; the copies it is sent are the slots it merged over the slots
 * of every kind the cluster holds (one full answer to an empty vector). Then the same with the
 * source it picked crashing in the middle of its answer, withholding it (a send buffer that never
 * drains, the session alive) and lying (a `covered` whose ranges no slot justifies).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SCALE_OPTIONS, ScaleCluster, slotsOfEveryKind, type NodeFaults, type SimNode } from '../../bench/scale-sim.js';
import type { PageName, ReplicaId } from '../../src/ids.js';
import { SOURCE_STALL_MS } from '../../src/replication/sync-source.js';
import type { Store } from '../../src/store/store.js';
import type { Connection, Transport } from '../../src/transport/transport.js';

type Fault = 'none' | 'crash' | 'withhold' | 'lie';

interface JoinRun {
  readonly copies: number;
  readonly converged: boolean;
  /** Virtual ms from the join until the joiner's digest equalled the cluster's. */
  readonly catchUpMs: number;
  /** Virtual ms from the fault until then (the join itself for no fault). */
  readonly afterFaultMs: number;
  /** Slots of the faulty source the joiner merged before the fault. */
  readonly beforeFault: number;
  readonly allSlots: number;
  readonly sources: number;
}

/** Wait this long after catching up, so answers still in flight are counted. */
const TAIL_MS = 3_000;
const JOIN_TIMEOUT_MS = 60_000;
/** Wall time per test: tens of simulated nodes take seconds of CPU each, more on a loaded machine. */
const TIMEOUT_MS = 300_000;
/** Small, so a sync answer of a few thousand slots takes several round trips and a crash can land in its middle. */
const SEND_BUFFER_BYTES = 16 * 1024;

/** Connections towards `joiner` report a full send buffer while `active`: the node's answers (and deltas) to it never go. */
function withholding(joiner: string, active: () => boolean): (transport: Transport) => Transport {
  const wrap = (connection: Connection): Connection =>
    new Proxy(connection, {
      get: (target, property) => {
        if (property === 'bufferedBytes' && target.remoteAddress === joiner) return () => (active() ? Number.MAX_SAFE_INTEGER : target.bufferedBytes());
        const value = Reflect.get(target, property, target) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  return (transport) => ({
    listen: (onConnection) => transport.listen((connection) => onConnection(wrap(connection))),
    dial: async (address) => wrap(await transport.dial(address)),
    close: () => transport.close(),
  });
}

/** While `active`, the store's slot reads come back empty: answers name ranges and send no slot to justify them. */
function lying(active: () => boolean): (store: Store) => Store {
  return (store) =>
    new Proxy(store, {
      get: (target, property) => {
        if (property === 'slotsAfter') return (...args: Parameters<Store['slotsAfter']>) => (active() ? [] : target.slotsAfter(...args));
        const value = Reflect.get(target, property, target) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
}

async function joinRun(nodes: number, seed: number, fault: Fault, pagesPerNode = 30): Promise<JoinRun> {
  // The full mesh at every size, as these runs were written for (bench/scale-sim.ts measures a join in bounded-degree mode).
  const cluster = new ScaleCluster({ ...DEFAULT_SCALE_OPTIONS, nodes, seed, maxSendBufferBytes: SEND_BUFFER_BYTES, boundedDegree: { aboveNodes: Number.POSITIVE_INFINITY } });
  const addresses = Array.from({ length: nodes }, (_, i) => `n${i}:1`);
  const joinerAddress = `n${nodes}:1`;
  /** The peer that misbehaves towards the joiner: the first source it picks. */
  let faulty: number | undefined;
  const isFaulty = (index: number) => () => faulty === index;
  try {
    for (let i = 0; i < nodes; i++) {
      const faults: NodeFaults = fault === 'withhold' ? { transport: withholding(joinerAddress, isFaulty(i)) } : fault === 'lie' ? { store: lying(isFaulty(i)) } : {};
      cluster.boot(i, addresses, faults);
    }
    // Every node booted catching up: the cluster is formed once each has a session to every peer
    // (past 16 nodes: to every peer it dials, bounded degree) and caught up.
    const formed = () => cluster.formed() && cluster.nodes.every((node) => node.replicator.catchUpSource() === undefined);
    expect(await cluster.runUntil(JOIN_TIMEOUT_MS, formed)).toBe(true);
    for (const node of cluster.nodes) {
      void node.store.increment(Array.from({ length: pagesPerNode }, (_, p) => ({ page: `state-${node.index}-${p}` as PageName, by: 1 + p })));
    }
    const reference = cluster.nodes[0]!;
    const settled = () => cluster.nodes.every((node) => node.store.digest() === reference.store.digest());
    expect(await cluster.runUntil(cluster.timers.now() + JOIN_TIMEOUT_MS, settled)).toBe(true);
    const allSlots = slotsOfEveryKind(reference.store);

    const joinAt = cluster.timers.now();
    const joiner = cluster.boot(nodes, addresses);
    const byReplica = new Map<ReplicaId, SimNode>(cluster.nodes.slice(0, nodes).map((node) => [node.store.replicaId, node]));
    const sources = new Set<ReplicaId>();
    const noteSource = () => {
      const source = joiner.replicator.catchUpSource();
      if (source !== undefined) sources.add(source);
    };
    const caughtUp = () => {
      noteSource();
      // The reference may be the source that crashed: any live peer will do, they are settled.
      return joiner.store.digest() === cluster.nodes.find((node) => !node.down)!.store.digest();
    };
    let faultAt = joinAt;
    let beforeFault = 0;
    if (fault !== 'none') {
      // The first source: picked the instant its session opens, before our vector reaches it.
      expect(await cluster.runUntil(joinAt + JOIN_TIMEOUT_MS, () => joiner.replicator.catchUpSource() !== undefined)).toBe(true);
      const first = byReplica.get(joiner.replicator.catchUpSource()!)!;
      sources.add(first.store.replicaId);
      if (fault === 'crash') {
        // Mid-answer: some chunks merged, the rest not sent yet.
        expect(await cluster.runUntil(joinAt + JOIN_TIMEOUT_MS, () => joiner.slotsMerged > 0)).toBe(true);
        beforeFault = joiner.slotsMerged;
        await cluster.crash(first.index);
      } else {
        faulty = first.index;
      }
      faultAt = cluster.timers.now();
    }
    const converged = await cluster.runUntil(joinAt + JOIN_TIMEOUT_MS, caughtUp);
    const doneAt = cluster.timers.now();
    await cluster.run(TAIL_MS);
    if (fault === 'crash') {
      // Every live node still converges with the joiner (nothing it acknowledged is lost).
      const live = cluster.nodes.filter((node) => !node.down);
      expect(live.every((node) => node.store.digest() === joiner.store.digest())).toBe(true);
    }
    return {
      copies: joiner.slotsMerged / allSlots,
      converged,
      catchUpMs: doneAt - joinAt,
      afterFaultMs: doneAt - faultAt,
      beforeFault,
      allSlots,
      sources: sources.size,
    };
  } finally {
    await cluster.stop();
  }
}

describe('one copy on join (simulated cluster: 50 ms links, 1% loss)', () => {
  it('a node joining 40 peers that hold state is sent at most 1.2 copies of it, and converges', async () => {
    const run = await joinRun(40, 7, 'none');
    expect(run.converged).toBe(true);
    expect(run.copies).toBeGreaterThanOrEqual(1);
    expect(run.copies).toBeLessThanOrEqual(1.2);
    expect(run.sources).toBe(1);
  }, TIMEOUT_MS);

  it('a source that crashes in the middle of its answer is replaced: the joiner converges with one more copy at most', async () => {
    const run = await joinRun(24, 11, 'crash');
    expect(run.converged).toBe(true);
    expect(run.beforeFault).toBeGreaterThan(0);
    expect(run.beforeFault).toBeLessThan(run.allSlots);
    expect(run.sources).toBe(2);
    // What the dead source delivered counts, its ranges never came: the next source sends it all.
    expect(run.copies).toBeLessThanOrEqual(1.2 + run.beforeFault / run.allSlots);
  }, TIMEOUT_MS);

  it('a source that withholds its answer (its session alive) is replaced after the stall bound', async () => {
    const run = await joinRun(24, 13, 'withhold');
    expect(run.converged).toBe(true);
    expect(run.sources).toBe(2);
    expect(run.copies).toBeLessThanOrEqual(1.2);
    expect(run.afterFaultMs).toBeGreaterThanOrEqual(SOURCE_STALL_MS);
    expect(run.afterFaultMs).toBeLessThan(SOURCE_STALL_MS + 3_000);
  }, TIMEOUT_MS);

  it('a source whose covered ranges its slots do not justify is replaced: the joiner does not take the lie for caught up', async () => {
    const run = await joinRun(24, 17, 'lie');
    expect(run.converged).toBe(true);
    expect(run.sources).toBe(2);
    expect(run.copies).toBeLessThanOrEqual(1.2);
    expect(run.afterFaultMs).toBeLessThan(SOURCE_STALL_MS + 3_000);
  }, TIMEOUT_MS);

  it('holds for random cluster sizes, seeds and faults of the first source', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 4, max: 12 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom<Fault>('none', 'crash', 'withhold', 'lie'), async (nodes, seed, fault) => {
        const run = await joinRun(nodes, seed, fault, 20);
        expect(run.converged).toBe(true);
        expect(run.copies).toBeLessThanOrEqual(1.2 + run.beforeFault / run.allSlots);
      }),
      { numRuns: 10, seed: 18 },
    );
  }, TIMEOUT_MS);
});
