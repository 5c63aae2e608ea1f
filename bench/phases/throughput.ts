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
import { combineResults, runClosedLoop, type ThroughputResult } from '../closed-loop.js';
import { KOA_MAIN, NODE_MAIN, ROOT, WRITER_HEADERS, type Cluster } from '../cluster.js';
import type { Knobs } from '../knobs.js';
import type { ProcessSet } from '../processes.js';
import { log } from '../progress.js';
import { addTo, type Tally } from '../tally.js';

/** A browser's User-Agent for the anonymous runs (the node does not count crawlers). */
export const BROWSER_USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36';
/** RATE_LIMIT_PER_IP and _BURST of the "limiter on" node: far above any load, never refusing. */
export const UNREACHED_RATE_LIMIT = 1_000_000;
export const LIMITER_OFF_LABEL = 'anonymous single increments, lone node, rate limiter off';
export const LIMITER_ON_LABEL = 'anonymous single increments, lone node, rate limiter on';

/** Connections of the batch throughput run: a few large requests keep the node busy. */
export const BATCH_CONNECTIONS = 8;

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
  const batchPages = Array.from({ length: knobs.batchSize }, (_, i) => `tp-batch-${i}`);
  const body = JSON.stringify({ views: batchPages.map((page) => ({ page, by: 1 })) });
  const batchConnections = Math.min(knobs.connections, BATCH_CONNECTIONS);
  const batch = await runClosedLoop({ label: `POST /api/views, ${knobs.batchSize} views/request, one node`, targets: [{ url: first.child.url, connections: batchConnections }], path: '/api/views', body, headers: WRITER_HEADERS, durationMs: knobs.throughputDurationMs, viewsPerRequest: knobs.batchSize });
  for (const page of batchPages) {
    addTo(acked, page, batch.requests2xx);
    addInFlight(unknown, page, batchConnections);
  }
  runs.push(batch);

  runs.push(...(await runLimiterCost(knobs, processes, dir)));
  return { koa: koaResult, runs };
}

/**
 * The cost of the anonymous checks (bot check, rate limiter, page admission): the same anonymous
 * single increments against a lone node with RATE_LIMIT_PER_IP=0 and against one with a limit it
 * never reaches, one after the other, on their own databases (no peers: replication is the same
 * for both and only blurs the difference). Not part of the loss check: those nodes are not in
 * the cluster.
 */
async function runLimiterCost(knobs: Knobs, processes: ProcessSet, dir: string): Promise<ThroughputResult[]> {
  const results: ThroughputResult[] = [];
  for (const [label, limit] of [
    [LIMITER_OFF_LABEL, '0'],
    [LIMITER_ON_LABEL, String(UNREACHED_RATE_LIMIT)],
  ] as const) {
    const name = limit === '0' ? 'limiter-off' : 'limiter-on';
    const node = await processes.spawn({
      name,
      script: NODE_MAIN,
      env: { PORT: '0', HOST: '127.0.0.1', DATABASE_PATH: join(dir, `${name}.db`), NODE_NAME: name, RATE_LIMIT_PER_IP: limit, RATE_LIMIT_BURST: String(UNREACHED_RATE_LIMIT) },
      cwd: ROOT,
    });
    try {
      log(`throughput: ${label}`);
      const result = await runClosedLoop({ label, targets: [{ url: node.url, connections: knobs.connections }], path: '/api/pages/tp-anonymous/views', headers: { 'user-agent': BROWSER_USER_AGENT }, durationMs: knobs.throughputDurationMs, viewsPerRequest: 1 });
      if (result.non2xx > 0) log(`  ${result.non2xx} answers were not 2xx: the limit was reached after all`);
      results.push(result);
    } finally {
      await node.stop();
    }
  }
  return results;
}
