/**
 * The naive baseline (bench/naive/naive-node.ts) under the same open-loop rates, then its loss:
 * it may never agree, so the totals are read once they stop changing.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { buildBreakdown, monotonicOffset, readSnapshots, type RateSamples } from '../breakdown.js';
import { Cluster } from '../cluster.js';
import { waitQuiet } from '../convergence.js';
import type { Knobs } from '../knobs.js';
import { checkLoss } from '../loss-check.js';
import type { ProcessSet } from '../processes.js';
import { log } from '../progress.js';
import type { BenchResult } from '../result.js';
import type { Tally } from '../tally.js';
import { runRates, samplePrefix } from './latency.js';

export async function runNaive(knobs: Knobs, processes: ProcessSet, dir: string, cpuProf = ''): Promise<NonNullable<BenchResult['naive']>> {
  log(`starting ${knobs.nodes} naive nodes`);
  const traceDir = join(dir, 'trace-naive');
  const tracing = knobs.breakdown === 1;
  if (tracing) mkdirSync(traceDir, { recursive: true });
  const env = tracing ? { LATENCY_TRACE_DIR: traceDir, LATENCY_TRACE_PAGES: samplePrefix('naive') } : undefined;
  const cluster = await Cluster.start({ kind: 'naive', nodes: knobs.nodes, processes, dir, label: 'naive', cpuProf, ...(env !== undefined ? { env } : {}) });
  const acked: Tally = new Map();
  const unknown: Tally = new Map();
  const samples: RateSamples[] = [];
  let result: NonNullable<BenchResult['naive']>;
  try {
    const latency = await runRates(cluster, knobs, 'naive', acked, unknown, tracing ? samples : undefined);
    await waitQuiet(cluster);
    result = { latency, loss: await checkLoss(cluster, acked, unknown) };
  } finally {
    await cluster.stop();
  }
  if (tracing) {
    const names = cluster.nodes.map((n) => n.name);
    result.breakdown = buildBreakdown(samples, readSnapshots(traceDir, names), names, monotonicOffset());
  }
  return result;
}
