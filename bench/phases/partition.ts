/**
 * Partition: the last node is SIGSTOPped while the others take an open-loop load, then SIGCONTed;
 * the figure is the time from SIGCONT until every node's digest is equal.
 */
import type { Cluster } from '../cluster.js';
import { waitConverged } from '../convergence.js';
import type { Knobs } from '../knobs.js';
import { runOpenLoop, type OpenLoopResult } from '../open-loop.js';
import { log } from '../progress.js';
import type { PartitionResult } from '../result.js';
import { round, seededRandom } from '../stats.js';
import { addAll, type Tally } from '../tally.js';

export async function runPartition(cluster: Cluster, knobs: Knobs, acked: Tally, unknown: Tally): Promise<PartitionResult> {
  const victim = cluster.nodes[cluster.nodes.length - 1];
  if (victim === undefined) throw new Error('empty cluster');
  const writers = cluster.nodes.filter((n) => n !== victim).map((n) => n.index);
  log(`partition: SIGSTOP ${victim.name} for ${knobs.partitionMs} ms under ${knobs.partitionRate}/s on the others`);
  const phaseAcked: Tally = new Map();
  victim.child.signal('SIGSTOP');
  let load: OpenLoopResult;
  try {
    load = await runOpenLoop({
      rate: knobs.partitionRate,
      durationMs: knobs.partitionMs,
      targets: cluster.nodes.map((n) => n.http),
      writers,
      feeds: [],
      loadPages: Array.from({ length: knobs.pages }, (_, i) => `partition-load-${i}`),
      samplePages: [],
      sampleEvery: 0,
      batch: knobs.partitionRate > knobs.batchAbove,
      batchIntervalMs: knobs.batchIntervalMs,
      maxInFlight: knobs.maxInFlight,
      random: seededRandom(knobs.seed + 1),
      acked: phaseAcked,
      unknown,
    });
  } finally {
    victim.child.signal('SIGCONT');
  }
  const healedAt = performance.now();
  addAll(acked, phaseAcked);
  await waitConverged(cluster);
  const convergeMs = round(performance.now() - healedAt, 1);
  log(`  converged ${convergeMs} ms after SIGCONT`);
  return { method: 'SIGSTOP', stoppedNode: victim.name, partitionMs: knobs.partitionMs, load, convergeMs };
}
