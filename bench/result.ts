/**
 * The shape of one benchmark run's JSON result (bench/results/<start time>[-quick].json), built by
 * main.ts from the phases and read by report.ts. Fields are described in bench/README.md.
 */
import type { Breakdown } from './breakdown.js';
import type { SessionsResult } from './phases/sessions.js';
import type { Knobs } from './knobs.js';
import type { MachineInfo } from './machine.js';
import type { OpenLoopResult } from './open-loop.js';
import type { ThroughputResult } from './closed-loop.js';
import type { YjsPoint } from './yjs-baseline.js';
import type { MacResult } from './phases/mac.js';
import type { RestartResult } from './phases/restart.js';
import type { ScaleResult } from './phases/scale.js';
import type { AnalyticsResult } from './phases/analytics.js';

export interface RateResult extends OpenLoopResult {
  readonly bytesPerIncrement: number;
  /** Live delta frames per second per link, mean over the nodes (our nodes only). */
  readonly deltaFramesPerLinkPerS?: number;
  /**
   * CPU seconds (user + system, /proc/<pid>/stat) each node used over the rate, per 1,000
   * increments acknowledged cluster-wide: robust to a loaded host, unlike the latencies (every node
   * does work for every increment: its own or a merge).
   */
  readonly cpuPer1000PerNode?: readonly number[];
  /** Their mean over nodes. */
  readonly cpuPer1000?: number;
  /** The benchmark process's own CPU seconds per 1,000 increments (the generator and the feeds). */
  readonly clientCpuPer1000?: number;
  /** The 1-minute load average when the rate started. */
  readonly loadAtStart?: number;
  /**
   * Per node, SQLite write transactions over the rate per 1,000 increments acknowledged
   * cluster-wide: local commits (`dsqlite_store_commits_total`) and merge transactions
   * (`dsqlite_replication_merge_batch_slots_count`). Ours only (the naive node writes one row per
   * increment, in autocommit).
   */
  readonly transactionsPer1000PerNode?: { readonly commits: readonly number[]; readonly merges: readonly number[] };
}

export interface LossCheck {
  readonly acked: number;
  readonly unknownOutcome: number;
  /** Per node: sum of the final totals of every page the benchmark wrote. */
  readonly finalPerNode: readonly number[];
  /** Per node: acknowledged increments missing from the final totals, summed over pages. */
  readonly lostPerNode: readonly number[];
  /** Page totals outside [acked, acked + unknown outcome], summed over nodes. */
  readonly pagesWrong: number;
  /** Pages on which the nodes disagree. */
  readonly pagesDivergent: number;
  readonly lostFraction: number;
}

export interface PartitionResult {
  readonly method: 'SIGSTOP';
  readonly stoppedNode: string;
  readonly partitionMs: number;
  readonly load: OpenLoopResult;
  /** ms from SIGCONT until every node's /api/cluster digest is equal. */
  readonly convergeMs: number;
}

export interface MemoryResult {
  readonly pages: number;
  readonly rssAtFirstBytes: number[];
  readonly rssAtAllBytes: number[];
  /** V8 heap in use (dsqlite_nodejs_heap_size_used_bytes) at the same two readings: JS vs native memory. */
  readonly heapAtFirstBytes: number[];
  readonly heapAtAllBytes: number[];
  /** Max over nodes of rss(all pages) / rss(first pages). */
  readonly growth: number;
  readonly slots: number[];
  readonly databaseBytes: number[];
  readonly bytesPerSlot: number;
  readonly writeMs: number;
}

/** One flood of the pressure phase (bench/phases/pressure.ts), on a fresh node. */
export interface FloodResult {
  readonly name: string;
  /** VmHWM of the node at the end of the flood. */
  readonly peakRssBytes: number;
  /** The slowest GET /healthz during the flood (one every 50 ms, or every 20 ms from a prober process of its own): the longest stall seen. */
  readonly slowestProbeMs: number;
  readonly elapsedMs: number;
  /** Views acknowledged with 200, and dsqlite_views_counted_total after (equal: none lost or doubled). */
  readonly acked: number;
  readonly counted: number;
  /** Requests answered 503 (a bound held), and other failures. */
  readonly refused: number;
  readonly failed: number;
  /** Flood-specific figures (sockets held, frames, CPU per change …). */
  readonly extra?: Readonly<Record<string, number>>;
}

/** The startup phase (bench/phases/startup.ts): costs that must not grow with pages. */
export interface StartupResult {
  readonly pages: number;
  /** dsqlite_store_pages as the started node reports it (equals `pages`). */
  readonly countedPages: number;
  /** Building the database through the store, in the benchmark process. */
  readonly buildMs: number;
  /** Median ms from spawn to the node's `listening` line, on an empty database. */
  readonly startEmptyMs: number;
  /** The same on the database of `pages` pages, and its slowest start. */
  readonly startFullMs: number;
  readonly startFullMaxMs: number;
  /** The same database with its digest row unknown (a kill -9 within a second of a commit): spawn → listening, median. */
  readonly startUnknownDigestMs: number;
  /** And spawn → the digest shown again (recounted in the background while serving), median. */
  readonly recountDoneMs: number;
  /**
   * GET /metrics from the client side at `pages` pages: the slowest first scrape after a start,
   * the median of the later ones, and the slowest of all (the goal's figure).
   */
  readonly scrapeFirstMs: number;
  readonly scrapeP50Ms: number;
  readonly scrapeMaxMs: number;
  readonly metricsBytes: number;
  /** The same on the empty database (what a first scrape costs without the pages). */
  readonly emptyScrapeFirstMs: number;
  readonly emptyScrapeP50Ms: number;
  readonly emptyScrapeMaxMs: number;
  /** GET /api/cluster (the full view, admin token) the same way. */
  readonly clusterFirstMs: number;
  readonly clusterP50Ms: number;
  readonly clusterMaxMs: number;
  readonly clusterBytes: number;
}

export interface TargetResult {
  readonly name: string;
  readonly target: string;
  readonly measured: string;
  readonly met: boolean;
}

export interface BenchResult {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly elapsedMs: number;
  readonly machine: MachineInfo;
  readonly loadAverageAtEnd: readonly number[];
  readonly knobs: Knobs;
  readonly ours: {
    latency: RateResult[];
    throughput: ThroughputResult[];
    koaCeiling?: ThroughputResult;
    partition?: PartitionResult;
    loss?: LossCheck;
    peakRssBytes?: number[];
    databaseBytes?: number[];
    slots?: number[];
    memory?: MemoryResult;
    startup?: StartupResult;
    pressure?: FloodResult[];
    /** Where the sampled increments' time went, per rate (bench/breakdown.ts). */
    breakdown?: Breakdown;
  };
  readonly naive?: { latency: RateResult[]; loss: LossCheck; breakdown?: Breakdown };
  readonly yjs?: YjsPoint[];
  readonly restart?: RestartResult;
  /** Session tokens' read cost and size, catch-up after restoring a large backup (bench/phases/sessions.ts). */
  readonly sessions?: SessionsResult;
  /** Cost of per-frame authentication, before/after in the same run (bench/phases/mac.ts). */
  readonly mac?: MacResult;
  /** The scale phase: the simulated cluster at each size (bench/scale-sim.ts). */
  readonly scale?: ScaleResult;
  /** Views over time and unique visitors: throughput on vs off, storage, dashboard queries (bench/phases/analytics.ts). */
  readonly analytics?: AnalyticsResult;
  readonly targets: TargetResult[];
  readonly problems: string[];
}
