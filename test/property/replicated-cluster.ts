/**
 * The real replication code under test: one `Replicator` per node over the `MemoryStore` twin and
 * the `SimulatedNetwork`, all on one manual clock and one seeded random source, so a schedule
 * replays exactly. Nodes form a full mesh through static peers, or (`mode: 'bounded'`) the sparse
 * graph of large clusters, with live deltas on the broadcast tree.
 *
 * `variant` plugs in deliberately broken versions, to show the property catches them:
 * - `advance-over-gap`: the store advances the version vector over any range, gap or not;
 * - `keep-identity-after-restore`: a restored copy comes back with an identity file that matches
 *   it (as if the file were backed up with the database), so the node keeps its old replica id;
 * - `drop-first-delivery`: bounded mode whose duplicate suppression records a delta before it
 *   checks it, so every delivery looks like a duplicate and is dropped.
 */
import type { Slot } from '../../src/crdt/g-counter.js';
import type { SeqRange } from '../../src/crdt/version-vector.js';
import type { PageName, ReplicaId } from '../../src/ids.js';
import type { Log } from '../../src/log.js';
import { Replicator } from '../../src/replication/replicator.js';
import { MemoryDisk, MemoryStore, type MemoryDatabaseSnapshot } from '../../src/store/memory-store.js';
import type { Store } from '../../src/store/store.js';
import { SimulatedNetwork } from '../../src/transport/simulated-network.js';
import { ManualTimers } from '../helpers/manual-timers.js';
import { seededRandom, type SeededRandom } from '../helpers/seeded-random.js';
import type { ClusterUnderTest, IncrementStep, Page } from './schedule.js';

export type Variant = 'correct' | 'advance-over-gap' | 'keep-identity-after-restore' | 'drop-first-delivery';

/**
 * `mesh`: every node dials every peer (the mode of clusters up to 16 nodes). `bounded`: the
 * bounded-degree mode of large clusters forced at this size (active-view.ts, broadcast-tree.ts):
 * each node dials 2 peers picked at random, and live deltas travel on the broadcast tree.
 * `drop-first-delivery` (bounded only) is the tree with a broken duplicate suppression.
 */
export type Mode = 'mesh' | 'bounded';
/**
 * Peers each node dials in `bounded` mode: at ≤ 5 nodes a 2-out graph is always connected. No
 * node refuses one as `full` here (the degree cap is above the node count): the property tests
 * the tree; the scale simulation the cap.
 */
const BOUNDED_DIAL = 2;

export interface ClusterOptions {
  readonly mode?: Mode;
  /** 0: no anti-entropy (the delivery property: live deltas alone must reach every node). */
  readonly antiEntropyIntervalMs?: number;
  /** The send bound past which deltas are skipped; default SEND_BUFFER_BYTES (gaps on purpose). */
  readonly maxSendBufferBytes?: number;
}

const HEARTBEAT_INTERVAL_MS = 1_000;
const HEARTBEAT_TIMEOUT_MS = 5_000;
const ANTI_ENTROPY_INTERVAL_MS = 2_000;
/** Virtual time per settling round, and rounds before giving up. */
const SETTLE_ROUND_MS = 1_000;
const SETTLE_MAX_ROUNDS = 120;
/** Flushes without a frame to deliver while a sync answer is still being written. */
const MAX_IDLE_FLUSHES = 1_000;

const quiet: Log = { debug() {}, info() {}, warn() {}, error() {} };

interface SimNode {
  readonly address: string;
  readonly disk: MemoryDisk;
  readonly snapshots: MemoryDatabaseSnapshot[];
  store: MemoryStore | undefined;
  replicator: Replicator | undefined;
}

/** Lets microtask-driven work (dials, sync answers, group commits) run to completion. */
async function flush(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export class ReplicatedCluster implements ClusterUnderTest {
  private readonly network = new SimulatedNetwork();
  private readonly timers = new ManualTimers();
  private readonly random: SeededRandom;
  private readonly nodes: SimNode[];
  private coalescedByStopped = 0;
  /** Ground truth for the vv invariant: per replica, per seq, the slots that commit wrote (epoch, count). */
  /** replica → commit seq → slot key (kind:t:page, kind 0 the total) → what the commit wrote. */
  private readonly history = new Map<ReplicaId, Map<number, Map<string, { page: PageName; epoch: number; count: number }>>>();

  /**
   * `peers: 'one-way'`: node i lists only the nodes after it, so of each pair one side alone can
   * dial — the one-side dialling rule (the lower replica id redials, the higher one waits) must
   * still reconnect every pair whichever of the two that is.
   */
  constructor(
    count: number,
    seed: number,
    private readonly variant: Variant = 'correct',
    private readonly peers: 'all' | 'one-way' = 'all',
    private readonly clusterOptions: ClusterOptions = {},
  ) {
    this.random = seededRandom(seed);
    this.nodes = Array.from({ length: count }, (_, i) => ({ address: `node${i}:1`, disk: new MemoryDisk(), snapshots: [], store: undefined, replicator: undefined }));
  }

  /** Live deltas merged in outboxes (sync-sender.ts) by replicators since start, stopped ones included. */
  coalesced(): number {
    return this.nodes.reduce((sum, node) => sum + (node.replicator?.degree().coalesced ?? 0), this.coalescedByStopped);
  }

  async start(): Promise<this> {
    for (let i = 0; i < this.nodes.length; i++) this.boot(i);
    await this.flow(Number.POSITIVE_INFINITY);
    return this;
  }

  private boot(index: number): void {
    const node = this.nodes[index]!;
    const store = MemoryStore.open(node.disk, { random: (n) => this.random.bytes(n) });
    store.onCommit((delta) => {
      let commits = this.history.get(delta.range.replica);
      if (commits === undefined) this.history.set(delta.range.replica, (commits = new Map()));
      const slots = commits.get(delta.range.upTo) ?? new Map<string, { page: PageName; epoch: number; count: number }>();
      for (const slot of delta.slots) slots.set(slotKey(slot), { page: slot.page, epoch: slot.epoch ?? 0, count: slot.count });
      commits.set(delta.range.upTo, slots);
    });
    const replicator = new Replicator({
      store: this.variant === 'advance-over-gap' ? advancingOverGaps(store) : store,
      transport: this.network.transport(node.address),
      cluster: 'property',
      secret: 'secret',
      node: { name: `node${index}`, version: 'test', startedAt: this.timers.now() },
      log: quiet,
      timers: this.timers,
      random: () => this.random.next(),
      randomBytes: (n) => this.random.bytes(n),
      heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
      heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS,
      antiEntropyIntervalMs: this.clusterOptions.antiEntropyIntervalMs ?? ANTI_ENTROPY_INTERVAL_MS,
      reconnect: { baseMs: 100, maxMs: 2_000 },
      // A small send bound, so live deltas get skipped behind frames still in flight: on an
      // authenticated session that is how gaps arise (a lost or reordered frame ends the session).
      maxSendBufferBytes: this.clusterOptions.maxSendBufferBytes ?? SEND_BUFFER_BYTES,
      ...(this.clusterOptions.mode === 'bounded' || this.variant === 'drop-first-delivery'
        ? { boundedDegree: { aboveNodes: 0, dial: BOUNDED_DIAL, maxDegree: this.nodes.length + BOUNDED_DIAL, dropFirstDelivery: this.variant === 'drop-first-delivery' } }
        : {}),
    });
    replicator.start();
    replicator.setPeers(this.nodes.filter((other, i) => other !== node && (this.peers === 'all' || i > index)).map((other) => other.address));
    node.store = store;
    node.replicator = replicator;
  }

  isUp(index: number): boolean {
    return this.nodes[index]!.store !== undefined;
  }

  async increment(index: number, page: Page, by: number): Promise<number | undefined> {
    const [total] = await this.incrementMany([{ node: index, page, by }]);
    return total;
  }

  async incrementMany(increments: readonly IncrementStep[]): Promise<Array<number | undefined>> {
    const results = await Promise.all(
      increments.map(async ({ node, page, by }) => {
        const store = this.nodes[node]!.store;
        if (store === undefined) return undefined;
        const [result] = await store.increment([{ page: page as PageName, by, visitor: this.visitor() }]);
        return result?.count;
      }),
    );
    await flush();
    return results;
  }

  /** Resets `page` at a live node (one local commit); returns the new epoch, undefined when down. */
  async reset(index: number, page: Page): Promise<number | undefined> {
    const store = this.nodes[index]!.store;
    if (store === undefined) return undefined;
    const [result] = store.reset([page as PageName]);
    await flush();
    return result?.epoch;
  }

  /** Counts at a live node and reports the page's epoch its increment counted in (undefined: down). */
  async incrementInEpoch(index: number, page: Page, by: number): Promise<number | undefined> {
    const store = this.nodes[index]!.store;
    if (store === undefined) return undefined;
    await store.increment([{ page: page as PageName, by, visitor: this.visitor() }]);
    // Read at once, before any merge can run: the own slot now holds the increment.
    const epoch = store.pageSlots(page as PageName).find((slot) => slot.replica === store.replicaId)?.epoch ?? 0;
    await flush();
    return epoch;
  }

  /** The page's epoch at a live node. */
  pageEpoch(index: number, page: Page): number {
    return this.nodes[index]!.store!.pageSlots(page as PageName)[0]?.epoch ?? 0;
  }

  inFlight(): number {
    return this.network.pending().length;
  }

  async deliver(index: number): Promise<void> {
    const event = this.network.pending()[index];
    if (event !== undefined) this.network.deliver(event.id);
    await flush();
  }

  /** Delivers up to `count` events oldest first, letting the work they start run in between. */
  async flow(count: number): Promise<void> {
    let idle = 0;
    for (let delivered = 0; delivered < count && idle < MAX_IDLE_FLUSHES; ) {
      await flush();
      const event = this.network.pending()[0];
      if (event === undefined) {
        if (!this.anyBusy()) return;
        idle += 1;
      } else {
        idle = 0;
        this.network.deliver(event.id);
        delivered += 1;
      }
    }
  }

  drop(index: number): void {
    const event = this.network.pending()[index];
    if (event !== undefined) this.network.drop(event.id);
  }

  duplicate(index: number): void {
    const event = this.network.pending()[index];
    if (event !== undefined) this.network.duplicate(event.id);
  }

  partition(groupA: readonly number[], groupB: readonly number[]): void {
    this.network.partition(
      groupA.map((i) => this.nodes[i]!.address),
      groupB.map((i) => this.nodes[i]!.address),
    );
  }

  heal(): void {
    this.network.heal();
  }

  async tick(ms: number): Promise<void> {
    // In steps of a heartbeat, so timers interleave with the work they start.
    for (let passed = 0; passed < ms; passed += HEARTBEAT_INTERVAL_MS) {
      this.timers.advance(Math.min(HEARTBEAT_INTERVAL_MS, ms - passed));
      await flush();
    }
  }

  async crash(index: number): Promise<void> {
    const node = this.nodes[index]!;
    if (node.store === undefined) return;
    this.network.crash(node.address);
    this.coalescedByStopped += node.replicator?.degree().coalesced ?? 0;
    await node.replicator!.stop();
    node.store.kill();
    node.store = undefined;
    node.replicator = undefined;
    await flush();
  }

  async stop(index: number): Promise<void> {
    const node = this.nodes[index]!;
    if (node.store === undefined) return;
    this.coalescedByStopped += node.replicator?.degree().coalesced ?? 0;
    await node.replicator!.stop();
    await node.store.close();
    node.store = undefined;
    node.replicator = undefined;
    await flush();
  }

  async restart(index: number): Promise<void> {
    if (this.isUp(index)) return;
    this.boot(index);
    await flush();
  }

  snapshot(index: number): void {
    const node = this.nodes[index]!;
    if (node.store !== undefined) node.snapshots.push(node.disk.snapshotDatabase());
  }

  async restoreStale(index: number, pick: number): Promise<Map<string, number> | undefined> {
    const node = this.nodes[index]!;
    if (node.snapshots.length === 0) return undefined;
    const snapshot = node.snapshots[Math.min(node.snapshots.length - 1, Math.floor(pick * node.snapshots.length))]!;
    // The machine died: what it had on the wire dies with it.
    for (const event of this.network.pending()) if (event.from === node.address) this.network.drop(event.id);
    const lost = new Map<string, number>();
    for (const [page, slots] of node.disk.database.state) {
      for (const [replica, value] of slots) {
        let elsewhere = snapshot.database.state.get(page)?.get(replica)?.count ?? 0;
        for (const other of this.nodes) {
          if (other !== node) elsewhere = Math.max(elsewhere, other.disk.database.state.get(page)?.get(replica)?.count ?? 0);
        }
        if (value.count > elsewhere) lost.set(page, (lost.get(page) ?? 0) + value.count - elsewhere);
      }
    }
    await this.crash(index);
    node.disk.restoreDatabase(snapshot);
    if (this.variant === 'keep-identity-after-restore') {
      // The bug this variant models: an identity file that travelled with the copy.
      const identity = snapshot.database.identity;
      if (identity !== undefined) {
        const seq = snapshot.database.vv.get(identity.replicaId) ?? 0;
        node.disk.writeIdentityFile({ ...identity, stoppedAtSeq: seq } as Parameters<MemoryDisk['writeIdentityFile']>[0]);
      }
    }
    await this.restart(index);
    return lost;
  }

  /** The page's slots at a live node (what a count answer is made of). */
  slots(index: number, page: Page): Slot[] {
    return this.nodes[index]!.store!.pageSlots(page as PageName);
  }

  totals(index: number): Map<string, number> {
    const store = this.nodes[index]!.store!;
    return new Map(store.listPages({ limit: 1_000 }).map((p) => [p.page, p.count]));
  }

  async settle(): Promise<void> {
    this.network.heal();
    for (let i = 0; i < this.nodes.length; i++) await this.restart(i);
    for (let round = 0; round < SETTLE_MAX_ROUNDS; round++) {
      await this.flow(Number.POSITIVE_INFINITY);
      if (round > 2 && this.converged()) return;
      this.timers.advance(SETTLE_ROUND_MS);
      await flush();
    }
  }

  /** A visitor of a small population, so sketches see repeats and new registers alike. */
  private visitor(): { index: number; rank: number } {
    const bytes = this.random.bytes(2);
    return { index: (bytes[0] ?? 0) % 64, rank: 1 + ((bytes[1] ?? 0) % 8) };
  }

  /**
   * After settling: every node holds the same series slots (buckets and registers), and on each
   * its page's hour buckets and day buckets each sum to the page's total.
   */
  checkSettled(): string | undefined {
    let first: string | undefined;
    for (const [index, node] of this.nodes.entries()) {
      const store = node.store;
      if (store === undefined) continue;
      const rows: string[] = [];
      const sums = new Map<string, number>();
      // Every replica whose slots are held, not only those in the vector: settling ends once the
      // digests agree, and a vector may still lag behind slots that arrived without a range.
      for (const replica of store.highestSlotSeqs().keys()) {
        for (const slot of store.slotsAfter(replica, { seq: 0 }, 1_000_000)) {
          if (slot.kind === undefined) continue;
          rows.push(`${replica}|${slotKey(slot)}=${slot.count}@${slot.epoch ?? 0}`);
          if (slot.kind !== 3) sums.set(`${slot.kind}:${slot.page}`, (sums.get(`${slot.kind}:${slot.page}`) ?? 0) + slot.count);
        }
      }
      for (const { page, count } of store.listPages({ limit: 1_000_000 })) {
        for (const kind of [1, 2]) {
          const sum = sums.get(`${kind}:${page}`) ?? 0;
          if (sum !== count) return `node ${index}: the ${kind === 1 ? 'hour' : 'day'} buckets of ${page} sum to ${sum}, its total is ${count}`;
        }
      }
      const text = rows.sort().join('\n');
      if (first === undefined) first = text;
      else if (text !== first) return `node ${index} holds other series slots than the first live node`;
      for (const point of store.series({ step: 'day', from: 0, to: 1 })) if (point.views !== 0) return 'a view landed on day 0';
    }
    return undefined;
  }

  /** True when every live node shows the same digest. */
  digestsEqual(): boolean {
    return new Set(this.nodes.map((node) => node.store?.digest())).size === 1;
  }

  private converged(): boolean {
    const digests = new Set(this.nodes.map((node) => node.store!.digest()));
    return digests.size === 1 && this.inFlight() === 0;
  }

  private anyBusy(): boolean {
    return this.nodes.some((node) => node.replicator?.busy() ?? false);
  }

  /**
   * docs/design.md, "Invariants": if vv[R] = s at a node, every slot of R there is at least what R had written by
   * its commit s, in the order (epoch, count): a page at a higher epoch holds every older slot
   * (the reset dropped it).
   */
  checkInvariant(): string | undefined {
    for (const [index, node] of this.nodes.entries()) {
      const store = node.store;
      if (store === undefined) continue;
      for (const [replica, seq] of store.versionVector()) {
        const commits = this.history.get(replica);
        if (commits === undefined) continue;
        // Slots of every kind (totals, buckets, registers: src/crdt/series.ts) keep the invariant.
        const held = new Map(store.slotsAfter(replica, { seq: 0 }, 1_000_000).map((slot) => [slotKey(slot), slot.count]));
        for (const [commitSeq, slots] of commits) {
          if (commitSeq > seq) continue;
          for (const [key, { page, epoch, count }] of slots) {
            const pageEpoch = store.pageSlots(page)[0]?.epoch ?? 0;
            if (pageEpoch > epoch) continue;
            if (pageEpoch < epoch || (held.get(key) ?? 0) < count) {
              return `node ${index} has vv[${replica.slice(0, 8)}]=${seq} but ${key}=${held.get(key) ?? 0} at epoch ${pageEpoch} for it, below the ${count} at epoch ${epoch} of its commit ${commitSeq}`;
            }
          }
        }
      }
    }
    return undefined;
  }

  async dispose(): Promise<void> {
    for (const node of this.nodes) {
      this.coalescedByStopped += node.replicator?.degree().coalesced ?? 0;
      await node.replicator?.stop();
      node.store?.kill();
      node.store = undefined;
      node.replicator = undefined;
    }
  }
}

/**
 * Bytes in flight on a link past which a node skips live deltas to it (the real bound is 8 MiB):
 * below one delta frame, so a second delta behind one still in flight is skipped (protocol 4 keeps
 * a quiet link empty, so heartbeats and vectors no longer fill the buffer for it).
 */
const SEND_BUFFER_BYTES = 40;

/** The `advance-over-gap` bug: every range is treated as if it started at the receiver's entry. */
function advancingOverGaps(store: Store): Store {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'merge') {
        return (slots: readonly Slot[], ranges: readonly SeqRange[]) =>
          target.merge(
            slots,
            ranges.map((range) => ({ ...range, after: 0 })),
          );
      }
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** A slot's key within its replica: kind (0 the total), t and page. */
function slotKey(slot: { readonly page: string; readonly kind?: number; readonly t?: number }): string {
  return `${slot.kind ?? 0}:${slot.t ?? 0}:${slot.page}`;
}
