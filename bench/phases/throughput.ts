/**
 * Throughput (closed loop, autocannon): the koa no-work ceiling in its own process, then single
 * increments against one node and against all nodes, then batches against one node. Every run
 * writes pages of its own, so what it acknowledged enters the loss check exactly.
 */
import { combineResults, runClosedLoop, type ThroughputResult } from '../closed-loop.js';
import { KOA_MAIN, ROOT, type Cluster } from '../cluster.js';
import type { Knobs } from '../knobs.js';
import type { ProcessSet } from '../processes.js';
import { log } from '../progress.js';
import { addTo, type Tally } from '../tally.js';

/** Connections of the batch throughput run: a few large requests keep the node busy. */
export const BATCH_CONNECTIONS = 8;

/**
 * autocannon stops at the deadline with up to one request per connection in flight: the server
 * may have counted those without autocannon counting the answer. They are unknown outcomes.
 */
function addInFlight(unknown: Tally, page: string, connections: number, viewsEach = 1): void {
  addTo(unknown, page, connections * viewsEach);
}

export async function runThroughput(cluster: Cluster, knobs: Knobs, processes: ProcessSet, acked: Tally, unknown: Tally): Promise<{ koa: ThroughputResult; runs: ThroughputResult[] }> {
  const koa = await processes.spawn({ name: 'koa-ceiling', script: KOA_MAIN, env: { PORT: '0', HOST: '127.0.0.1' }, cwd: ROOT });
  const runs: ThroughputResult[] = [];
  let koaResult: ThroughputResult;
  try {
    log(`throughput: koa no-work ceiling, ${knobs.connections} connections`);
    koaResult = await runClosedLoop({ label: 'koa route, no work (ceiling)', targets: [{ url: koa.url, connections: knobs.connections }], path: '/api/pages/tp/views', durationMs: knobs.throughputDurationMs, viewsPerRequest: 1 });
  } finally {
    await koa.stop();
  }
  const first = cluster.nodes[0];
  if (first === undefined) throw new Error('empty cluster');
  log('throughput: single increments, one node');
  const one = await runClosedLoop({ label: 'single increments, one node', targets: [{ url: first.child.url, connections: knobs.connections }], path: '/api/pages/tp-one/views', durationMs: knobs.throughputDurationMs, viewsPerRequest: 1 });
  addTo(acked, 'tp-one', one.requests2xx);
  addInFlight(unknown, 'tp-one', knobs.connections);
  runs.push(one);

  log('throughput: single increments, all nodes');
  const per = Math.max(1, Math.floor(knobs.connections / cluster.nodes.length));
  // One autocannon per node; each writes its own page so the per-page accounting stays exact.
  const allResults = await Promise.all(
    cluster.nodes.map((n) => runClosedLoop({ label: `all-${n.index}`, targets: [{ url: n.child.url, connections: per }], path: `/api/pages/tp-all-${n.index}/views`, durationMs: knobs.throughputDurationMs, viewsPerRequest: 1 })),
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
  const batch = await runClosedLoop({ label: `POST /api/views, ${knobs.batchSize} views/request, one node`, targets: [{ url: first.child.url, connections: batchConnections }], path: '/api/views', body, durationMs: knobs.throughputDurationMs, viewsPerRequest: knobs.batchSize });
  for (const page of batchPages) {
    addTo(acked, page, batch.requests2xx);
    addInFlight(unknown, page, batchConnections);
  }
  runs.push(batch);
  return { koa: koaResult, runs };
}
