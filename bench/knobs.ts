/**
 * The benchmark's knobs: every one has a flag (`--rates 100,1000`) and an environment variable
 * (`BENCH_RATES=100,1000`); flags win. `--quick` picks shorter defaults so the whole run fits in
 * under a minute; an explicit knob still wins over the quick default. bench/README.md documents
 * each one; `--help` prints them from this table so the two cannot drift far.
 */

export const PHASES = ['latency', 'throughput', 'partition', 'memory', 'startup', 'pressure', 'naive', 'yjs', 'restart', 'mac', 'sessions', 'analytics', 'scale'] as const;
export type Phase = (typeof PHASES)[number];
export const FLOODS: readonly string[] = ['batches', 'fanout', 'live-memory', 'peer-frames'];

export interface Knobs {
  readonly quick: boolean;
  readonly nodes: number;
  /** Open-loop rates, increments per second. */
  readonly rates: readonly number[];
  readonly rateDurationMs: number;
  /** Open loop before the measured rates, not measured (latency.ts warmUp); 0: none. */
  readonly warmupMs: number;
  /** Distinct load pages the open-loop load spreads over. */
  readonly pages: number;
  /** Sampled increments per second, inside the rate (each one a single POST on a sample page). */
  readonly sampleRate: number;
  /** Sample pages per phase, reused round-robin (the expected count makes each sample unique). */
  readonly samplePages: number;
  /** Above this rate the non-sample load goes through POST /api/views batches. */
  readonly batchAbove: number;
  readonly batchIntervalMs: number;
  /** Open requests at most; past it the generator sheds (and reports it) instead of queueing forever. */
  readonly maxInFlight: number;
  readonly throughputDurationMs: number;
  readonly connections: number;
  /** Views per POST /api/views request in the batch throughput run. */
  readonly batchSize: number;
  readonly partitionMs: number;
  /** Open-loop rate kept up during the partition. */
  readonly partitionRate: number;
  /** Memory phase: this many increments over 1,000 pages, then as many over as many new pages. */
  readonly memoryPages: number;
  /** Pressure phase: which floods run (batches, fanout, live-memory). */
  readonly floods: readonly string[];
  /** Startup phase: pages of the database a node is started on and scraped. */
  readonly startupPages: number;
  /** Analytics phase: closed-loop time per side (on, off) for single increments and for batches, split into turns. */
  readonly analyticsDurationMs: number;
  /** Analytics phase: interleaved turns per side. */
  readonly analyticsRounds: number;
  /** Analytics phase: pages of the bytes-per-page-per-day measurement. */
  readonly analyticsStoragePages: number;
  /** Analytics phase: pages and views (over 30 days) of the dashboard's database. */
  readonly dashboardPages: number;
  readonly dashboardViews: number;
  /** Analytics phase: times each dashboard query is asked. */
  readonly dashboardQueries: number;
  readonly yjsIncrements: readonly number[];
  /** Pages the Yjs baseline spreads its increments over. */
  readonly yjsPages: number;
  readonly phases: readonly Phase[];
  readonly seed: number;
  /** Directory for the JSON result. */
  readonly out: string;
  /** Directory for `node --cpu-prof` profiles of the node processes; empty: no profiling. */
  readonly cpuProf: string;
  /** 1: the latency phases run their nodes with the latency probe and report the breakdown; 0: off. */
  readonly breakdown: number;
  /** 1: the cluster phases' nodes count views over time and visitors (the node's default); 0: ANALYTICS=false. */
  readonly clusterAnalytics: number;
  readonly coalesceWindowMs: number;
  readonly clusterCoalesce: number;
  /** Scale phase: simulated cluster sizes, one-way link latency and loss in percent. */
  readonly scaleNodes: readonly number[];
  readonly scaleLatencyMs: number;
  readonly scaleLossPercent: number;
  readonly scaleCoalesce: number;
}

interface KnobSpec {
  readonly name: keyof Knobs;
  readonly flag: string;
  readonly env: string;
  readonly full: string;
  readonly quick: string;
  readonly help: string;
}

export const KNOBS: readonly KnobSpec[] = [
  { name: 'nodes', flag: '--nodes', env: 'BENCH_NODES', full: '3', quick: '3', help: 'Node processes in the cluster (2–16; each on its own loopback address, 127.0.0.2 …).' },
  { name: 'rates', flag: '--rates', env: 'BENCH_RATES', full: '100,1000,10000', quick: '100,1000,10000', help: 'Open-loop rates, increments/s, comma-separated.' },
  { name: 'rateDurationMs', flag: '--rate-duration-ms', env: 'BENCH_RATE_DURATION_MS', full: '10000', quick: '2000', help: 'How long each rate runs.' },
  { name: 'warmupMs', flag: '--warmup-ms', env: 'BENCH_WARMUP_MS', full: '5000', quick: '1000', help: 'Latency phases (ours and naive alike): open loop at 1,000/s (at most the highest rate) before the measured rates, not measured, so the nodes run compiled code on warm caches as a serving node does (0: measure from a cold start).' },
  { name: 'pages', flag: '--pages', env: 'BENCH_PAGES', full: '1000', quick: '1000', help: 'Distinct pages the load spreads over.' },
  { name: 'sampleRate', flag: '--sample-rate', env: 'BENCH_SAMPLE_RATE', full: '50', quick: '50', help: 'Sampled increments/s (within the rate) whose replication is timed.' },
  { name: 'samplePages', flag: '--sample-pages', env: 'BENCH_SAMPLE_PAGES', full: '64', quick: '64', help: 'Sample pages per rate (reused round-robin).' },
  { name: 'batchAbove', flag: '--batch-above', env: 'BENCH_BATCH_ABOVE', full: '2000', quick: '2000', help: 'Rates above this send the non-sample load as POST /api/views batches.' },
  { name: 'batchIntervalMs', flag: '--batch-interval-ms', env: 'BENCH_BATCH_INTERVAL_MS', full: '5', quick: '5', help: 'Batching window of the open-loop generator.' },
  { name: 'maxInFlight', flag: '--max-in-flight', env: 'BENCH_MAX_IN_FLIGHT', full: '5000', quick: '5000', help: 'Open requests at most; beyond, sends are shed and counted.' },
  { name: 'throughputDurationMs', flag: '--throughput-duration-ms', env: 'BENCH_THROUGHPUT_DURATION_MS', full: '10000', quick: '2000', help: 'Duration of each closed-loop throughput run.' },
  { name: 'connections', flag: '--connections', env: 'BENCH_CONNECTIONS', full: '128', quick: '128', help: 'Keep-alive connections of the closed-loop generator (split over nodes for "all nodes"). Group commit batches the requests that arrive together, so a node saturates only with enough of them: measured here, 32 connections reach ~56% of the koa ceiling, 100 reach ~86%.' },
  { name: 'batchSize', flag: '--batch-size', env: 'BENCH_BATCH_SIZE', full: '1000', quick: '1000', help: 'Views per request in the batch throughput run (≤ 10,000).' },
  { name: 'partitionMs', flag: '--partition-ms', env: 'BENCH_PARTITION_MS', full: '8000', quick: '2000', help: 'How long one node is SIGSTOPped under load.' },
  { name: 'partitionRate', flag: '--partition-rate', env: 'BENCH_PARTITION_RATE', full: '1000', quick: '1000', help: 'Open-loop rate on the other nodes during the partition.' },
  { name: 'memoryPages', flag: '--memory-pages', env: 'BENCH_MEMORY_PAGES', full: '100000', quick: '100000', help: 'Increments over 1,000 pages, then as many over as many new pages; RSS is read after each.' },
  { name: 'floods', flag: '--floods', env: 'BENCH_FLOODS', full: 'batches,fanout,live-memory,peer-frames', quick: 'batches,fanout,live-memory,peer-frames', help: 'Floods of the pressure phase: batches (64 concurrent maximal batches), fanout (1,000 live sockets, one POST), live-memory (2,000 live sockets × 100 long names), peer-frames (an authenticated peer sending 100 slots frames at the entry bound).' },
  { name: 'startupPages', flag: '--startup-pages', env: 'BENCH_STARTUP_PAGES', full: '1000000', quick: '1000000', help: 'Pages of the database the startup phase starts a node on, then scrapes /metrics (goals: start < 1 s, scrape < 50 ms).' },
  { name: 'analyticsDurationMs', flag: '--analytics-duration-ms', env: 'BENCH_ANALYTICS_DURATION_MS', full: '10000', quick: '2000', help: 'Analytics phase: closed-loop time per side (analytics on, off) of single increments and of batches, split into --analytics-rounds interleaved turns.' },
  { name: 'analyticsRounds', flag: '--analytics-rounds', env: 'BENCH_ANALYTICS_ROUNDS', full: '5', quick: '2', help: 'Analytics phase: interleaved turns per side (the order of the sides reversed every other turn).' },
  { name: 'analyticsStoragePages', flag: '--analytics-storage-pages', env: 'BENCH_ANALYTICS_STORAGE_PAGES', full: '500', quick: '100', help: 'Analytics phase: pages of the bytes-per-page-per-day measurement (10 views an hour each, two days).' },
  { name: 'dashboardPages', flag: '--dashboard-pages', env: 'BENCH_DASHBOARD_PAGES', full: '10000', quick: '10000', help: 'Analytics phase: pages of the dashboard database (views Zipf-distributed over them).' },
  { name: 'dashboardViews', flag: '--dashboard-views', env: 'BENCH_DASHBOARD_VIEWS', full: '10000000', quick: '1000000', help: 'Analytics phase: views of the dashboard database, over 30 days (goal: each dashboard query p99 < 100 ms at 10,000 pages and 10,000,000 views).' },
  { name: 'dashboardQueries', flag: '--dashboard-queries', env: 'BENCH_DASHBOARD_QUERIES', full: '200', quick: '50', help: 'Analytics phase: times each of the dashboard\'s queries is asked (one request at a time).' },
  { name: 'yjsIncrements', flag: '--yjs-increments', env: 'BENCH_YJS_INCREMENTS', full: '1000,10000,100000', quick: '1000,10000', help: 'Increment counts at which the Yjs Y.Map state is measured.' },
  { name: 'yjsPages', flag: '--yjs-pages', env: 'BENCH_YJS_PAGES', full: '100', quick: '100', help: 'Pages the Yjs baseline spreads its increments over.' },
  { name: 'phases', flag: '--phases', env: 'BENCH_PHASES', full: PHASES.join(','), quick: PHASES.join(','), help: `Phases to run: ${PHASES.join(', ')}.` },
  { name: 'seed', flag: '--seed', env: 'BENCH_SEED', full: '42', quick: '42', help: 'Seed of the page choice.' },
  { name: 'out', flag: '--out', env: 'BENCH_OUT', full: 'bench/results', quick: 'bench/results', help: 'Directory for the JSON result.' },
  { name: 'cpuProf', flag: '--cpu-prof', env: 'BENCH_CPU_PROF', full: '', quick: '', help: 'Directory for node --cpu-prof profiles of the cluster nodes, ours and naive (empty: off).' },
  { name: 'scaleNodes', flag: '--scale-nodes', env: 'BENCH_SCALE_NODES', full: '10,100', quick: '10,100', help: 'Scale phase: simulated cluster sizes (the real replication code on virtual time; up to 1,000).' },
  { name: 'scaleLatencyMs', flag: '--scale-latency-ms', env: 'BENCH_SCALE_LATENCY_MS', full: '50', quick: '50', help: 'Scale phase: one-way latency of every simulated link, ms.' },
  { name: 'scaleLossPercent', flag: '--scale-loss-percent', env: 'BENCH_SCALE_LOSS_PERCENT', full: '1', quick: '1', help: 'Scale phase: frames lost once and retransmitted 200 ms later, percent (0–50).' },
  { name: 'scaleCoalesce', flag: '--scale-coalesce', env: 'BENCH_SCALE_COALESCE', full: '1', quick: '1', help: 'Scale phase: live deltas coalesced in busy sessions\' outboxes (1, the default; full mesh only) or each sent at once (0: ReplicatorOptions.coalesceAboveBytes Infinity), to compare.' },
  { name: 'clusterAnalytics', flag: '--cluster-analytics', env: 'BENCH_CLUSTER_ANALYTICS', full: '1', quick: '1', help: 'Analytics (hour/day buckets, visitor sketches) on the nodes of the latency, throughput and partition phases: 1 (the default of a node) or 0 (ANALYTICS=false), to compare in the same conditions.' },
  { name: 'coalesceWindowMs', flag: '--coalesce-window-ms', env: 'BENCH_COALESCE_WINDOW_MS', full: '0', quick: '0', help: 'Latency, throughput and partition phases: at most one delta frame per peer per this many ms (bench/bench-node.ts, a bench-only option: fewer bytes per increment for up to this much more latency); 0, the default: the ordinary node.' },
  { name: 'clusterCoalesce', flag: '--cluster-coalesce', env: 'BENCH_CLUSTER_COALESCE', full: '1', quick: '1', help: 'Latency, throughput and partition phases: live deltas coalesced in busy sessions\' outboxes (1, the ordinary node) or each sent at once (0: bench/bench-node.ts with BENCH_NODE_COALESCE_OFF=1), towards the bytes per increment of a quiet host, where every delta goes alone (approximate: group commit still joins the increments that arrive together on a busy host).' },
  { name: 'breakdown', flag: '--breakdown', env: 'BENCH_BREAKDOWN', full: '1', quick: '1', help: 'Latency breakdown per stage, event-loop delay and GC per node (1), or the nodes without the latency probe (0).' },
];

export class KnobError extends Error {}

const INTEGER_LIMITS: Partial<Record<keyof Knobs, readonly [number, number]>> = {
  nodes: [2, 16],
  rateDurationMs: [500, 600_000],
  warmupMs: [0, 600_000],
  pages: [1, 1_000_000],
  sampleRate: [1, 1000],
  samplePages: [1, 1000],
  batchAbove: [0, 1_000_000],
  batchIntervalMs: [1, 1000],
  maxInFlight: [1, 1_000_000],
  throughputDurationMs: [500, 600_000],
  connections: [1, 1000],
  batchSize: [1, 10_000],
  partitionMs: [100, 600_000],
  partitionRate: [1, 100_000],
  memoryPages: [1000, 10_000_000],
  startupPages: [1000, 10_000_000],
  yjsPages: [1, 100_000],
  analyticsDurationMs: [500, 600_000],
  analyticsRounds: [1, 100],
  analyticsStoragePages: [1, 1_000_000],
  dashboardPages: [1, 1_000_000],
  dashboardViews: [1, 1_000_000_000],
  dashboardQueries: [1, 100_000],
  seed: [0, 2 ** 31],
  breakdown: [0, 1],
  clusterAnalytics: [0, 1],
  coalesceWindowMs: [0, 1000],
  clusterCoalesce: [0, 1],
  scaleLatencyMs: [0, 10_000],
  scaleLossPercent: [0, 50],
  scaleCoalesce: [0, 1],
};

function integer(name: string, text: string, [min, max]: readonly [number, number]): number {
  const value = /^\d+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new KnobError(`${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`);
  return value;
}

function integerList(name: string, text: string): number[] {
  const values = text.split(',').map((part) => integer(name, part, [1, 10_000_000]));
  if (values.length === 0) throw new KnobError(`${name} needs at least one value`);
  return values;
}

export function usage(): string {
  const lines = ['Usage: npm run bench -- [--quick] [--flag value …]', '', 'Knobs (flag / environment variable, default [quick default]):'];
  lines.push('  --quick / BENCH_QUICK=1  shorter run (under a minute)');
  for (const k of KNOBS) lines.push(`  ${k.flag} / ${k.env}  ${k.full === '' ? '(empty)' : k.full}${k.quick !== k.full ? ` [${k.quick}]` : ''}  ${k.help}`);
  return lines.join('\n');
}

/** Knobs from `argv` (flags) and `env`; throws KnobError naming the first problem. */
export function parseKnobs(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Knobs {
  const given = new Map<string, string>();
  let quick = env.BENCH_QUICK !== undefined && ['1', 'true', 'yes'].includes(env.BENCH_QUICK.toLowerCase());
  for (const k of KNOBS) {
    const value = env[k.env];
    if (value !== undefined && value !== '') given.set(k.flag, value);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--quick') {
      quick = true;
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    if (!KNOBS.some((k) => k.flag === flag)) throw new KnobError(`unknown argument ${JSON.stringify(arg)} (see --help)`);
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new KnobError(`${flag} needs a value`);
    given.set(flag, value);
  }
  const knobs: Record<string, unknown> = { quick };
  for (const k of KNOBS) {
    const text = given.get(k.flag) ?? (quick ? k.quick : k.full);
    if (k.name === 'rates' || k.name === 'yjsIncrements') knobs[k.name] = integerList(k.flag, text);
    else if (k.name === 'scaleNodes') {
      const sizes = integerList(k.flag, text);
      for (const size of sizes) if (size < 2 || size > 1_000) throw new KnobError(`${k.flag}: cluster sizes go from 2 to 1000, got ${size}`);
      knobs.scaleNodes = sizes;
    }
    else if (k.name === 'floods') {
      const floods = text.split(',').map((f) => f.trim()).filter((f) => f !== '');
      for (const f of floods) if (!FLOODS.includes(f)) throw new KnobError(`--floods: unknown flood ${JSON.stringify(f)} (known: ${FLOODS.join(', ')})`);
      knobs.floods = floods;
    }
    else if (k.name === 'phases') {
      const phases = text.split(',').map((p) => p.trim()).filter((p) => p !== '');
      for (const p of phases) if (!(PHASES as readonly string[]).includes(p)) throw new KnobError(`--phases: unknown phase ${JSON.stringify(p)} (known: ${PHASES.join(', ')})`);
      knobs.phases = phases;
    } else if (k.name === 'out' || k.name === 'cpuProf') knobs[k.name] = text;
    else knobs[k.name] = integer(k.flag, text, INTEGER_LIMITS[k.name] ?? [0, Number.MAX_SAFE_INTEGER]);
  }
  return Object.freeze(knobs) as unknown as Knobs;
}
