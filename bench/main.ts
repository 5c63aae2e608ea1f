/**
 * `npm run bench`: replication latency and throughput of real node processes on loopback, side
 * by side with the naive scheme and a Yjs counter. Knobs in bench/knobs.ts (flags or env); one
 * JSON result per run under bench/results/, a markdown table on stdout. See bench/README.md.
 *
 * Every loop is bounded in count and time; only loopback addresses are used; every process the
 * benchmark starts is stopped on the way out, also on error or Ctrl-C.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Cluster, KOA_MAIN, ROOT } from './cluster.js';
import { waitFor } from './http-client.js';
import { KnobError, parseKnobs, usage, type Knobs } from './knobs.js';
import { LiveFeedClient } from './live-feed-client.js';
import { currentLoad, machineInfo, type MachineInfo } from './machine.js';
import { runOpenLoop, SETTLE_TIMEOUT_MS, type OpenLoopResult } from './open-loop.js';
import { ProcessSet } from './processes.js';
import { renderReport } from './report.js';
import { round, seededRandom } from './stats.js';
import { runClosedLoop, type ThroughputResult } from './throughput.js';
import { runYjsBaseline, type YjsPoint } from './yjs-baseline.js';

/** How long a cluster may take to agree after the load stops. */
export const CONVERGE_TIMEOUT_MS = 60_000;
/** Poll step of the convergence check (GET /api/cluster on every node). */
export const CONVERGE_POLL_MS = 10;
/** Views per POST /api/views in the memory phase. */
export const MEMORY_BATCH_VIEWS = 1_000;
/** Connections of the batch throughput run: a few large requests keep the node busy. */
export const BATCH_CONNECTIONS = 8;
/** RSS is read at this many distinct pages, then at `memoryPages`. */
export const MEMORY_FIRST_PAGES = 1_000;

export interface RateResult extends OpenLoopResult {
  readonly bytesPerIncrement: number;
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
  };
  readonly naive?: { latency: RateResult[]; loss: LossCheck };
  readonly yjs?: YjsPoint[];
  readonly targets: Array<{ name: string; target: string; measured: string; met: boolean }>;
  readonly problems: string[];
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

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function addAll(into: Map<string, number>, from: Map<string, number>): void {
  for (const [k, v] of from) into.set(k, (into.get(k) ?? 0) + v);
}

async function runRates(cluster: Cluster, knobs: Knobs, label: string, acked: Map<string, number>, unknown: Map<string, number>): Promise<RateResult[]> {
  const results: RateResult[] = [];
  const random = seededRandom(knobs.seed);
  const loadPages = Array.from({ length: knobs.pages }, (_, i) => `${label}-load-${i}`);
  for (const rate of knobs.rates) {
    const samplePages = Array.from({ length: knobs.samplePages }, (_, i) => `${label}-sample-${rate}-${i}`);
    const feeds = await Promise.all(cluster.nodes.map((n) => LiveFeedClient.open(n.child.url, samplePages)));
    try {
      const bytesBefore = await cluster.bytesSent();
      const phaseAcked = new Map<string, number>();
      log(`${label}: ${rate} increments/s for ${knobs.rateDurationMs} ms`);
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
      });
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

async function waitConverged(cluster: Cluster, timeoutMs = CONVERGE_TIMEOUT_MS): Promise<number> {
  const started = performance.now();
  await waitFor('the cluster to converge (equal digests)', timeoutMs, async () => {
    const digests = await cluster.digests();
    return digests.every((d) => d === digests[0]) ? true : undefined;
  }, CONVERGE_POLL_MS);
  return performance.now() - started;
}

/** For the naive scheme, which may never agree: waits until no node's totals change between two reads. */
async function waitQuiet(cluster: Cluster): Promise<void> {
  let last = '';
  await waitFor('the naive cluster to go quiet', CONVERGE_TIMEOUT_MS, async () => {
    const digests = (await cluster.digests()).join(',');
    const quiet = digests === last;
    last = digests;
    return quiet ? true : undefined;
  }, 200);
}

async function checkLoss(cluster: Cluster, acked: Map<string, number>, unknown: Map<string, number>): Promise<LossCheck> {
  const totals = await Promise.all(cluster.nodes.map((n) => cluster.totals(n)));
  let ackedSum = 0;
  for (const v of acked.values()) ackedSum += v;
  let unknownSum = 0;
  for (const v of unknown.values()) unknownSum += v;
  let pagesWrong = 0;
  let pagesDivergent = 0;
  const pages = new Set([...acked.keys(), ...unknown.keys()]);
  const finalPerNode = totals.map(() => 0);
  const lostPerNode = totals.map(() => 0);
  for (const page of pages) {
    const want = acked.get(page) ?? 0;
    const slack = unknown.get(page) ?? 0;
    const values = totals.map((t) => t.get(page) ?? 0);
    values.forEach((v, i) => {
      finalPerNode[i] = (finalPerNode[i] as number) + v;
      lostPerNode[i] = (lostPerNode[i] as number) + Math.max(0, want - v);
      if (v < want || v > want + slack) pagesWrong++;
    });
    if (values.some((v) => v !== values[0])) pagesDivergent++;
  }
  const worstLost = Math.max(0, ...lostPerNode);
  return { acked: ackedSum, unknownOutcome: unknownSum, finalPerNode, lostPerNode, pagesWrong, pagesDivergent, lostFraction: ackedSum === 0 ? 0 : round(worstLost / ackedSum, 5) };
}

/**
 * autocannon stops at the deadline with up to one request per connection in flight: the server
 * may have counted those without autocannon counting the answer. They are unknown outcomes.
 */
function addInFlight(unknown: Map<string, number>, page: string, connections: number, viewsEach = 1): void {
  unknown.set(page, (unknown.get(page) ?? 0) + connections * viewsEach);
}

async function runThroughput(cluster: Cluster, knobs: Knobs, processes: ProcessSet, acked: Map<string, number>, unknown: Map<string, number>): Promise<{ koa: ThroughputResult; runs: ThroughputResult[] }> {
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
  acked.set('tp-one', (acked.get('tp-one') ?? 0) + one.requests2xx);
  addInFlight(unknown, 'tp-one', knobs.connections);
  runs.push(one);

  log('throughput: single increments, all nodes');
  const per = Math.max(1, Math.floor(knobs.connections / cluster.nodes.length));
  // One autocannon per node; each writes its own page so the per-page accounting stays exact.
  const allResults = await Promise.all(
    cluster.nodes.map((n) => runClosedLoop({ label: `all-${n.index}`, targets: [{ url: n.child.url, connections: per }], path: `/api/pages/tp-all-${n.index}/views`, durationMs: knobs.throughputDurationMs, viewsPerRequest: 1 })),
  );
  allResults.forEach((r, i) => {
    acked.set(`tp-all-${i}`, (acked.get(`tp-all-${i}`) ?? 0) + r.requests2xx);
    addInFlight(unknown, `tp-all-${i}`, per);
    log(`  node ${i}: ${r.requestsPerSecond} requests/s, p50 ${r.latencyP50Ms} ms`);
  });
  runs.push(sumRuns(`single increments, all ${cluster.nodes.length} nodes`, allResults));

  log(`throughput: batches of ${knobs.batchSize} views, one node`);
  const batchPages = Array.from({ length: knobs.batchSize }, (_, i) => `tp-batch-${i}`);
  const body = JSON.stringify({ views: batchPages.map((page) => ({ page, by: 1 })) });
  const batchConnections = Math.min(knobs.connections, BATCH_CONNECTIONS);
  const batch = await runClosedLoop({ label: `POST /api/views, ${knobs.batchSize} views/request, one node`, targets: [{ url: first.child.url, connections: batchConnections }], path: '/api/views', body, durationMs: knobs.throughputDurationMs, viewsPerRequest: knobs.batchSize });
  for (const page of batchPages) {
    acked.set(page, (acked.get(page) ?? 0) + batch.requests2xx);
    addInFlight(unknown, page, batchConnections);
  }
  runs.push(batch);
  return { koa: koaResult, runs };
}

function sumRuns(label: string, results: readonly ThroughputResult[]): ThroughputResult {
  const sum = (pick: (r: ThroughputResult) => number): number => results.reduce((s, r) => s + pick(r), 0);
  const worst = (pick: (r: ThroughputResult) => number): number => Math.max(...results.map(pick));
  return {
    label,
    connections: sum((r) => r.connections),
    durationMs: results[0]?.durationMs ?? 0,
    requestsPerSecond: sum((r) => r.requestsPerSecond),
    incrementsPerSecond: sum((r) => r.incrementsPerSecond),
    requests2xx: sum((r) => r.requests2xx),
    non2xx: sum((r) => r.non2xx),
    errors: sum((r) => r.errors),
    latencyP50Ms: worst((r) => r.latencyP50Ms),
    latencyP99Ms: worst((r) => r.latencyP99Ms),
    latencyMaxMs: worst((r) => r.latencyMaxMs),
  };
}

async function runPartition(cluster: Cluster, knobs: Knobs, acked: Map<string, number>, unknown: Map<string, number>): Promise<PartitionResult> {
  const victim = cluster.nodes[cluster.nodes.length - 1];
  if (victim === undefined) throw new Error('empty cluster');
  const writers = cluster.nodes.filter((n) => n !== victim).map((n) => n.index);
  log(`partition: SIGSTOP ${victim.name} for ${knobs.partitionMs} ms under ${knobs.partitionRate}/s on the others`);
  const phaseAcked = new Map<string, number>();
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

function heapUsed(cluster: Cluster): Promise<number[]> {
  return Promise.all(cluster.nodes.map(async (n) => (await cluster.metric(n, 'dsqlite_nodejs_heap_size_used_bytes')) ?? Number.NaN));
}

/**
 * Memory as pages grow, with the traffic held equal: first `memoryPages` increments over 1,000
 * pages (RSS read), then `memoryPages` increments over `memoryPages` new pages (RSS read again),
 * both in batches of MEMORY_BATCH_VIEWS views spread over the nodes. Only the number of
 * distinct pages differs between the two readings, so heap grown by the load itself (V8 keeps
 * what it once needed) does not pass for per-page memory.
 */
async function runMemory(knobs: Knobs, processes: ProcessSet, dir: string): Promise<MemoryResult> {
  const cluster = await Cluster.start({ kind: 'ours', nodes: knobs.nodes, processes, dir, label: 'mem' });
  try {
    const started = performance.now();
    const write = async (increments: number, page: (i: number) => string): Promise<void> => {
      for (let done = 0, request = 0; done < increments; request++) {
        const node = cluster.nodes[request % cluster.nodes.length] as (typeof cluster.nodes)[number];
        const chunk = Math.min(MEMORY_BATCH_VIEWS, increments - done);
        const body = JSON.stringify({ views: Array.from({ length: chunk }, (_, i) => ({ page: page(done + i), by: 1 })) });
        const res = await node.http.send('POST', '/api/views', body);
        if (res.status !== 200) throw new Error(`memory phase: POST /api/views answered ${res.status}: ${res.body.slice(0, 200)}`);
        done += chunk;
      }
      await waitConverged(cluster);
    };
    log(`memory: ${knobs.memoryPages} increments over ${MEMORY_FIRST_PAGES} pages`);
    await write(knobs.memoryPages, (i) => `mem-${i % MEMORY_FIRST_PAGES}`);
    const rssAtFirstBytes = cluster.nodes.map((n) => n.child.memory()?.rss ?? Number.NaN);
    const heapAtFirstBytes = await heapUsed(cluster);
    log(`memory: ${knobs.memoryPages} increments over ${knobs.memoryPages} new pages`);
    await write(knobs.memoryPages, (i) => `mem-new-${i}`);
    const writeMs = round(performance.now() - started, 0);
    const rssAtAllBytes = cluster.nodes.map((n) => n.child.memory()?.rss ?? Number.NaN);
    const heapAtAllBytes = await heapUsed(cluster);
    const slots = await Promise.all(cluster.nodes.map(async (n) => (await cluster.metric(n, 'dsqlite_store_slots')) ?? Number.NaN));
    const databaseBytes = cluster.databaseBytes();
    const growth = round(Math.max(...rssAtAllBytes.map((r, i) => r / (rssAtFirstBytes[i] as number))), 3);
    const bytesPerSlot = round(databaseBytes.reduce((s, b) => s + b, 0) / slots.reduce((s, b) => s + b, 0), 1);
    return { pages: MEMORY_FIRST_PAGES + knobs.memoryPages, rssAtFirstBytes, rssAtAllBytes, heapAtFirstBytes, heapAtAllBytes, growth, slots, databaseBytes, bytesPerSlot, writeMs };
  } finally {
    await cluster.stop();
  }
}

function targets(result: BenchResult): BenchResult['targets'] {
  const out: BenchResult['targets'] = [];
  const at = (rate: number) => result.ours.latency.find((r) => r.rate === rate);
  const r1k = at(1000);
  if (r1k !== undefined) {
    out.push({ name: 'replication p50 at 1,000/s', target: '≤ 1 ms', measured: `${r1k.replication.p50} ms`, met: r1k.replication.p50 <= 1 });
    out.push({ name: 'replication p99 at 1,000/s', target: '≤ 5 ms', measured: `${r1k.replication.p99} ms`, met: r1k.replication.p99 <= 5 });
  }
  const r10k = at(10000);
  if (r10k !== undefined) out.push({ name: 'replication p99 at 10,000/s', target: '≤ 25 ms', measured: `${r10k.replication.p99} ms`, met: r10k.replication.p99 <= 25 });
  const one = result.ours.throughput.find((t) => t.label.endsWith('one node') && t.label.startsWith('single'));
  const koa = result.ours.koaCeiling;
  if (one !== undefined && koa !== undefined) {
    const ratio = one.requestsPerSecond / koa.requestsPerSecond;
    out.push({ name: 'single-increment throughput vs koa ceiling', target: '≥ 80%', measured: `${Math.round(ratio * 100)}%`, met: ratio >= 0.8 });
  }
  const batch = result.ours.throughput.find((t) => t.label.startsWith('POST /api/views'));
  if (batch !== undefined) out.push({ name: 'batch endpoint', target: '≥ 100,000 increments/s', measured: `${batch.incrementsPerSecond.toLocaleString('en-US')}/s`, met: batch.incrementsPerSecond >= 100_000 });
  const memory = result.ours.memory;
  if (memory !== undefined) out.push({ name: `RSS at ${memory.pages.toLocaleString('en-US')} vs ${MEMORY_FIRST_PAGES.toLocaleString('en-US')} pages`, target: 'flat (≤ 1.5×)', measured: `${memory.growth}×`, met: memory.growth <= 1.5 });
  if (result.ours.loss !== undefined) out.push({ name: 'acknowledged increments lost', target: '0', measured: String(Math.max(0, ...result.ours.loss.lostPerNode)), met: result.ours.loss.pagesWrong === 0 });
  return out;
}

async function main(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  let knobs: Knobs;
  try {
    knobs = parseKnobs(argv, process.env);
  } catch (error) {
    if (!(error instanceof KnobError)) throw error;
    process.stderr.write(`bench: ${error.message}\n\n${usage()}\n`);
    return 2;
  }
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const machine = machineInfo(ROOT);
  const dir = mkdtempSync(join(tmpdir(), 'dsqlite-bench-'));
  if (knobs.cpuProf !== '') mkdirSync(resolve(knobs.cpuProf), { recursive: true });
  const processes = new ProcessSet();
  const onSignal = (): void => {
    processes.killAllNow();
    rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const phases = new Set(knobs.phases);
  const problems: string[] = [];
  const ours: BenchResult['ours'] = { latency: [], throughput: [] };
  let naive: BenchResult['naive'];
  let yjs: YjsPoint[] | undefined;

  try {
    if (phases.has('latency') || phases.has('throughput') || phases.has('partition')) {
      log(`starting ${knobs.nodes} nodes`);
      const cluster = await Cluster.start({ kind: 'ours', nodes: knobs.nodes, processes, dir, label: 'node', cpuProf: knobs.cpuProf === '' ? '' : resolve(knobs.cpuProf) });
      const acked = new Map<string, number>();
      const unknown = new Map<string, number>();
      try {
        if (phases.has('latency')) ours.latency = await runRates(cluster, knobs, 'ours', acked, unknown);
        if (phases.has('throughput')) {
          const { koa, runs } = await runThroughput(cluster, knobs, processes, acked, unknown);
          ours.koaCeiling = koa;
          ours.throughput = runs;
        }
        if (phases.has('partition')) ours.partition = await runPartition(cluster, knobs, acked, unknown);
        log('checking: convergence and zero loss');
        await waitConverged(cluster);
        ours.loss = await checkLoss(cluster, acked, unknown);
        ours.peakRssBytes = cluster.nodes.map((n) => n.child.memory()?.peak ?? Number.NaN);
        ours.databaseBytes = cluster.databaseBytes();
        ours.slots = await Promise.all(cluster.nodes.map(async (n) => (await cluster.metric(n, 'dsqlite_store_slots')) ?? Number.NaN));
        if (ours.loss.pagesWrong > 0) problems.push(`LOST INCREMENTS: ${ours.loss.pagesWrong} page totals differ from what was acknowledged (lost per node: ${ours.loss.lostPerNode.join(', ')})`);
        for (const r of ours.latency) {
          if (r.samplesMissing > 0) {
            problems.push(
              `${r.samplesMissing} sample observations at ${r.rate}/s never showed on a peer's live feed within ${SETTLE_TIMEOUT_MS} ms (${r.missingButStored} of them were stored at that node when asked afterwards: the feed did not report them; ${r.feedsClosed} feeds closed during the run)`,
            );
          }
        }
      } finally {
        await cluster.stop();
      }
    }
    if (phases.has('memory')) ours.memory = await runMemory(knobs, processes, dir);
    if (phases.has('naive')) {
      log(`starting ${knobs.nodes} naive nodes`);
      const cluster = await Cluster.start({ kind: 'naive', nodes: knobs.nodes, processes, dir, label: 'naive' });
      const acked = new Map<string, number>();
      const unknown = new Map<string, number>();
      try {
        const latency = await runRates(cluster, knobs, 'naive', acked, unknown);
        await waitQuiet(cluster);
        naive = { latency, loss: await checkLoss(cluster, acked, unknown) };
      } finally {
        await cluster.stop();
      }
    }
    if (phases.has('yjs')) {
      log(`yjs: Y.Map counter at ${knobs.yjsIncrements.join(', ')} increments`);
      yjs = runYjsBaseline(knobs.yjsIncrements, knobs.yjsPages);
    }
  } finally {
    await processes.stopAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    rmSync(dir, { recursive: true, force: true });
  }

  const partial: BenchResult = {
    startedAt,
    finishedAt: new Date().toISOString(),
    elapsedMs: Math.round(performance.now() - started),
    machine,
    loadAverageAtEnd: currentLoad(),
    knobs,
    ours,
    ...(naive !== undefined ? { naive } : {}),
    ...(yjs !== undefined ? { yjs } : {}),
    targets: [],
    problems,
  };
  const result: BenchResult = { ...partial, targets: targets(partial) };
  const outDir = resolve(ROOT, knobs.out);
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `${startedAt.replaceAll(':', '-').replace(/\.\d+Z$/, 'Z')}${knobs.quick ? '-quick' : ''}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(renderReport(result));
  process.stdout.write(`\nResult: ${file}\n`);
  return problems.length > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
