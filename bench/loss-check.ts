/**
 * Zero loss: every page's final total on every node must lie in [acked, acked + unknown outcome].
 * Anything else is a lost (or invented) increment.
 */
import type { Cluster } from './cluster.js';
import type { LossCheck } from './result.js';
import { round } from './stats.js';
import { total, type Tally } from './tally.js';

export async function checkLoss(cluster: Cluster, acked: Tally, unknown: Tally): Promise<LossCheck> {
  const totals = await Promise.all(cluster.nodes.map((n) => cluster.totals(n)));
  const ackedSum = total(acked);
  const unknownSum = total(unknown);
  let pagesWrong = 0;
  let pagesDivergent = 0;
  const pages = new Set([...acked.keys(), ...unknown.keys()]);
  const finalPerNode = totals.map(() => 0);
  const lostPerNode = totals.map(() => 0);
  for (const page of pages) {
    const want = acked.get(page) ?? 0;
    const slack = unknown.get(page) ?? 0;
    const values = totals.map((t) => t.get(page) ?? 0);
    values.forEach((v, i) => {
      finalPerNode[i] = (finalPerNode[i] as number) + v;
      lostPerNode[i] = (lostPerNode[i] as number) + Math.max(0, want - v);
      if (v < want || v > want + slack) pagesWrong++;
    });
    if (values.some((v) => v !== values[0])) pagesDivergent++;
  }
  const worstLost = Math.max(0, ...lostPerNode);
  return { acked: ackedSum, unknownOutcome: unknownSum, finalPerNode, lostPerNode, pagesWrong, pagesDivergent, lostFraction: ackedSum === 0 ? 0 : round(worstLost / ackedSum, 5) };
}
