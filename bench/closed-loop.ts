/**
 * Closed-loop throughput with autocannon: `connections` keep-alive connections, each sending its
 * next request as soon as the previous one is answered, for a fixed duration. The same generator
 * and settings drive the real node, all nodes at once, the batch endpoint and the no-work koa app,
 * so the figures compare as ratios on the same machine in the same run.
 */
import autocannon from 'autocannon';
import { round } from './stats.js';

export interface ThroughputResult {
  readonly label: string;
  readonly connections: number;
  readonly durationMs: number;
  readonly requestsPerSecond: number;
  /** Increments acknowledged per second (requests × views per request). */
  readonly incrementsPerSecond: number;
  readonly requests2xx: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  readonly latencyMaxMs: number;
  /**
   * CPU ms (user + system, /proc/<pid>/stat) the serving node used per 2xx request over the run,
   * where it was measured (lone nodes, runLoneNodes): on a shared host throughput moves with the
   * neighbours' load, CPU per request much less.
   */
  readonly nodeCpuMsPerRequest?: number;
}

export interface Target {
  readonly url: string;
  readonly connections: number;
}

/** Runs one autocannon per target at the same time and sums them. */
export async function runClosedLoop(options: {
  label: string;
  targets: readonly Target[];
  path: string;
  durationMs: number;
  body?: string;
  /** Sent with every request (e.g. the write token). */
  headers?: Readonly<Record<string, string>>;
  viewsPerRequest: number;
  /**
   * The path and extra headers of request `i` (counted over all connections of a target), in
   * place of `path`: spreads the load over pages and visitors.
   */
  vary?: (i: number) => { path: string; headers?: Readonly<Record<string, string>> };
}): Promise<ThroughputResult> {
  const { vary } = options;
  const results = await Promise.all(
    options.targets.map((t) =>
      autocannon({
        url: `${t.url}${options.path}`,
        connections: t.connections,
        pipelining: 1,
        duration: options.durationMs / 1000,
        method: 'POST',
        headers: { ...options.headers, ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(options.body !== undefined ? { body: options.body } : {}),
        timeout: 30,
        ...(vary !== undefined ? { requests: [{ setupRequest: varied(vary) }] } : {}),
      }),
    ),
  );
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let seconds = 0;
  for (const r of results) {
    ok += r['2xx'];
    non2xx += r.non2xx;
    errors += r.errors + r.timeouts;
    seconds = Math.max(seconds, r.duration);
  }
  // Latency percentiles of several generators: the worst of each is the honest summary.
  const worst = (pick: (r: (typeof results)[number]) => number): number => round(Math.max(...results.map(pick)), 2);
  const rps = ok / Math.max(seconds, 0.001);
  return {
    label: options.label,
    connections: options.targets.reduce((s, t) => s + t.connections, 0),
    durationMs: options.durationMs,
    requestsPerSecond: Math.round(rps),
    incrementsPerSecond: Math.round(rps * options.viewsPerRequest),
    requests2xx: ok,
    non2xx,
    errors,
    latencyP50Ms: worst((r) => r.latency.p50),
    latencyP99Ms: worst((r) => r.latency.p99),
    latencyMaxMs: worst((r) => r.latency.max),
  };
}

function varied(vary: NonNullable<Parameters<typeof runClosedLoop>[0]['vary']>) {
  let i = 0;
  return (request: { path?: string; headers?: Record<string, string> }) => {
    const v = vary(i++);
    return { ...request, path: v.path, headers: { ...request.headers, ...v.headers } };
  };
}

/** A sum over results. */
function sumOf(results: readonly ThroughputResult[], pick: (r: ThroughputResult) => number): number {
  return results.reduce((s, r) => s + pick(r), 0);
}

/** Several results as one: `own` says how size, time and rates combine; counts add up, latencies are the worst of each. */
function mergedResult(label: string, results: readonly ThroughputResult[], own: Pick<ThroughputResult, 'connections' | 'durationMs' | 'requestsPerSecond' | 'incrementsPerSecond'>): ThroughputResult {
  const worst = (pick: (r: ThroughputResult) => number): number => Math.max(...results.map(pick));
  return {
    label,
    connections: own.connections,
    durationMs: own.durationMs,
    requestsPerSecond: own.requestsPerSecond,
    incrementsPerSecond: own.incrementsPerSecond,
    requests2xx: sumOf(results, (r) => r.requests2xx),
    non2xx: sumOf(results, (r) => r.non2xx),
    errors: sumOf(results, (r) => r.errors),
    latencyP50Ms: worst((r) => r.latencyP50Ms),
    latencyP99Ms: worst((r) => r.latencyP99Ms),
    latencyMaxMs: worst((r) => r.latencyMaxMs),
  };
}

/**
 * Closed loops against the same target one after the other (the rounds of an interleaved
 * comparison) as one: counts add up, the rate is requests over the time they took together,
 * latencies are the worst of each.
 */
export function sequenceResults(label: string, results: readonly ThroughputResult[], viewsPerRequest: number): ThroughputResult {
  const seconds = results.reduce((s, r) => s + (r.requestsPerSecond > 0 ? r.requests2xx / r.requestsPerSecond : r.durationMs / 1000), 0);
  const rps = sumOf(results, (r) => r.requests2xx) / Math.max(seconds, 0.001);
  return mergedResult(label, results, {
    connections: results[0]?.connections ?? 0,
    durationMs: sumOf(results, (r) => r.durationMs),
    requestsPerSecond: Math.round(rps),
    incrementsPerSecond: Math.round(rps * viewsPerRequest),
  });
}

/**
 * Results of closed loops run side by side (one per node, each on its own page) as one: counts
 * and rates add up, latencies are the worst of each.
 */
export function combineResults(label: string, results: readonly ThroughputResult[]): ThroughputResult {
  return mergedResult(label, results, {
    connections: sumOf(results, (r) => r.connections),
    durationMs: results[0]?.durationMs ?? 0,
    requestsPerSecond: sumOf(results, (r) => r.requestsPerSecond),
    incrementsPerSecond: sumOf(results, (r) => r.incrementsPerSecond),
  });
}
