/**
 * Throughput (closed loop, autocannon): the koa no-work ceiling in its own process, then single
 * increments against one node and against all nodes, then batches against one node, all as a
 * write-token holder (no rate limit, as before tokens existed). Every run writes pages of its
 * own, so what it acknowledged enters the loss check exactly. Then the cost of the anonymous
 * checks: anonymous single increments against a lone node with the rate limiter off, and against
 * one with it on (a limit far above the load, so every request takes the limiter's whole path
 * and none is refused).
 */
import { join } from 'node:path';
import { combineResults, runClosedLoop, sequenceResults, type ThroughputResult } from '../closed-loop.js';
import { BENCH_WRITE_TOKEN, KOA_MAIN, NODE_MAIN, ROOT, WRITER_HEADERS, type Cluster } from '../cluster.js';
import type { Knobs } from '../knobs.js';
import type { Child, ProcessSet } from '../processes.js';
import { waitFor } from '../http-client.js';
import { log } from '../progress.js';
import { addTo, type Tally } from '../tally.js';

/** A browser's User-Agent for the anonymous runs (the node does not count crawlers). */
export const BROWSER_USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36';
/** RATE_LIMIT_PER_IP and _BURST of the "limiter on" node: far above any load, never refusing. */
export const UNREACHED_RATE_LIMIT = 1_000_000;
/**
 * Interleaved turns of the limiter-cost runs (off, on, on, off, …; runLoneNodes): with one turn the
 * two nodes ran one after the other, and on the shared 2-core host a neighbour's burst during
 * either one moved the ratio by more than the 10% the target allows (84% at load average 30).
 */
export const LIMITER_COST_ROUNDS = 4;
export const LIMITER_OFF_LABEL = 'anonymous single increments, lone node, rate limiter off';
export const LIMITER_ON_LABEL = 'anonymous single increments, lone node, rate limiter on';

/** Connections of the batch throughput run: a few large requests keep the node busy. */
export const BATCH_CONNECTIONS = 8;

/** The batch run's load: `--batch-size` views per POST /api/views, one view of each of as many pages named `<prefix>-<i>`. */
export function batchLoad(knobs: Knobs, prefix: string): { pages: string[]; path: string; body: string; headers: Readonly<Record<string, string>>; viewsPerRequest: number; connections: number } {
  const pages = Array.from({ length: knobs.batchSize }, (_, i) => `${prefix}-${i}`);
  const body = JSON.stringify({ views: pages.map((page) => ({ page, by: 1 })) });
  return { pages, path: '/api/views', body, headers: WRITER_HEADERS, viewsPerRequest: knobs.batchSize, connections: Math.min(knobs.connections, BATCH_CONNECTIONS) };
}

/**
 * autocannon stops at the deadline with up to one request per connection in flight: the server
 * may have counted those without autocannon counting the answer. They are unknown outcomes.
 */
function addInFlight(unknown: Tally, page: string, connections: number, viewsEach = 1): void {
  addTo(unknown, page, connections * viewsEach);
}

export async function runThroughput(cluster: Cluster, knobs: Knobs, processes: ProcessSet, acked: Tally, unknown: Tally, dir: string): Promise<{ koa: ThroughputResult; runs: ThroughputResult[] }> {
  const koa = await processes.spawn({ name: 'koa-ceiling', script: KOA_MAIN, env: { PORT: '0', HOST: '127.0.0.1' }, cwd: ROOT });
  const runs: ThroughputResult[] = [];
  let koaResult: ThroughputResult;
  try {
    log(`throughput: koa no-work ceiling, ${knobs.connections} connections`);
    koaResult = await runClosedLoop({ label: 'koa route, no work (ceiling)', targets: [{ url: koa.url, connections: knobs.connections }], path: '/api/pages/tp/views', headers: WRITER_HEADERS, durationMs: knobs.throughputDurationMs, viewsPerRequest: 1 });
  } finally {
    await koa.stop();
  }
  const first = cluster.nodes[0];
  if (first === undefined) throw new Error('empty cluster');
  log('throughput: single increments, one node');
  const one = await runClosedLoop({ label: 'single increments, one node', targets: [{ url: first.child.url, connections: knobs.connections }], path: '/api/pages/tp-one/views', headers: WRITER_HEADERS, durationMs: knobs.throughputDurationMs, viewsPerRequest: 1 });
  addTo(acked, 'tp-one', one.requests2xx);
  addInFlight(unknown, 'tp-one', knobs.connections);
  runs.push(one);

  log('throughput: single increments, all nodes');
  const per = Math.max(1, Math.floor(knobs.connections / cluster.nodes.length));
  // One autocannon per node; each writes its own page so the per-page accounting stays exact.
  const allResults = await Promise.all(
    cluster.nodes.map((n) => runClosedLoop({ label: `all-${n.index}`, targets: [{ url: n.child.url, connections: per }], path: `/api/pages/tp-all-${n.index}/views`, headers: WRITER_HEADERS, durationMs: knobs.throughputDurationMs, viewsPerRequest: 1 })),
  );
  allResults.forEach((r, i) => {
    addTo(acked, `tp-all-${i}`, r.requests2xx);
    addInFlight(unknown, `tp-all-${i}`, per);
    log(`  node ${i}: ${r.requestsPerSecond} requests/s, p50 ${r.latencyP50Ms} ms`);
  });
  runs.push(combineResults(`single increments, all ${cluster.nodes.length} nodes`, allResults));

  log(`throughput: batches of ${knobs.batchSize} views, one node`);
  const { pages: batchPages, ...batchRun } = batchLoad(knobs, 'tp-batch');
  const batch = await runClosedLoop({ ...batchRun, label: `POST /api/views, ${knobs.batchSize} views/request, one node`, targets: [{ url: first.child.url, connections: batchRun.connections }], durationMs: knobs.throughputDurationMs });
  for (const page of batchPages) {
    addTo(acked, page, batch.requests2xx);
    addInFlight(unknown, page, batchRun.connections);
  }
  runs.push(batch);

  runs.push(...(await runLimiterCost(knobs, processes, dir)));
  return { koa: koaResult, runs };
}

/**
 * The cost of the anonymous checks (bot check, rate limiter, page admission): the same anonymous
 * single increments against a lone node with RATE_LIMIT_PER_IP=0 and against one with a limit it
 * never reaches, on their own databases (no peers: replication is the same for both and only
 * blurs the difference). Not part of the loss check: those nodes are not in the cluster.
 */
async function runLimiterCost(knobs: Knobs, processes: ProcessSet, dir: string): Promise<ThroughputResult[]> {
  const run = { path: '/api/pages/tp-anonymous/views', headers: { 'user-agent': BROWSER_USER_AGENT }, viewsPerRequest: 1, connections: knobs.connections };
  const results = await runLoneNodes(processes, dir, [
    { name: 'limiter-off', env: { RATE_LIMIT_PER_IP: '0', RATE_LIMIT_BURST: String(UNREACHED_RATE_LIMIT) }, runs: [{ ...run, label: LIMITER_OFF_LABEL }] },
    { name: 'limiter-on', env: { RATE_LIMIT_PER_IP: String(UNREACHED_RATE_LIMIT), RATE_LIMIT_BURST: String(UNREACHED_RATE_LIMIT) }, runs: [{ ...run, label: LIMITER_ON_LABEL }] },
  ], { rounds: LIMITER_COST_ROUNDS, durationMs: knobs.throughputDurationMs });
  for (const result of results) if (result.non2xx > 0) log(`  ${result.label}: ${result.non2xx} answers were not 2xx`);
  return results;
}

/** How long a lone node may take to answer /readyz 200. */
export const LONE_NODE_READY_TIMEOUT_MS = 30_000;
/** Unmeasured load on each lone node before its turns (runLoneNodes). */
export const LONE_NODE_WARM_UP_MS = 1000;

/** One closed-loop run of a lone node (see runLoneNodes). */
export interface LoneNodeRun {
  readonly label: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly viewsPerRequest: number;
  readonly connections: number;
  readonly vary?: Parameters<typeof runClosedLoop>[0]['vary'];
}

/** A lone node (no peers, its own database, WRITE_TOKENS of the run) and the runs against it. */
export interface LoneNode {
  readonly name: string;
  readonly env: Readonly<Record<string, string>>;
  readonly runs: readonly LoneNodeRun[];
}

/**
 * Closed loops against lone nodes started side by side: every run of every node, in `rounds`
 * turns of `durationMs / rounds` each (after an unmeasured warm-up), the nodes' order reversed every other turn, so what the
 * host does meanwhile (a neighbour's burst, a GC, the page cache) lands on every side alike.
 * Answers one result per run, nodes in order, each node's runs in order.
 */
export async function runLoneNodes(
  processes: ProcessSet,
  dir: string,
  nodes: readonly LoneNode[],
  options: { rounds: number; durationMs: number; /** `--cpu-prof`: a directory for one profile per node, or '' (off). */ cpuProf?: string },
): Promise<ThroughputResult[]> {
  const children: Child[] = [];
  try {
    for (const node of nodes) {
      const cpuProf = options.cpuProf ?? '';
      children.push(
        await processes.spawn({
          name: node.name,
          script: NODE_MAIN,
          env: { PORT: '0', HOST: '127.0.0.1', DATABASE_PATH: join(dir, `${node.name}.db`), NODE_NAME: node.name, WRITE_TOKENS: BENCH_WRITE_TOKEN, ...node.env },
          nodeArgs: cpuProf === '' ? [] : ['--cpu-prof', '--cpu-prof-dir', cpuProf, '--cpu-prof-name', `${node.name}-${Date.now()}.cpuprofile`],
          cwd: ROOT,
        }),
      );
    }
    // Counting waits while a node catches up at start (the catch-up gate): load only ready nodes.
    for (const child of children) await waitFor(`${child.name} to be ready`, LONE_NODE_READY_TIMEOUT_MS, async () => (await fetch(`${child.url}/readyz`)).status === 200 || undefined);
    const runCount = Math.max(...nodes.map((n) => n.runs.length));
    const parts = nodes.map((n) => n.runs.map((): ThroughputResult[] => []));
    // CPU seconds each node used during each run's measured turns (warm-up left out).
    const cpu = nodes.map((n) => n.runs.map(() => 0));
    const durationMs = Math.max(500, Math.round(options.durationMs / options.rounds));
    // A fresh process runs cold (JIT, caches) for its first second or so: warm every node up
    // with each of its runs, unmeasured, so short turns compare warm nodes.
    for (const [i, node] of nodes.entries()) {
      const child = children[i];
      if (child === undefined) continue;
      for (const run of node.runs) await runClosedLoop({ ...run, label: `${run.label} (warm-up)`, targets: [{ url: child.url, connections: run.connections }], durationMs: LONE_NODE_WARM_UP_MS });
    }
    for (let round = 0; round < options.rounds; round++) {
      for (let r = 0; r < runCount; r++) {
        const order = nodes.map((_, i) => i);
        if (round % 2 === 1) order.reverse();
        for (const i of order) {
          const run = nodes[i]?.runs[r];
          const child = children[i];
          if (run === undefined || child === undefined) continue;
          log(`  ${run.label} (turn ${round + 1} of ${options.rounds})`);
          const before = child.cpuSeconds() ?? 0;
          parts[i]?.[r]?.push(await runClosedLoop({ ...run, targets: [{ url: child.url, connections: run.connections }], durationMs }));
          const used = cpu[i];
          if (used !== undefined) used[r] = (used[r] ?? 0) + (child.cpuSeconds() ?? before) - before;
        }
      }
    }
    return nodes.flatMap((n, i) =>
      n.runs.map((run, r) => {
        const result = sequenceResults(run.label, parts[i]?.[r] ?? [], run.viewsPerRequest);
        const seconds = cpu[i]?.[r] ?? 0;
        return { ...result, nodeCpuMsPerRequest: result.requests2xx > 0 ? Math.round((seconds * 1e6) / result.requests2xx) / 1000 : 0 };
      }),
    );
  } finally {
    await Promise.all(children.map((c) => c.stop()));
  }
}
