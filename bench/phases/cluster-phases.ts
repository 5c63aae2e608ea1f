/**
 * The phases that share one cluster of our nodes (latency, throughput, partition, in that order),
 * then the check that it converges with nothing acknowledged lost, and its cost.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { buildBreakdown, monotonicOffset, readSnapshots, type RateSamples } from '../breakdown.js';
import { BENCH_NODE_MAIN, Cluster } from '../cluster.js';
import { waitConverged } from '../convergence.js';
import type { Knobs, Phase } from '../knobs.js';
import { checkLoss } from '../loss-check.js';
import type { ProcessSet } from '../processes.js';
import { log } from '../progress.js';
import type { BenchResult } from '../result.js';
import type { Tally } from '../tally.js';
import { runRates, samplePrefix } from './latency.js';
import { runPartition } from './partition.js';
import { runThroughput } from './throughput.js';

export async function runClusterPhases(knobs: Knobs, phases: ReadonlySet<Phase>, processes: ProcessSet, dir: string, cpuProf: string): Promise<BenchResult['ours']> {
  const ours: BenchResult['ours'] = { latency: [], throughput: [] };
  log(`starting ${knobs.nodes} nodes${knobs.clusterAnalytics === 0 ? ' (ANALYTICS=false)' : ''}${knobs.coalesceWindowMs > 0 ? ` (a ${knobs.coalesceWindowMs} ms coalescing window)` : ''}${knobs.clusterCoalesce === 0 ? ' (every delta sent alone)' : ''}`);
  const traceDir = join(dir, 'trace-ours');
  const tracing = knobs.breakdown === 1 && phases.has('latency');
  if (tracing) mkdirSync(traceDir, { recursive: true });
  const env: Record<string, string> = tracing ? { LATENCY_TRACE_DIR: traceDir, LATENCY_TRACE_PAGES: samplePrefix('ours') } : {};
  if (knobs.clusterAnalytics === 0) env.ANALYTICS = 'false';
  if (knobs.coalesceWindowMs > 0) env.BENCH_NODE_COALESCE_WINDOW_MS = String(knobs.coalesceWindowMs);
  if (knobs.clusterCoalesce === 0) env.BENCH_NODE_COALESCE_OFF = '1';
  const script = knobs.coalesceWindowMs > 0 || knobs.clusterCoalesce === 0 ? { script: BENCH_NODE_MAIN } : {};
  const cluster = await Cluster.start({ kind: 'ours', nodes: knobs.nodes, processes, dir, label: 'node', cpuProf, env, ...script });
  const acked: Tally = new Map();
  const unknown: Tally = new Map();
  const samples: RateSamples[] = [];
  try {
    if (phases.has('latency')) ours.latency = await runRates(cluster, knobs, 'ours', acked, unknown, tracing ? samples : undefined);
    if (phases.has('throughput')) {
      const { koa, runs } = await runThroughput(cluster, knobs, processes, acked, unknown, dir);
      ours.koaCeiling = koa;
      ours.throughput = runs;
    }
    if (phases.has('partition')) ours.partition = await runPartition(cluster, knobs, acked, unknown);
    log('checking: convergence and zero loss');
    await waitConverged(cluster);
    ours.loss = await checkLoss(cluster, acked, unknown);
    ours.peakRssBytes = cluster.nodes.map((n) => n.child.memory()?.peak ?? Number.NaN);
    ours.databaseBytes = cluster.databaseBytes();
    ours.slots = await cluster.metricPerNode('dsqlite_store_slots');
  } finally {
    await cluster.stop();
  }
  // The nodes write their probe when they stop.
  if (tracing) {
    const names = cluster.nodes.map((n) => n.name);
    ours.breakdown = buildBreakdown(samples, readSnapshots(traceDir, names), names, monotonicOffset());
  }
  return ours;
}
