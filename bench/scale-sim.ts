/**
 * The scale simulation (the `scale` phase, issue 18): N nodes of the real replication code — one
 * `Replicator` each over the `MemoryStore` twin — on a `SimulatedNetwork` with timed links (one-way
 * latency, loss as TCP retransmission), every timer on one `VirtualTimers` clock and every random
 * choice from one seed, so a run replays exactly and 30 simulated seconds of 100 nodes take
 * seconds to minutes of CPU, not 30 s of wall time per node.
 *
 * What it reports, per node count: frames and bytes per node per second at rest (by message
 * type), per increment, the time until every node holds an increment (p50/p99 over increments),
 * what a node joining a cluster that holds state receives, and peer degree.
 *
 * The driver moves the clock instant by instant (`runDue`); between instants it lets immediates
 * and microtasks run, so group commits (setImmediate), dials and sync answers (promises) settle
 * before the next instant — at the same virtual time.
 */
import type { Slot } from '../src/crdt/g-counter.js';
import type { SeqRange } from '../src/crdt/version-vector.js';
import type { PageName } from '../src/ids.js';
import type { Log } from '../src/log.js';
import { noMetrics, type ReplicationMetrics } from '../src/replication/replication-metrics.js';
import { Replicator, type ReplicatorOptions } from '../src/replication/replicator.js';
import { MemoryDisk, MemoryStore } from '../src/store/memory-store.js';
import type { SlotCursor, Store } from '../src/store/store.js';
import { SimulatedNetwork } from '../src/transport/simulated-network.js';
import type { Transport } from '../src/transport/transport.js';
import { VirtualTimers } from '../src/virtual-timers.js';
import { round, seededRandom, summarize, type Summary } from './stats.js';

export interface ScaleOptions {
  readonly nodes: number;
  readonly seed: number;
  /** One-way latency of every link, ms; each frame gets ± `jitterMs` on top. */
  readonly latencyMs: number;
  readonly jitterMs: number;
  /** Chance a frame is lost once (and retransmitted after `retransmitMs`). */
  readonly lossRate: number;
  readonly retransmitMs: number;
  /** Virtual time the at-rest window lasts (longer than presence's renewal: 15 s in the mesh, SPARSE_RENEW_MS = 120 s past 16 nodes). */
  readonly restMs: number;
  /** Increments timed, one every `incrementGapMs` at a random node. */
  readonly increments: number;
  readonly incrementGapMs: number;
  /** Pages each writing node writes before a new node joins (the state it then receives). */
  readonly joinPagesPerNode: number;
  /**
   * Nodes that write those pages (spread evenly over the cluster; undefined: every node), one
   * every `joinWriteGapMs` of virtual time (0: all at one instant). Every node holds the whole
   * state, so the simulation holds it N times (~750 B of heap per slot held): at 1,000 nodes the
   * state must be a few hundred pages, and deltas written at one instant are each flooded over
   * every eager link at once (at 300 nodes, 300 at one instant were 340,000 frames in flight).
   */
  readonly joinWriters?: number;
  readonly joinWriteGapMs?: number;
  /** Gives up waiting for a condition after this much virtual time. */
  readonly timeoutMs: number;
  /** Each node's send-buffer bound (ReplicatorOptions.maxSendBufferBytes); undefined: the default 8 MiB. */
  readonly maxSendBufferBytes?: number;
  /** ReplicatorOptions.coalesceAboveBytes (Infinity: no coalescing); undefined: the default. */
  readonly coalesceAboveBytes?: number;
  /** ReplicatorOptions.boundedDegree (e.g. `{ aboveNodes: Infinity }`: the full mesh at any size); undefined: the default, bounded past 16 nodes. */
  readonly boundedDegree?: ReplicatorOptions['boundedDegree'];
}

export const DEFAULT_SCALE_OPTIONS: Omit<ScaleOptions, 'nodes'> = {
  seed: 42,
  latencyMs: 50,
  jitterMs: 5,
  lossRate: 0.01,
  retransmitMs: 200,
  restMs: 130_000,
  increments: 50,
  incrementGapMs: 200,
  joinPagesPerNode: 20,
  timeoutMs: 60_000,
};

export interface ScalePoint {
  readonly nodes: number;
  readonly latencyMs: number;
  readonly lossRate: number;
  /** Virtual ms until every node had a session to every peer and equal digests (undefined: not within the timeout). */
  readonly meshFormedMs: number | undefined;
  readonly framesPerNodeToForm: number;
  readonly rest: {
    readonly framesPerNodePerSecond: number;
    readonly bytesPerNodePerSecond: number;
    /** Frames per node per second by message type (what the node sent). */
    readonly framesByType: Readonly<Record<string, number>>;
    readonly bytesByType: Readonly<Record<string, number>>;
  };
  readonly increment: {
    readonly count: number;
    /** Bytes and frames sent per node per increment, over the at-rest rate. */
    readonly bytesPerNode: number;
    readonly framesPerNode: number;
    /** Per increment, virtual ms from its commit until the last node held it. */
    readonly everyNodeMs: Summary;
    /** Per (increment, node) pair, virtual ms from commit until that node held it. */
    readonly perNodeMs: Summary;
    /** Increments some node never got within the timeout. */
    readonly missing: number;
  };
  readonly join: {
    /** Page-total slots the cluster held when the node joined. */
    readonly stateSlots: number;
    /** Slots of every kind (totals, hour and day buckets, visitor registers) it held: one copy of the state. */
    readonly allSlots: number;
    /** Slots the joiner merged, and bytes it received, until it matched the cluster and 3 s more (answers still in flight). */
    readonly slotsReceived: number;
    readonly bytesReceived: number;
    /** slotsReceived / allSlots: copies of the state the joiner was sent. */
    readonly copies: number;
    readonly catchUpMs: number | undefined;
  };
  readonly degree: { readonly mean: number; readonly max: number };
  /**
   * Bounded-degree mode (past 16 nodes), over the increments: deltas taken from the broadcast
   * tree, duplicates dropped, grafts sent, and eager links per node at the end (all 0 in the mesh).
   */
  readonly tree: { readonly deltasReceived: number; readonly duplicates: number; readonly grafts: number; readonly eagerMean: number };
  /** Wall-clock time the simulation took, ms. */
  readonly wallMs: number;
}

/** Virtual ms between checks of a condition over every node (formed, settled): the figures they give are this coarse. */
const POLL_MS = 50;

/** How long after catching up a joiner's received traffic is still counted (answers in flight). */
const JOIN_TAIL_MS = 3_000;

const quiet: Log = { debug() {}, info() {}, warn() {}, error() {} };

/** Frames sent per message type, and the last peer count reported. */
class CountingMetrics implements ReplicationMetrics {
  readonly frames = new Map<string, number>();
  readonly bytes = new Map<string, number>();
  peers = 0;
  frameSent(type: string, bytes: number): void {
    this.frames.set(type, (this.frames.get(type) ?? 0) + 1);
    this.bytes.set(type, (this.bytes.get(type) ?? 0) + bytes);
  }
  peersConnected(count: number): void {
    this.peers = count;
  }
  frameReceived = noMetrics.frameReceived;
  deltaSkipped = noMetrics.deltaSkipped;
  syncRound = noMetrics.syncRound;
  merged = noMetrics.merged;
  badFrame = noMetrics.badFrame;
  peerRejected = noMetrics.peerRejected;
  heartbeatTimeout = noMetrics.heartbeatTimeout;
  identityMinted = noMetrics.identityMinted;
  peerFailure = noMetrics.peerFailure;
  replicaRefused = noMetrics.replicaRefused;
  pageSaturated = noMetrics.pageSaturated;
  mergeDropped = noMetrics.mergeDropped;
  presenceIgnored = noMetrics.presenceIgnored;
}

export interface SimNode {
  readonly index: number;
  readonly address: string;
  readonly store: MemoryStore;
  readonly replicator: Replicator;
  readonly metrics: CountingMetrics;
  /** Slots merged from peers. */
  slotsMerged: number;
  /** Crashed (`ScaleCluster.crash`): its replicator stopped, its store gone. */
  down: boolean;
}

/** Faults a test plugs into one node (test/replication/one-copy-join.test.ts): the real code, a misbehaving environment. */
export interface NodeFaults {
  /** The store as the replicator sees it (e.g. one whose reads come back empty: a node that lies in its answers). */
  readonly store?: (store: Store) => Store;
  /** The transport as the replicator sees it (e.g. connections that report a full send buffer: a node that withholds). */
  readonly transport?: (transport: Transport) => Transport;
}

/** Lets immediates (group commits) and the microtasks they start run. */
async function settleMicrotasks(): Promise<void> {
  for (let i = 0; i < 2; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export class ScaleCluster {
  readonly timers = new VirtualTimers();
  readonly network: SimulatedNetwork;
  readonly nodes: SimNode[] = [];
  private readonly random: () => number;
  /** Per merged page: called with the node index (arrival hooks of the driver). */
  onMerged: ((node: SimNode, slots: readonly Slot[]) => void) | undefined;

  constructor(private readonly options: ScaleOptions) {
    this.random = seededRandom(options.seed);
    this.network = new SimulatedNetwork({
      links: {
        timers: this.timers,
        latencyMs: () => options.latencyMs + (this.random() * 2 - 1) * options.jitterMs,
        lossRate: options.lossRate,
        retransmitMs: options.retransmitMs,
        random: this.random,
      },
    });
  }

  private bytes(size: number): Uint8Array {
    const out = new Uint8Array(size);
    for (let i = 0; i < size; i++) out[i] = Math.floor(this.random() * 256);
    return out;
  }

  /** Boots node `index` with every other address (of `peers`) as its static peers. */
  boot(index: number, peers: readonly string[], faults: NodeFaults = {}): SimNode {
    const address = `n${index}:1`;
    const store = MemoryStore.open(new MemoryDisk(), { random: (n) => this.bytes(n) });
    const metrics = new CountingMetrics();
    const node: SimNode = { index, address, store, replicator: undefined as unknown as Replicator, metrics, slotsMerged: 0, down: false };
    const transport = this.network.transport(address);
    const observed = this.observed(store, node);
    const replicator = new Replicator({
      store: faults.store?.(observed) ?? observed,
      transport: faults.transport?.(transport) ?? transport,
      cluster: 'scale',
      secret: 'scale-simulation-secret-of-32-characters',
      node: { name: `n${index}`, version: 'sim', startedAt: this.timers.now(), address },
      log: quiet,
      metrics,
      timers: this.timers,
      random: this.random,
      randomBytes: (n) => this.bytes(n),
      ...(this.options.maxSendBufferBytes !== undefined ? { maxSendBufferBytes: this.options.maxSendBufferBytes } : {}),
      ...(this.options.coalesceAboveBytes !== undefined ? { coalesceAboveBytes: this.options.coalesceAboveBytes } : {}),
      ...(this.options.boundedDegree !== undefined ? { boundedDegree: this.options.boundedDegree } : {}),
    });
    (node as { replicator: Replicator }).replicator = replicator;
    replicator.start();
    replicator.setPeers(peers.filter((peer) => peer !== address));
    this.nodes[index] = node;
    return node;
  }

  /** The store as the replicator sees it, reporting every merge to the driver. */
  private observed(store: MemoryStore, node: SimNode): Store {
    return new Proxy(store, {
      get: (target, property, receiver) => {
        if (property === 'merge') {
          return (slots: readonly Slot[], ranges: readonly SeqRange[]) => {
            const result = target.merge(slots, ranges);
            node.slotsMerged += slots.length;
            this.onMerged?.(node, slots);
            return result;
          };
        }
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  /**
   * Runs the clock to `until` (virtual ms), or until `done()` holds after an instant. Returns
   * whether `done` held. `pollMs` > 0 asks `done` at most once per that much virtual time (a
   * condition over every node, asked after each instant, costs O(N) per instant).
   */
  async runUntil(until: number, done?: () => boolean, pollMs = 0): Promise<boolean> {
    await settleMicrotasks();
    if (done?.() === true) return true;
    let askedAt = this.timers.now();
    while (this.timers.runDue(until)) {
      await settleMicrotasks();
      if (pollMs > 0 && this.timers.now() - askedAt < pollMs) continue;
      askedAt = this.timers.now();
      if (done?.() === true) return true;
    }
    return done?.() ?? false;
  }

  async run(ms: number): Promise<void> {
    await this.runUntil(this.timers.now() + ms);
  }

  /** Every live node is connected: to every peer in the full mesh, to every peer it dials in bounded-degree mode (past 16 nodes). */
  formed(): boolean {
    const n = this.nodes.filter((node) => !node.down).length;
    return this.nodes.every(
      (node) =>
        node.down ||
        (node.replicator.degree().bounded ? node.replicator.dialTargets().every((t) => t.state === 'connected' || t.state === 'covered') : node.metrics.peers === n - 1),
    );
  }

  pick(): number {
    return Math.floor(this.random() * this.nodes.length);
  }

  /** Kills node `index` as a crashed process: its links break, nothing more comes from it. */
  async crash(index: number): Promise<void> {
    const node = this.nodes[index]!;
    if (node.down) return;
    node.down = true;
    this.network.crash(node.address);
    await node.replicator.stop();
    node.store.kill();
  }

  async stop(): Promise<void> {
    for (const node of this.nodes) {
      if (node.down) continue;
      await node.replicator.stop();
      node.store.kill();
    }
  }
}

/** Every slot the store holds, of every kind: what one full sync answer to an empty vector sends. */
export function slotsOfEveryKind(store: Store): number {
  let count = 0;
  for (const replica of store.highestSlotSeqs().keys()) {
    for (let cursor: SlotCursor = { seq: 0 }; ; ) {
      const rows = store.slotsAfter(replica, cursor, 10_000);
      count += rows.length;
      const last = rows[rows.length - 1];
      if (rows.length < 10_000 || last === undefined) break;
      cursor = { seq: last.seq, page: last.page, kind: last.kind ?? 0, t: last.t ?? 0 };
    }
  }
  return count;
}

function sentTotals(cluster: ScaleCluster): { frames: number; bytes: number; byType: Map<string, { frames: number; bytes: number }> } {
  let frames = 0;
  let bytes = 0;
  const byType = new Map<string, { frames: number; bytes: number }>();
  for (const node of cluster.nodes) {
    const traffic = cluster.network.trafficOf(node.address);
    frames += traffic.framesSent;
    bytes += traffic.bytesSent;
    for (const [type, count] of node.metrics.frames) {
      const entry = byType.get(type) ?? { frames: 0, bytes: 0 };
      entry.frames += count;
      entry.bytes += node.metrics.bytes.get(type) ?? 0;
      byType.set(type, entry);
    }
  }
  return { frames, bytes, byType };
}

type Totals = ReturnType<typeof sentTotals>;

/**
 * Message types an increment makes nodes send: its delta, the tree's announcements, grafts and
 * prunes, and anti-entropy's rounds over what was in flight. Presence, heartbeats and handshakes
 * are left out rather than subtracted at the rest rate: presence renewals come in bursts (every
 * SPARSE_RENEW_MS past 16 nodes), so an increment window that missed one came out below the rest
 * rate, and the figure read 0 bytes per increment at 1,000 nodes.
 */
const INCREMENT_TYPES: ReadonlySet<string> = new Set(['delta', 'ihave', 'graft', 'prune', 'digest', 'vv', 'vvPart', 'slots', 'covered']);

/** Frames and bytes of INCREMENT_TYPES sent from `start` to `end`, less each type's rate at rest over `seconds`. */
function causedByIncrements(rest: { before: Totals; after: Totals; seconds: number }, start: Totals, end: Totals, seconds: number): { frames: number; bytes: number } {
  const zero = { frames: 0, bytes: 0 };
  let frames = 0;
  let bytes = 0;
  for (const [type, atEnd] of end.byType) {
    if (!INCREMENT_TYPES.has(type)) continue;
    const atStart = start.byType.get(type) ?? zero;
    const restBefore = rest.before.byType.get(type) ?? zero;
    const restAfter = rest.after.byType.get(type) ?? zero;
    frames += Math.max(0, atEnd.frames - atStart.frames - ((restAfter.frames - restBefore.frames) / rest.seconds) * seconds);
    bytes += Math.max(0, atEnd.bytes - atStart.bytes - ((restAfter.bytes - restBefore.bytes) / rest.seconds) * seconds);
  }
  return { frames, bytes };
}

/** One simulated run at `options.nodes` nodes; `progress` hears what it is doing. */
export async function runScaleSimulation(options: ScaleOptions, progress: (message: string) => void = () => {}): Promise<ScalePoint> {
  const wallStart = performance.now();
  const cluster = new ScaleCluster(options);
  const n = options.nodes;
  const addresses = Array.from({ length: n }, (_, i) => `n${i}:1`);
  try {
    for (let i = 0; i < n; i++) cluster.boot(i, addresses);
    const formed = await cluster.runUntil(options.timeoutMs, () => cluster.formed(), POLL_MS);
    const meshFormedMs = formed ? cluster.timers.now() : undefined;
    const framesToForm = sentTotals(cluster).frames / n;
    progress(`scale ${n}: mesh ${formed ? `formed at ${round(cluster.timers.now(), 0)} ms` : 'not formed'} (virtual), ${round(framesToForm, 0)} frames per node`);

    // Let the opening sync rounds and first anti-entropy finish before measuring rest.
    await cluster.run(5_000);
    const before = sentTotals(cluster);
    await cluster.run(options.restMs);
    const after = sentTotals(cluster);
    const restSeconds = options.restMs / 1000;
    const perNodeSecond = (value: number) => round(value / n / restSeconds, 1);
    const framesByType: Record<string, number> = {};
    const bytesByType: Record<string, number> = {};
    for (const [type, entry] of after.byType) {
      const was = before.byType.get(type) ?? { frames: 0, bytes: 0 };
      if (entry.frames === was.frames) continue;
      framesByType[type] = perNodeSecond(entry.frames - was.frames);
      bytesByType[type] = perNodeSecond(entry.bytes - was.bytes);
    }
    const rest = { framesPerNodePerSecond: perNodeSecond(after.frames - before.frames), bytesPerNodePerSecond: perNodeSecond(after.bytes - before.bytes), framesByType, bytesByType };
    progress(`scale ${n}: at rest ${rest.bytesPerNodePerSecond} B/s and ${rest.framesPerNodePerSecond} frames/s per node`);

    // Increments: a page of its own each, so "node j holds increment k" is "j merged a slot of page k".
    const committedAt: number[] = [];
    const origins: number[] = [];
    const arrived = Array.from({ length: options.increments }, () => new Map<number, number>());
    let outstanding = options.increments * (n - 1);
    cluster.onMerged = (node, slots) => {
      for (const slot of slots) {
        if (!slot.page.startsWith('inc-')) continue;
        const k = Number(slot.page.slice(4));
        const seen = arrived[k];
        if (seen === undefined || seen.has(node.index)) continue;
        seen.set(node.index, cluster.timers.now() - committedAt[k]!);
        outstanding -= 1;
      }
    };
    const incStart = sentTotals(cluster);
    const incStartAt = cluster.timers.now();
    for (let k = 0; k < options.increments; k++) {
      const origin = cluster.nodes[cluster.pick()]!;
      committedAt[k] = cluster.timers.now();
      origins[k] = origin.index;
      arrived[k]!.set(origin.index, 0);
      void origin.store.increment([{ page: `inc-${k}` as PageName, by: 1 }]);
      await cluster.run(options.incrementGapMs);
    }
    await cluster.runUntil(cluster.timers.now() + options.timeoutMs, () => outstanding === 0);
    const incEnd = sentTotals(cluster);
    const incSeconds = (cluster.timers.now() - incStartAt) / 1000;
    const caused = causedByIncrements({ before, after, seconds: restSeconds }, incStart, incEnd, incSeconds);
    const everyNode: number[] = [];
    const perNode: number[] = [];
    let missing = 0;
    for (const seen of arrived) {
      if (seen.size < n) {
        missing += 1;
        continue;
      }
      let last = 0;
      for (const [index, ms] of seen) {
        last = Math.max(last, ms);
        if (index !== origins[arrived.indexOf(seen)]) perNode.push(ms);
      }
      everyNode.push(last);
    }
    const increment = {
      count: options.increments,
      bytesPerNode: round(caused.bytes / options.increments / n, 1),
      framesPerNode: round(caused.frames / options.increments / n, 2),
      everyNodeMs: summarize(everyNode),
      perNodeMs: summarize(perNode),
      missing,
    };
    cluster.onMerged = undefined;
    const treeCounts = { received: 0, duplicates: 0, grafts: 0, eager: 0 };
    for (const node of cluster.nodes) {
      const d = node.replicator.degree();
      treeCounts.received += d.tree?.received ?? 0;
      treeCounts.duplicates += d.tree?.duplicates ?? 0;
      treeCounts.grafts += d.tree?.grafts ?? 0;
      treeCounts.eager += d.eager ?? 0;
    }
    const tree = { deltasReceived: treeCounts.received, duplicates: treeCounts.duplicates, grafts: treeCounts.grafts, eagerMean: round(treeCounts.eager / n, 1) };
    if (treeCounts.received > 0) progress(`scale ${n}: broadcast tree ${JSON.stringify(tree)}`);
    progress(`scale ${n}: increment reached every node in p50 ${round(increment.everyNodeMs.p50, 0)} ms, p99 ${round(increment.everyNodeMs.p99, 0)} ms (virtual)`);

    // State, then a node joins and is caught up.
    const writers = Math.min(n, options.joinWriters ?? n);
    for (let w = 0; w < writers; w++) {
      const node = cluster.nodes[Math.floor((w * n) / writers)]!;
      const pages = Array.from({ length: options.joinPagesPerNode }, (_, p) => ({ page: `state-${node.index}-${p}` as PageName, by: 1 + p }));
      if (pages.length > 0) void node.store.increment(pages);
      if ((options.joinWriteGapMs ?? 0) > 0) await cluster.run(options.joinWriteGapMs!);
    }
    const reference = cluster.nodes[0]!;
    await cluster.runUntil(cluster.timers.now() + options.timeoutMs, () => cluster.nodes.every((node) => node.store.digest() === reference.store.digest()), POLL_MS);
    let stateSlots = 0;
    for (const page of reference.store.listPages({ limit: 1_000_000 })) stateSlots += reference.store.pageSlots(page.page).length;
    const allSlots = slotsOfEveryKind(reference.store);
    const joinAt = cluster.timers.now();
    const joiner = cluster.boot(n, addresses);
    const received = () => cluster.network.trafficOf(joiner.address).bytesReceived;
    const caughtUp = await cluster.runUntil(joinAt + options.timeoutMs, () => joiner.store.digest() === reference.store.digest());
    const catchUpMs = cluster.timers.now() - joinAt;
    // The other peers' answers are still on their way when the first one completes the joiner.
    await cluster.run(JOIN_TAIL_MS);
    const join = {
      stateSlots,
      allSlots,
      slotsReceived: joiner.slotsMerged,
      bytesReceived: received(),
      copies: round(allSlots === 0 ? 0 : joiner.slotsMerged / allSlots, 2),
      catchUpMs: caughtUp ? round(catchUpMs, 0) : undefined,
    };
    progress(`scale ${n}: a joiner received ${join.bytesReceived} bytes, ${join.copies} copies of the state`);

    const degrees = cluster.nodes.slice(0, n).map((node) => node.metrics.peers);
    const degree = { mean: round(degrees.reduce((a, b) => a + b, 0) / n, 1), max: Math.max(...degrees) };
    return {
      nodes: n,
      latencyMs: options.latencyMs,
      lossRate: options.lossRate,
      meshFormedMs,
      framesPerNodeToForm: round(framesToForm, 0),
      rest,
      increment,
      join,
      degree,
      tree,
      wallMs: Math.round(performance.now() - wallStart),
    };
  } finally {
    await cluster.stop();
  }
}
