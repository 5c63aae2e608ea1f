/**
 * The two modes of live deltas (issue 18) as properties, on the real replication code over the
 * simulated network: the full mesh of clusters up to 16 nodes, and the bounded-degree mode of
 * larger ones (active-view.ts, broadcast-tree.ts) forced on 2–5 nodes, each dialling 2 peers.
 *
 * - Convergence under any schedule of faults (the property of convergence.test.ts) holds in the
 *   bounded mode too, version-vector invariant included: relayed deltas advance nothing their
 *   slots do not justify.
 * - Delivery: with anti-entropy off (no safety net) and no fault, every acknowledged increment
 *   reaches every node through live deltas alone — pushed on the mesh, or on the tree and its
 *   repairs (announcements, grafts). A broadcast tree whose duplicate suppression drops a first
 *   delivery fails it, and the test shows the property finds that.
 *
 * Knobs: FC_RUNS (default 100), FC_SEED and FC_PATH, as in convergence.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReplicatedCluster, type ClusterOptions, type Mode, type Variant } from './replicated-cluster.js';
import { runSchedule, scheduleArbitrary, type Schedule, type Step } from './schedule.js';

const RUNS = Number(process.env.FC_RUNS ?? 100);
const SEED = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const PATH = process.env.FC_PATH;
const replay = { ...(SEED === undefined ? {} : { seed: SEED }), ...(PATH === undefined ? {} : { path: PATH }) };
const TIMEOUT_MS = Math.max(120_000, RUNS * 300);

/**
 * In-order links, no fault: what delivery must survive without anti-entropy. No `tick` between
 * flows: time passing without delivery times sessions out (a fault), and what a reopened session's
 * sync round brings goes no further than that link without anti-entropy (in the mesh every node
 * has a link to every origin). The settling at the end moves time, with the network flowing.
 */
const DELIVERY_STEPS: readonly Step['kind'][] = ['inc', 'burst', 'flow'];
/** No anti-entropy, and a send bound no delta reaches (so none is skipped on purpose). */
const DELIVERY: ClusterOptions = { antiEntropyIntervalMs: 0, maxSendBufferBytes: 8 * 1024 * 1024 };

async function run(schedule: Schedule, mode: Mode, options: ClusterOptions = {}, variant: Variant = 'correct'): Promise<void> {
  await runSchedule(schedule, await new ReplicatedCluster(schedule.nodes, schedule.seed, variant, 'all', { mode, ...options }).start());
}

describe('live deltas in both modes (simulated network, memory store)', () => {
  it(
    `bounded degree: convergence and the vv invariant hold for ${Math.ceil(RUNS / 2)} random schedules of increments and faults on 2–5 nodes`,
    async () => {
      await fc.assert(
        fc.asyncProperty(scheduleArbitrary(), (schedule) => run(schedule, 'bounded')),
        { numRuns: Math.ceil(RUNS / 2), ...replay },
      );
    },
    TIMEOUT_MS,
  );

  for (const mode of ['mesh', 'bounded'] as const) {
    it(
      `${mode}: without anti-entropy, every increment reaches every node through live deltas alone (${Math.ceil(RUNS / 2)} runs, 2–5 nodes)`,
      async () => {
        await fc.assert(
          fc.asyncProperty(scheduleArbitrary({ kinds: DELIVERY_STEPS, weights: { inc: 8, burst: 4 } }), (schedule) => run(schedule, mode, DELIVERY)),
          { numRuns: Math.ceil(RUNS / 2), ...replay },
        );
      },
      TIMEOUT_MS,
    );
  }

  it('catches a broadcast tree whose duplicate suppression drops a first delivery', async () => {
    const result = await fc.check(
      fc.asyncProperty(scheduleArbitrary({ minNodes: 3, kinds: DELIVERY_STEPS, weights: { inc: 8, burst: 4 } }), (schedule) =>
        run(schedule, 'bounded', DELIVERY, 'drop-first-delivery'),
      ),
      { seed: 18, numRuns: 200 },
    );
    expect(result.failed, 'the delivery property should have found a counterexample').toBe(true);
    const message = result.errorInstance instanceof Error ? result.errorInstance.message : String(result.errorInstance);
    console.info(`drop-first-delivery counterexample: ${JSON.stringify(result.counterexample?.[0])}\n  → ${message}`);
    expect(message).toMatch(/acknowledged|holds|total/);
  }, TIMEOUT_MS);
});
