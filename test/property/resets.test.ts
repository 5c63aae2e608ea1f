/**
 * Resets as a property (src/crdt/reset.ts), on the real Replicator and MemoryStore over the
 * simulated network: under any schedule of increments, resets and faults (messages delivered in
 * any order, dropped, duplicated; partitions; crashes and clean stops), the version-vector
 * invariant holds at every step (with epochs, see replicated-cluster.ts), and once the network
 * heals every node ends with the same state (equal digests: epochs included) and, per page,
 * exactly the increments acknowledged in the page's final epoch: none acknowledged after a node
 * saw the last reset is lost, and those concurrent with it (counted in an older epoch) are gone.
 *
 * Restores from stale copies are left to the real-process test (test/cluster/resets.test.ts):
 * their accounting of increments lost with a disk is by slot count, not by epoch.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReplicatedCluster } from './replicated-cluster.js';
import { describeStep, PAGES, playFault, stepArbitrary, type Page, type Step } from './schedule.js';

const RUNS = Number(process.env.FC_RUNS ?? 60);
const TIMEOUT_MS = Math.max(60_000, RUNS * 300);

type ResetStep = Step | { readonly kind: 'reset'; readonly node: number; readonly page: Page };

const KINDS: readonly Step['kind'][] = ['inc', 'burst', 'deliver', 'flow', 'drop', 'duplicate', 'partition', 'heal', 'tick', 'crash', 'stop', 'restart'];

const scheduleArb = fc.integer({ min: 2, max: 4 }).chain((nodes) =>
  fc.record({
    nodes: fc.constant(nodes),
    seed: fc.integer({ min: 0, max: 0x7fffffff }),
    steps: fc.array(
      fc.oneof(
        { weight: 5, arbitrary: stepArbitrary(nodes, KINDS) as fc.Arbitrary<ResetStep> },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant('reset' as const), node: fc.integer({ min: 0, max: nodes - 1 }), page: fc.constantFrom(...PAGES) }) },
      ),
      { maxLength: 40 },
    ),
  }),
);

async function run(schedule: { nodes: number; seed: number; steps: readonly ResetStep[] }): Promise<void> {
  const cluster = await new ReplicatedCluster(schedule.nodes, schedule.seed).start();
  /** page → epoch → views acknowledged in that epoch. */
  const acked = new Map<string, Map<number, number>>();
  const ack = (page: string, epoch: number, by: number) => {
    const byEpoch = acked.get(page) ?? new Map<number, number>();
    byEpoch.set(epoch, (byEpoch.get(epoch) ?? 0) + by);
    acked.set(page, byEpoch);
  };
  const fail = (message: string) => {
    throw new Error(`${message}\n${schedule.nodes} nodes, seed ${schedule.seed}:\n${schedule.steps.map((s, i) => `  ${i + 1}. ${describeStep(s as Step)}`).join('\n')}`);
  };
  try {
    for (const step of schedule.steps) {
      switch (step.kind) {
        case 'reset':
          await cluster.reset(step.node, step.page);
          break;
        case 'inc': {
          const epoch = await cluster.incrementInEpoch(step.node, step.page, step.by);
          if (epoch !== undefined) ack(step.page, epoch, step.by);
          break;
        }
        case 'burst':
          for (const inc of step.increments) {
            const epoch = await cluster.incrementInEpoch(inc.node, inc.page, inc.by);
            if (epoch !== undefined) ack(inc.page, epoch, inc.by);
          }
          break;
        default:
          await playFault(cluster, step, schedule.nodes);
      }
      const broken = cluster.checkInvariant();
      if (broken !== undefined) fail(`after ${describeStep(step as Step)}: ${broken}`);
    }
    await cluster.settle();
    const broken = cluster.checkInvariant();
    if (broken !== undefined) fail(`after settling: ${broken}`);
    for (const page of PAGES) {
      const epochs = new Set(Array.from({ length: schedule.nodes }, (_, node) => cluster.pageEpoch(node, page)));
      if (epochs.size !== 1) fail(`after settling, nodes hold ${page} at epochs ${[...epochs].join(', ')}`);
      const [epoch] = [...epochs] as [number];
      const expected = acked.get(page)?.get(epoch) ?? 0;
      for (let node = 0; node < schedule.nodes; node++) {
        const total = cluster.totals(node).get(page) ?? 0;
        if (total !== expected) fail(`after settling, node ${node} has ${page}=${total} at epoch ${epoch}, but ${expected} were acknowledged in that epoch`);
      }
    }
    if (!cluster.digestsEqual()) fail('after settling, digests differ');
  } finally {
    await cluster.dispose();
  }
}

describe('resets converge (real replication code, simulated network, memory store)', () => {
  it(
    `hold for ${RUNS} random schedules of increments, resets and faults on 2–4 nodes`,
    async () => {
      await fc.assert(fc.asyncProperty(scheduleArb, run), { numRuns: RUNS });
    },
    TIMEOUT_MS,
  );

  it('a reset at one node of three reaches all, and later views count from zero everywhere', async () => {
    await run({
      nodes: 3,
      seed: 1,
      steps: [
        { kind: 'inc', node: 0, page: 'a', by: 5 },
        { kind: 'inc', node: 1, page: 'a', by: 7 },
        { kind: 'flow', count: 100 },
        { kind: 'partition', mask: 0b011 },
        { kind: 'reset', node: 0, page: 'a' },
        { kind: 'inc', node: 2, page: 'a', by: 3 },
        { kind: 'flow', count: 100 },
        { kind: 'inc', node: 1, page: 'a', by: 2 },
        { kind: 'heal' },
        { kind: 'tick', ms: 5_000 },
        { kind: 'inc', node: 2, page: 'a', by: 4 },
      ],
    });
    expect(true).toBe(true);
  });
});
