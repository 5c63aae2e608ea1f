/**
 * The naive baseline (bench/naive/naive-node.ts) under the same open-loop rates, then its loss:
 * it may never agree, so the totals are read once they stop changing.
 */
import { Cluster } from '../cluster.js';
import { waitQuiet } from '../convergence.js';
import type { Knobs } from '../knobs.js';
import { checkLoss } from '../loss-check.js';
import type { ProcessSet } from '../processes.js';
import { log } from '../progress.js';
import type { BenchResult } from '../result.js';
import type { Tally } from '../tally.js';
import { runRates } from './latency.js';

export async function runNaive(knobs: Knobs, processes: ProcessSet, dir: string): Promise<NonNullable<BenchResult['naive']>> {
  log(`starting ${knobs.nodes} naive nodes`);
  const cluster = await Cluster.start({ kind: 'naive', nodes: knobs.nodes, processes, dir, label: 'naive' });
  const acked: Tally = new Map();
  const unknown: Tally = new Map();
  try {
    const latency = await runRates(cluster, knobs, 'naive', acked, unknown);
    await waitQuiet(cluster);
    return { latency, loss: await checkLoss(cluster, acked, unknown) };
  } finally {
    await cluster.stop();
  }
}
