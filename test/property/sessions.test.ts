/**
 * Sessions as a property: clients that move between nodes carrying their Counter-Session token,
 * under the same faults as the convergence property (reordering, drops, partitions, crashes,
 * restores from stale copies). After every client step: no session's read of a page goes down,
 * and every answer includes the session's own acknowledged increments (an increment's answer is
 * above the session's previous read by at least what it added). Answers are made exactly as the
 * routes make them (`mergeSeen` over the node's slots, `remember`, then a signed round trip).
 * A deliberately broken variant that ignores tokens must be caught.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EMPTY_SESSION, mergeSeen, remember, sessionKey, SessionTokens } from '../../src/http/session-token.js';
import { ReplicatedCluster } from './replicated-cluster.js';
import { PAGES, type Page, playFault, type Step, stepArbitrary } from './schedule.js';

const RUNS = Number(process.env.FC_RUNS ?? 100);
const CLIENTS = 3;
const tokens = new SessionTokens(sessionKey('property-test-cluster-secret-0123456789', 'property'));

type ClientStep = { readonly kind: 'client'; readonly client: number; readonly node: number; readonly page: Page; readonly by: number };
type AnyStep = Step | ClientStep;

const FAULTS: readonly Step['kind'][] = ['deliver', 'flow', 'drop', 'partition', 'heal', 'tick', 'crash', 'restart', 'snapshot', 'restoreStale', 'inc'];

const scenario = fc.integer({ min: 2, max: 4 }).chain((nodes) =>
  fc.record({
    nodes: fc.constant(nodes),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    steps: fc.array(
      fc.oneof(
        { weight: 3, arbitrary: stepArbitrary(nodes, FAULTS) as fc.Arbitrary<AnyStep> },
        {
          weight: 2,
          arbitrary: fc.record({
            kind: fc.constant('client' as const),
            client: fc.integer({ min: 0, max: CLIENTS - 1 }),
            node: fc.integer({ min: 0, max: nodes - 1 }),
            page: fc.constantFrom(...PAGES),
            // 0: a read; more: an increment.
            by: fc.oneof(fc.constant(0), fc.constant(1), fc.integer({ min: 2, max: 50 })),
          }),
        },
      ),
      { maxLength: 60 },
    ),
  }),
);

async function play(s: { nodes: number; seed: number; steps: readonly AnyStep[] }, honourTokens: boolean): Promise<void> {
  const cluster = await new ReplicatedCluster(s.nodes, s.seed).start();
  const token: string[] = Array.from({ length: CLIENTS }, () => tokens.sign(EMPTY_SESSION));
  /** client → page → the highest count the client was shown. */
  const shown = Array.from({ length: CLIENTS }, () => new Map<Page, number>());
  try {
    for (const step of s.steps) {
      switch (step.kind) {
        case 'client': {
          if (!cluster.isUp(step.node)) break;
          const session = honourTokens ? tokens.verify(token[step.client]!) : EMPTY_SESSION;
          if (step.by > 0 && (await cluster.increment(step.node, step.page, step.by)) === undefined) break;
          if (!cluster.isUp(step.node)) break;
          const merged = mergeSeen(step.page, cluster.slots(step.node, step.page), session);
          const before = shown[step.client]!.get(step.page) ?? 0;
          if (merged.count < before + step.by) {
            throw new Error(
              step.by > 0
                ? `client ${step.client} counted ${step.by} on ${step.page} at node ${step.node} and was shown ${merged.count}, below ${before} + its own ${step.by}`
                : `client ${step.client} read ${step.page}=${merged.count} at node ${step.node} after being shown ${before}: a read went down`,
            );
          }
          shown[step.client]!.set(step.page, merged.count);
          token[step.client] = tokens.sign(remember(session, [{ page: step.page, count: merged.count, replicas: merged.replicas }]));
          break;
        }
        case 'inc':
          await cluster.increment(step.node, step.page, step.by);
          break;
        case 'restoreStale':
          await cluster.restoreStale(step.node, step.pick);
          break;
        default:
          await playFault(cluster, step, s.nodes);
      }
    }
  } finally {
    await cluster.dispose();
  }
}

describe('sessions that move between nodes (simulated network, real replicator)', () => {
  it(`never read lower and always see their own writes, over ${RUNS} random schedules with faults`, async () => {
    await fc.assert(
      fc.asyncProperty(scenario, (s) => play(s, true)),
      { numRuns: RUNS },
    );
  }, 120_000);

  it('the property catches a node that ignores tokens', async () => {
    const result = await fc.check(fc.asyncProperty(scenario, (s) => play(s, false)), { seed: 1, numRuns: 300 });
    expect(result.failed, 'ignoring tokens should have been caught').toBe(true);
    const message = result.errorInstance instanceof Error ? result.errorInstance.message : String(result.errorInstance);
    expect(message).toMatch(/went down|its own/);
  }, 120_000);
});
