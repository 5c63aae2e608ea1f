/**
 * Replication latency: for each rate, an open loop over all nodes with sampled increments watched
 * on every other node's live feed (see open-loop.ts), and the wire bytes per increment.
 */
import { loadavg } from 'node:os';
import type { RateSamples, SampleRecord } from '../breakdown.js';
import type { Cluster } from '../cluster.js';
import type { Knobs } from '../knobs.js';
import { LiveFeedClient } from '../live-feed-client.js';
import { type OpenLoopOptions, runOpenLoop } from '../open-loop.js';
import { log } from '../progress.js';
import type { RateResult } from '../result.js';
import { round, seededRandom } from '../stats.js';
import { addAll, type Tally } from '../tally.js';

/** Rate of the warm-up before the measured rates (increments/s; at most the highest measured rate). */
const WARM_UP_RATE = 1_000;

/** The live delta frames a node sent (its metric line; the naive node has none). */
const DELTA_FRAMES_SENT = 'dsqlite_replication_frames_total{direction="sent",type="delta"} ';

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
}

/** Sample pages of `label` start with this (the latency probe stamps only them). */
export function samplePrefix(label: string): string {
  return `${label}-sample-`;
}

/** `samples`: when given, each rate's sample times are appended (for the breakdown). */
export async function runRates(cluster: Cluster, knobs: Knobs, label: string, acked: Tally, unknown: Tally, samples?: RateSamples[]): Promise<RateResult[]> {
  const results: RateResult[] = [];
  const random = seededRandom(knobs.seed);
  const loadPages = Array.from({ length: knobs.pages }, (_, i) => `${label}-load-${i}`);
  if (knobs.warmupMs > 0) await warmUp(cluster, knobs, label, loadPages, random, acked, unknown);
  for (const [round_, rate] of knobs.rates.entries()) {
    // The round in the name too: a rate given twice (`--rates 1000,1000`) gets pages of its own,
    // whose feeds have not seen the first round's counts.
    const samplePages = Array.from({ length: knobs.samplePages }, (_, i) => `${samplePrefix(label)}${rate}-r${round_}-${i}`);
    const feeds = await Promise.all(cluster.nodes.map((n) => LiveFeedClient.open(n.child.url, samplePages)));
    try {
      // Scraped before the CPU readings: a scrape's own CPU stays out of the figures.
      const transactionsBefore = await transactions(cluster);
      const bytesBefore = await cluster.bytesSent();
      const deltasBefore = await cluster.metricPerNode(DELTA_FRAMES_SENT);
      const loadAtStart = round(loadavg()[0] ?? Number.NaN, 2);
      const cpuBefore = cluster.nodes.map((n) => n.child.cpuSeconds() ?? Number.NaN);
      const clientBefore = process.cpuUsage();
      const phaseAcked: Tally = new Map();
      log(`${label}: ${rate} increments/s for ${knobs.rateDurationMs} ms`);
      const record: SampleRecord[] = [];
      const from = performance.now();
      const result = await runOpenLoop({
        ...openLoopOf(cluster, knobs, rate, feeds, loadPages, samplePages, random),
        durationMs: knobs.rateDurationMs,
        acked: phaseAcked,
        unknown,
        ...(samples !== undefined ? { record } : {}),
      });
      const clientCpu = process.cpuUsage(clientBefore);
      const cpuAfter = cluster.nodes.map((n) => n.child.cpuSeconds() ?? Number.NaN);
      samples?.push({ rate, from, to: from + knobs.rateDurationMs, samples: record });
      const thousands = Math.max(1, result.acked) / 1000;
      const cpuPer1000PerNode = cpuAfter.map((after, i) => round((after - (cpuBefore[i] ?? Number.NaN)) / thousands, 4));
      const cpuPer1000 = round(cpuPer1000PerNode.reduce((a, b) => a + b, 0) / cpuPer1000PerNode.length, 4);
      const clientCpuPer1000 = round((clientCpu.user + clientCpu.system) / 1e6 / thousands, 4);
      const bytesAfter = await cluster.bytesSent();
      const deltasAfter = await cluster.metricPerNode(DELTA_FRAMES_SENT);
      // Live delta frames per second per link (each node's to its n − 1 peers; NaN on the naive node).
      const links = Math.max(1, cluster.nodes.length - 1);
      // A node that had sent no delta yet has no metric line: 0 before.
      const sentBefore = (i: number): number => (Number.isFinite(deltasBefore[i]) ? deltasBefore[i]! : 0);
      const deltaFramesPerLinkPerS = round(mean(deltasAfter.map((a, i) => (a - sentBefore(i)) / links)) / (knobs.rateDurationMs / 1000), 1);
      const transactionsAfter = await transactions(cluster);
      const per1000 = (after: readonly number[], before: readonly number[]): number[] => after.map((a, i) => round((a - (before[i] ?? Number.NaN)) / thousands, 1));
      const transactionsPer1000PerNode = { commits: per1000(transactionsAfter.commits, transactionsBefore.commits), merges: per1000(transactionsAfter.merges, transactionsBefore.merges) };
      addAll(acked, phaseAcked);
      results.push({
        ...result,
        bytesPerIncrement: round((bytesAfter - bytesBefore) / Math.max(1, result.acked), 1),
        ...(Number.isFinite(deltaFramesPerLinkPerS) ? { deltaFramesPerLinkPerS } : {}),
        cpuPer1000PerNode,
        cpuPer1000,
        clientCpuPer1000,
        loadAtStart,
        ...(transactionsAfter.commits.every(Number.isFinite) ? { transactionsPer1000PerNode } : {}),
      });
      log(`  replication p50 ${result.replication.p50} p99 ${result.replication.p99} max ${result.replication.max} ms; delta frames/s per link ${deltaFramesPerLinkPerS}; missing ${result.samplesMissing}; CPU s per 1,000 increments per node ${cpuPer1000PerNode.join(' / ')} (load ${loadAtStart})`);
    } finally {
      for (const feed of feeds) feed.close();
    }
  }
  return results;
}

/**
 * What a measured rate and the warm-up share of their open loop: every node a target and a
 * writer, samples at --sample-rate, batches above --batch-above (one place, so the warm-up runs
 * exactly the paths the measured rates do).
 */
function openLoopOf(
  cluster: Cluster,
  knobs: Knobs,
  rate: number,
  feeds: readonly LiveFeedClient[],
  loadPages: readonly string[],
  samplePages: readonly string[],
  random: () => number,
): Omit<OpenLoopOptions, 'durationMs' | 'acked' | 'unknown'> {
  return {
    rate,
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
  };
}

/**
 * Before the measured rates: `knobs.warmupMs` of open loop at WARM_UP_RATE (capped at the
 * highest measured rate) on the same load pages, with feeds on pages of its own, so every node's
 * code paths are compiled and its caches hold the load pages, as on a node that has been serving
 * a while. Measured from a cold start instead, the first seconds of a 1,000/s run cost up to
 * twice the CPU (V8 still compiling, every page read from SQLite once), and on 2 cores the
 * queueing that follows shows as a replication p99 many times the warm one (13.8 ms p50 /
 * 130 ms p99 cold, 0.53 / 15.1 warm, same host, same hour). Both systems get the same warm-up.
 * Its acknowledged increments join `acked` (the loss check counts them like any other).
 */
async function warmUp(cluster: Cluster, knobs: Knobs, label: string, loadPages: readonly string[], random: () => number, acked: Tally, unknown: Tally): Promise<void> {
  const rate = Math.min(WARM_UP_RATE, Math.max(...knobs.rates));
  const samplePages = Array.from({ length: knobs.samplePages }, (_, i) => `${label}-warmup-${i}`);
  const feeds = await Promise.all(cluster.nodes.map((n) => LiveFeedClient.open(n.child.url, samplePages)));
  try {
    log(`${label}: warm-up, ${rate} increments/s for ${knobs.warmupMs} ms (not measured)`);
    const warmAcked: Tally = new Map();
    await runOpenLoop({ ...openLoopOf(cluster, knobs, rate, feeds, loadPages, samplePages, random), durationMs: knobs.warmupMs, acked: warmAcked, unknown });
    addAll(acked, warmAcked);
  } finally {
    for (const feed of feeds) feed.close();
  }
}

/** Per node, local commits and merge transactions so far (our node's metrics; NaN on the naive node). */
async function transactions(cluster: Cluster): Promise<{ commits: number[]; merges: number[] }> {
  const [commits, merges] = await Promise.all([cluster.metricPerNode('dsqlite_store_commits_total '), cluster.metricPerNode('dsqlite_replication_merge_batch_slots_count ')]);
  return { commits, merges };
}
