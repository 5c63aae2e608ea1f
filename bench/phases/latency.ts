/**
 * Replication latency: for each rate, an open loop over all nodes with sampled increments watched
 * on every other node's live feed (see open-loop.ts), and the wire bytes per increment.
 */
import type { RateSamples, SampleRecord } from '../breakdown.js';
import type { Cluster } from '../cluster.js';
import type { Knobs } from '../knobs.js';
import { LiveFeedClient } from '../live-feed-client.js';
import { runOpenLoop } from '../open-loop.js';
import { log } from '../progress.js';
import type { RateResult } from '../result.js';
import { round, seededRandom } from '../stats.js';
import { addAll, type Tally } from '../tally.js';

/** Sample pages of `label` start with this (the latency probe stamps only them). */
export function samplePrefix(label: string): string {
  return `${label}-sample-`;
}

/** `samples`: when given, each rate's sample times are appended (for the breakdown). */
export async function runRates(cluster: Cluster, knobs: Knobs, label: string, acked: Tally, unknown: Tally, samples?: RateSamples[]): Promise<RateResult[]> {
  const results: RateResult[] = [];
  const random = seededRandom(knobs.seed);
  const loadPages = Array.from({ length: knobs.pages }, (_, i) => `${label}-load-${i}`);
  for (const rate of knobs.rates) {
    const samplePages = Array.from({ length: knobs.samplePages }, (_, i) => `${samplePrefix(label)}${rate}-${i}`);
    const feeds = await Promise.all(cluster.nodes.map((n) => LiveFeedClient.open(n.child.url, samplePages)));
    try {
      const bytesBefore = await cluster.bytesSent();
      const phaseAcked: Tally = new Map();
      log(`${label}: ${rate} increments/s for ${knobs.rateDurationMs} ms`);
      const record: SampleRecord[] = [];
      const from = performance.now();
      const result = await runOpenLoop({
        rate,
        durationMs: knobs.rateDurationMs,
        targets: cluster.nodes.map((n) => n.http),
        writers: cluster.nodes.map((n) => n.index),
        feeds,
        loadPages,
        samplePages,
        sampleEvery: Math.max(1, Math.round(rate / knobs.sampleRate)),
        batch: rate > knobs.batchAbove,
        batchIntervalMs: knobs.batchIntervalMs,
        maxInFlight: knobs.maxInFlight,
        random,
        acked: phaseAcked,
        unknown,
        ...(samples !== undefined ? { record } : {}),
      });
      samples?.push({ rate, from, to: from + knobs.rateDurationMs, samples: record });
      const bytesAfter = await cluster.bytesSent();
      addAll(acked, phaseAcked);
      results.push({ ...result, bytesPerIncrement: round((bytesAfter - bytesBefore) / Math.max(1, result.acked), 1) });
      log(`  replication p50 ${result.replication.p50} p99 ${result.replication.p99} max ${result.replication.max} ms; missing ${result.samplesMissing}`);
    } finally {
      for (const feed of feeds) feed.close();
    }
  }
  return results;
}
