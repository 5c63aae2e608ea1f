/**
 * The `scale` phase (issue 18): the scale simulation (bench/scale-sim.ts) at each of
 * `--scale-nodes` node counts, with 50 ms links and 1% loss by default. Virtual time: the figures
 * are the protocol's (frames, bytes, delays in simulated milliseconds), not this machine's speed;
 * only `wallMs` says how long the simulation took here.
 */
import type { Knobs } from '../knobs.js';
import { log } from '../progress.js';
import { DEFAULT_SCALE_OPTIONS, runScaleSimulation, type ScalePoint } from '../scale-sim.js';

/**
 * From this many nodes, LARGE_JOIN_WRITERS nodes write LARGE_JOIN_PAGES pages each before the
 * join, one every LARGE_JOIN_GAP_MS, not every node 20 pages at once: the simulation holds the
 * state once per node (at 1,000 nodes, 2 pages on every node at once ran out of a 14 GB heap).
 */
const LARGE_CLUSTER = 500;
const LARGE_JOIN_WRITERS = 100;
const LARGE_JOIN_PAGES = 2;
const LARGE_JOIN_GAP_MS = 10;

export interface ScaleResult {
  readonly simulated: readonly ScalePoint[];
}

export async function runScale(knobs: Knobs): Promise<ScaleResult> {
  const simulated: ScalePoint[] = [];
  for (const nodes of knobs.scaleNodes) {
    log(`scale: ${nodes} simulated nodes, ${knobs.scaleLatencyMs} ms links, ${knobs.scaleLossPercent}% loss`);
    simulated.push(
      await runScaleSimulation(
        {
          ...DEFAULT_SCALE_OPTIONS,
          nodes,
          seed: knobs.seed,
          latencyMs: knobs.scaleLatencyMs,
          lossRate: knobs.scaleLossPercent / 100,
          ...(knobs.scaleCoalesce === 0 ? { coalesceAboveBytes: Number.POSITIVE_INFINITY } : {}),
          restMs: knobs.quick ? 16_000 : DEFAULT_SCALE_OPTIONS.restMs,
          increments: knobs.quick ? 20 : DEFAULT_SCALE_OPTIONS.increments,
          // The join's state is pages × writers, held by every node.
          ...(nodes >= LARGE_CLUSTER
            ? { joinPagesPerNode: LARGE_JOIN_PAGES, joinWriters: LARGE_JOIN_WRITERS, joinWriteGapMs: LARGE_JOIN_GAP_MS }
            : { joinPagesPerNode: DEFAULT_SCALE_OPTIONS.joinPagesPerNode }),
        },
        log,
      ),
    );
  }
  return { simulated };
}
