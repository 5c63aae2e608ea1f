/**
 * Schedules of faults and the convergence property, independent of what runs them. A schedule is
 * plain data (fast-check shrinks it); `runSchedule` plays it against any `ClusterUnderTest` — the
 * real replication code over the simulated network, or the naive scheme it replaces — and checks:
 *
 * - after every step: no node reports a lower total for a page than it reported before (a stale
 *   restore resets that node's baseline), and the cluster's own invariant check (the real one
 *   checks the version-vector invariant of docs/design.md, "Invariants");
 * - at the end, once partitions heal, every node is back up and the network drains: every node
 *   holds the same totals, each equal to the sum of the increments acknowledged — less those a
 *   stale restore destroyed before any other node had them (no system can recover those; every
 *   increment that reached a second node must survive).
 */
import fc from 'fast-check';

export const PAGES = ['a', 'b', 'c'] as const;
export type Page = (typeof PAGES)[number];

export interface IncrementStep {
  readonly node: number;
  readonly page: Page;
  readonly by: number;
}

export type Step =
  | ({ readonly kind: 'inc' } & IncrementStep)
  /** Increments sent at once to several nodes (they may share a group commit). */
  | { readonly kind: 'burst'; readonly increments: readonly IncrementStep[] }
  /** Delivers the in-flight message at `pick` (a fraction of the queue: any order). */
  | { readonly kind: 'deliver'; readonly pick: number }
  /** Delivers up to `count` messages oldest first (a healthy stretch of network). */
  | { readonly kind: 'flow'; readonly count: number }
  | { readonly kind: 'drop'; readonly pick: number }
  | { readonly kind: 'duplicate'; readonly pick: number }
  /** Splits the nodes in two groups: bit i of `mask` puts node i in the first. */
  | { readonly kind: 'partition'; readonly mask: number }
  | { readonly kind: 'heal' }
  /** Lets time pass: heartbeats, anti-entropy, reconnects. */
  | { readonly kind: 'tick'; readonly ms: number }
  | { readonly kind: 'crash'; readonly node: number }
  | { readonly kind: 'stop'; readonly node: number }
  | { readonly kind: 'restart'; readonly node: number }
  /** Copies the node's database aside (a backup taken now). */
  | { readonly kind: 'snapshot'; readonly node: number }
  /** Crashes the node, puts back one of its earlier copies, restarts it. */
  | { readonly kind: 'restoreStale'; readonly node: number; readonly pick: number };

export interface Schedule {
  readonly nodes: number;
  readonly seed: number;
  readonly steps: readonly Step[];
}

export interface ClusterUnderTest {
  /** Counts at `node`; resolves with the page's total there, or undefined when the node is down. */
  increment(node: number, page: Page, by: number): Promise<number | undefined>;
  /** Several increments at once; resolves with each total (undefined: node down or refused). */
  incrementMany(increments: readonly IncrementStep[]): Promise<Array<number | undefined>>;
  inFlight(): number;
  deliver(index: number): Promise<void>;
  flow(count: number): Promise<void>;
  drop(index: number): void;
  duplicate(index: number): void;
  partition(groupA: readonly number[], groupB: readonly number[]): void;
  heal(): void;
  tick(ms: number): Promise<void>;
  crash(node: number): Promise<void>;
  stop(node: number): Promise<void>;
  restart(node: number): Promise<void>;
  snapshot(node: number): void;
  /**
   * Crashes the node (frames it had in flight are lost with it), restores an earlier copy of its
   * database, restarts it. Returns undefined when it has no copy, else per page the increments
   * that are gone for good: those the node held that neither the copy nor any other node's
   * database had (a disk restore cannot bring back what was never replicated).
   */
  restoreStale(node: number, pick: number): Promise<Map<string, number> | undefined>;
  isUp(node: number): boolean;
  /** Totals at a live node, by page. */
  totals(node: number): Map<string, number>;
  /** Heals, restarts every node, and runs the network until it is quiet and nodes agree, or gives up. */
  settle(): Promise<void>;
  /** A broken invariant, described; undefined when all hold. */
  checkInvariant(): string | undefined;
  /** What must hold once settled beyond equal totals (series slots equal, buckets summing to totals). */
  checkSettled?(): string | undefined;
  dispose(): Promise<void>;
}

export class PropertyViolation extends Error {}

function pickIndex(pick: number, length: number): number {
  return Math.min(length - 1, Math.floor(pick * length));
}

/**
 * Plays a step of the network, the clock or a node's life (deliver, flow, drop, duplicate,
 * partition, heal, tick, crash, stop, restart, snapshot) on `cluster`; the property suites play
 * their own steps (counting, resets, clients, stale restores) and hand the rest here; a step of
 * any other kind does nothing.
 */
export async function playFault(cluster: ClusterUnderTest, step: { kind: string } & Partial<Step>, nodes: number): Promise<void> {
  const s = step as Step;
  switch (s.kind) {
    case 'deliver':
      if (cluster.inFlight() > 0) await cluster.deliver(pickIndex(s.pick, cluster.inFlight()));
      return;
    case 'flow':
      await cluster.flow(s.count);
      return;
    case 'drop':
      if (cluster.inFlight() > 0) cluster.drop(pickIndex(s.pick, cluster.inFlight()));
      return;
    case 'duplicate':
      if (cluster.inFlight() > 0) cluster.duplicate(pickIndex(s.pick, cluster.inFlight()));
      return;
    case 'partition': {
      const a: number[] = [];
      const b: number[] = [];
      for (let i = 0; i < nodes; i++) ((s.mask >> i) & 1 ? a : b).push(i);
      if (a.length > 0 && b.length > 0) cluster.partition(a, b);
      return;
    }
    case 'heal':
      cluster.heal();
      return;
    case 'tick':
      await cluster.tick(s.ms);
      return;
    case 'crash':
      await cluster.crash(s.node);
      return;
    case 'stop':
      await cluster.stop(s.node);
      return;
    case 'restart':
      await cluster.restart(s.node);
      return;
    case 'snapshot':
      cluster.snapshot(s.node);
      return;
  }
}

/** Plays the schedule and throws PropertyViolation with a description when the property fails. */
export async function runSchedule(schedule: Schedule, cluster: ClusterUnderTest): Promise<void> {
  const acked = new Map<string, number>();
  /** Increments gone with a restored disk before they were replicated anywhere. */
  const lost = new Map<string, number>();
  /** node → page → highest total the node reported. */
  const seen: Array<Map<string, number>> = Array.from({ length: schedule.nodes }, () => new Map());

  const observe = (node: number) => {
    if (!cluster.isUp(node)) return;
    for (const [page, total] of cluster.totals(node)) {
      const before = seen[node]!.get(page) ?? 0;
      if (total < before) throw new PropertyViolation(`node ${node} reported ${page}=${total} after ${before}: a read went down`);
      seen[node]!.set(page, total);
    }
  };
  const ack = (page: string, by: number) => acked.set(page, (acked.get(page) ?? 0) + by);

  try {
    for (const step of schedule.steps) {
      switch (step.kind) {
        case 'inc': {
          const total = await cluster.increment(step.node, step.page, step.by);
          if (total !== undefined) ack(step.page, step.by);
          break;
        }
        case 'burst': {
          const totals = await cluster.incrementMany(step.increments);
          step.increments.forEach((inc, i) => {
            if (totals[i] !== undefined) ack(inc.page, inc.by);
          });
          break;
        }
        case 'restoreStale': {
          const gone = await cluster.restoreStale(step.node, step.pick);
          if (gone === undefined) break;
          // A restored node may read lower until it syncs: that is the one allowed drop.
          seen[step.node] = new Map();
          for (const [page, count] of gone) lost.set(page, (lost.get(page) ?? 0) + count);
          break;
        }
        default:
          await playFault(cluster, step, schedule.nodes);
      }
      for (let node = 0; node < schedule.nodes; node++) observe(node);
      const broken = cluster.checkInvariant();
      if (broken !== undefined) throw new PropertyViolation(`after ${describeStep(step)}: ${broken}`);
    }

    await cluster.settle();
    const broken = cluster.checkInvariant();
    if (broken !== undefined) throw new PropertyViolation(`after settling: ${broken}`);
    const unsettled = cluster.checkSettled?.();
    if (unsettled !== undefined) throw new PropertyViolation(`after settling: ${unsettled}`);
    for (let node = 0; node < schedule.nodes; node++) {
      const totals = cluster.totals(node);
      for (const page of new Set([...acked.keys(), ...totals.keys()])) {
        const total = totals.get(page) ?? 0;
        const expected = (acked.get(page) ?? 0) - (lost.get(page) ?? 0);
        if (total !== expected) {
          const detail = lost.has(page) ? ` (${acked.get(page) ?? 0} acknowledged, ${lost.get(page)} lost with restored disks)` : '';
          throw new PropertyViolation(`after settling, node ${node} has ${page}=${total} but ${expected} were acknowledged${detail}`);
        }
      }
    }
  } finally {
    await cluster.dispose();
  }
}

export function describeStep(step: Step): string {
  const { kind, ...rest } = step;
  return `${kind}(${JSON.stringify(rest)})`;
}

const node = (nodes: number) => fc.integer({ min: 0, max: nodes - 1 });
const increment = (nodes: number) =>
  fc.record({
    node: node(nodes),
    page: fc.constantFrom(...PAGES),
    by: fc.oneof({ weight: 4, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 1000 }) }),
  });
const pick = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

type Weighted = { weight: number; arbitrary: fc.Arbitrary<Step> };

function weightedSteps(nodes: number): Record<Step['kind'], Weighted> {
  return {
    inc: { weight: 6, arbitrary: increment(nodes).map((inc) => ({ kind: 'inc' as const, ...inc })) },
    burst: { weight: 2, arbitrary: fc.array(increment(nodes), { minLength: 2, maxLength: 6 }).map((increments) => ({ kind: 'burst' as const, increments })) },
    deliver: { weight: 6, arbitrary: pick.map((p) => ({ kind: 'deliver' as const, pick: p })) },
    flow: { weight: 4, arbitrary: fc.integer({ min: 1, max: 40 }).map((count) => ({ kind: 'flow' as const, count })) },
    drop: { weight: 2, arbitrary: pick.map((p) => ({ kind: 'drop' as const, pick: p })) },
    duplicate: { weight: 2, arbitrary: pick.map((p) => ({ kind: 'duplicate' as const, pick: p })) },
    partition: { weight: 1, arbitrary: fc.integer({ min: 1, max: (1 << nodes) - 2 }).map((mask) => ({ kind: 'partition' as const, mask })) },
    heal: { weight: 1, arbitrary: fc.constant({ kind: 'heal' as const }) },
    tick: { weight: 2, arbitrary: fc.integer({ min: 100, max: 8000 }).map((ms) => ({ kind: 'tick' as const, ms })) },
    crash: { weight: 1, arbitrary: node(nodes).map((n) => ({ kind: 'crash' as const, node: n })) },
    stop: { weight: 1, arbitrary: node(nodes).map((n) => ({ kind: 'stop' as const, node: n })) },
    restart: { weight: 2, arbitrary: node(nodes).map((n) => ({ kind: 'restart' as const, node: n })) },
    snapshot: { weight: 1, arbitrary: node(nodes).map((n) => ({ kind: 'snapshot' as const, node: n })) },
    restoreStale: { weight: 1, arbitrary: fc.tuple(node(nodes), pick).map(([n, p]) => ({ kind: 'restoreStale' as const, node: n, pick: p })) },
  };
}

export type StepWeights = Partial<Record<Step['kind'], number>>;

/** Steps of the given kinds (all kinds by default), with their usual weights or the ones given. */
export function stepArbitrary(nodes: number, kinds?: readonly Step['kind'][], weights: StepWeights = {}): fc.Arbitrary<Step> {
  const table = weightedSteps(nodes);
  const chosen = (kinds ?? (Object.keys(table) as Step['kind'][])).map((kind) => ({ ...table[kind], weight: weights[kind] ?? table[kind].weight }));
  return fc.oneof(...chosen);
}

/** Only increments and healthy delivery, in any order: no loss, crash or partition. */
export const FAULT_FREE: readonly Step['kind'][] = ['inc', 'deliver', 'flow'];

export function scheduleArbitrary(
  options: { minNodes?: number; maxNodes?: number; maxSteps?: number; kinds?: readonly Step['kind'][]; weights?: StepWeights } = {},
): fc.Arbitrary<Schedule> {
  return fc.integer({ min: options.minNodes ?? 2, max: options.maxNodes ?? 5 }).chain((nodes) =>
    fc.record({
      nodes: fc.constant(nodes),
      seed: fc.integer({ min: 0, max: 0x7fffffff }),
      steps: fc.array(stepArbitrary(nodes, options.kinds, options.weights), { maxLength: options.maxSteps ?? 40 }),
    }),
  );
}
