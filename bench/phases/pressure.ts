/**
 * The pressure phase (issue 14): floods a single real node the ways a greedy client can, one
 * fresh node per flood so each peak RSS (VmHWM) is that flood's own, and reports what the node
 * held: peak RSS, the longest /healthz answer during the flood (how long the event loop stalled),
 * how many requests were refused (503) and that every acknowledged view is counted.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { newReplicaId, type PageName } from '../../src/ids.js';
import { authProof } from '../../src/protocol/auth.js';
import { decodeFrame, encodeMessage } from '../../src/protocol/codec.js';
import { MAX_FRAME_ENTRIES, type Message, NONCE_BYTES } from '../../src/protocol/messages.js';
import { FrameSealer, sessionKey } from '../../src/protocol/session-mac.js';
import { CLUSTER_PATH } from '../../src/transport/websocket-transport.js';
import { BENCH_ADMIN_TOKEN, BENCH_WRITE_TOKEN, NODE_MAIN, ROOT } from '../cluster.js';
import { HttpTarget, waitFor } from '../http-client.js';
import type { Knobs } from '../knobs.js';
import { freePortOn } from '../loopback-ports.js';
import type { Child, ProcessSet } from '../processes.js';
import { log } from '../progress.js';
import type { FloodResult } from '../result.js';
import { round } from '../stats.js';

/** Concurrent clients of the batch flood, each sending maximal batches back to back. */
export const FLOOD_BATCH_CLIENTS = 64;
/** Views per batch: the endpoint's most (MAX_BATCH_VIEWS), names long enough for a ~1 MiB body. */
export const FLOOD_BATCH_VIEWS = 10_000;
/** Batches each client sends. */
export const FLOOD_BATCH_ROUNDS = 3;
/** Tries per batch whose answer never came (then it is sent again under its Idempotency-Key). */
export const FLOOD_BATCH_ATTEMPTS = 3;
/** How long the batch flood's node may take to answer /metrics once the clients are done. */
const FLOOD_DRAIN_TIMEOUT_MS = 300_000;
/** The flood's /healthz probe: one request every this many ms, its slowest answer reported. */
export const PROBE_INTERVAL_MS = 50;
const HOST = '127.0.0.1';

/** A page name of about 90 bytes: 10,000 of them make a body just under 1 MiB (MAX_BODY_BYTES). */
function floodPage(client: number, round: number, i: number): string {
  return `/flood/client-${String(client).padStart(2, '0')}/round-${round}/a-rather-long-article-slug-of-a-blog-post-${String(i).padStart(5, '0')}`;
}

/** Starts a flood's node; `cpuProf` (`--cpu-prof`): a directory for its profile, or '' (off). */
async function startNode(processes: ProcessSet, dir: string, label: string, env: Record<string, string> = {}, cpuProf = ''): Promise<Child> {
  const port = await freePortOn([HOST]);
  return processes.spawn({
    name: label,
    script: NODE_MAIN,
    nodeArgs: cpuProf === '' ? [] : ['--cpu-prof', '--cpu-prof-dir', cpuProf, '--cpu-prof-name', `${label}-${Date.now()}.cpuprofile`],
    env: {
      PORT: String(port),
      HOST,
      DATABASE_PATH: join(dir, `${label}.db`),
      NODE_NAME: label,
      LOG_LEVEL: 'warn',
      WRITE_TOKENS: BENCH_WRITE_TOKEN,
      ADMIN_TOKENS: BENCH_ADMIN_TOKEN,
      ...env,
    },
    cwd: ROOT,
    port,
  });
}

/** Probes /healthz every PROBE_INTERVAL_MS until stopped; returns the slowest answer in ms. */
function probe(url: string): { stop(): Promise<number> } {
  const http = new HttpTarget(url, { maxSockets: 1 });
  let running = true;
  let slowest = 0;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      try {
        await http.send('GET', '/healthz');
      } catch {
        // A refused probe still measured the wait.
      }
      slowest = Math.max(slowest, performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL_MS));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      http.close();
      return round(slowest, 1);
    },
  };
}

/** The prober's interval in its own process (healthz-prober.ts). */
export const APART_PROBE_INTERVAL_MS = 20;

/**
 * Probes /healthz from a process of its own (see healthz-prober.ts) until stopped; returns its
 * summary. For floods whose load the bench process itself receives (the live fan-out).
 */
function probeApart(url: string): { stop(): Promise<{ count: number; p50: number; p99: number; max: number }> } {
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'bench', 'healthz-prober.js'), url, String(APART_PROBE_INTERVAL_MS)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => (out += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    async stop() {
      child.stdin.end();
      await exited;
      return JSON.parse(out) as { count: number; p50: number; p99: number; max: number };
    },
  };
}

async function metricValue(http: HttpTarget, name: string): Promise<number> {
  const body = (await http.send('GET', '/metrics')).body;
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(body)?.[1] ?? Number.NaN);
}

/**
 * 64 clients × 3 maximal batches (10,000 views, ~1 MiB each) at once. /healthz is probed from a
 * process of its own: this process builds 64 bodies of 1 MiB at a time, and a probe here timed
 * its own loop (2.6 s at the start of the flood), not the node's. The node's own event-loop delay
 * metric (reset by the scrape before the flood) gives the longest stall during it.
 */
export async function floodBatches(processes: ProcessSet, dir: string, cpuProf = ''): Promise<FloodResult> {
  const node = await startNode(processes, dir, 'flood-batches', {}, cpuProf);
  const http = new HttpTarget(node.url, { maxSockets: FLOOD_BATCH_CLIENTS + 1, writeToken: BENCH_WRITE_TOKEN, adminToken: BENCH_ADMIN_TOKEN });
  await metricValue(http, 'dsqlite_nodejs_eventloop_lag_max_seconds');
  const prober = probeApart(node.url);
  let acked = 0;
  let refused = 0;
  let failed = 0;
  let timedOut = 0;
  let retried = 0;
  const started = performance.now();
  try {
    await Promise.all(
      Array.from({ length: FLOOD_BATCH_CLIENTS }, async (_, client) => {
        for (let r = 0; r < FLOOD_BATCH_ROUNDS; r++) {
          const body = JSON.stringify({ views: Array.from({ length: FLOOD_BATCH_VIEWS }, (_, i) => ({ page: floodPage(client, r, i), by: 1 })) });
          // As a careful client does: a batch whose answer never came (a timeout, a cut
          // connection, a 408) is sent again under the same Idempotency-Key, so it counts once.
          const key = { 'idempotency-key': `flood-${client}-${r}-${randomBytes(8).toString('hex')}` };
          for (let attempt = 0; ; attempt++) {
            if (attempt > 0) retried++;
            try {
              const res = await http.send('POST', '/api/views', body, key);
              if (res.status === 200) acked += FLOOD_BATCH_VIEWS;
              else if (res.status === 503) refused++;
              else if (res.status === 408 && attempt < FLOOD_BATCH_ATTEMPTS - 1) continue;
              else failed++;
            } catch (error) {
              if (/timed out/.test(String(error))) timedOut++;
              if (attempt < FLOOD_BATCH_ATTEMPTS - 1) continue;
              failed++;
            }
            break;
          }
        }
      }),
    );
    const elapsedMs = round(performance.now() - started, 0);
    const healthz = await prober.stop();
    // Requests the clients gave up on (a timeout, a 408) may still be committing: how long the
    // node takes to answer /metrics after the flood is a figure of its own, not a bench failure.
    const drainStarted = performance.now();
    // One scrape: it resets the loop-delay maximum, so both figures come from the same one.
    const metrics = await waitFor('the node to answer /metrics after the batch flood', FLOOD_DRAIN_TIMEOUT_MS, async () => {
      try {
        return (await http.send('GET', '/metrics')).body;
      } catch {
        return undefined;
      }
    });
    const metric = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? Number.NaN);
    const counted = metric('dsqlite_views_counted_total');
    const drainMs = round(performance.now() - drainStarted, 0);
    const loopMaxMs = Math.max(0, metric('dsqlite_nodejs_eventloop_lag_max_seconds') * 1000 - LOOP_RESOLUTION_MS);
    const peakRssBytes = node.memory()?.peak ?? Number.NaN;
    return {
      name: `${FLOOD_BATCH_CLIENTS} concurrent batches of ${FLOOD_BATCH_VIEWS.toLocaleString('en-US')} views (~1 MiB), ${FLOOD_BATCH_ROUNDS} each`,
      peakRssBytes,
      slowestProbeMs: healthz.max,
      elapsedMs,
      acked,
      counted,
      refused,
      failed,
      extra: {
        'ms until /metrics answered after it': drainMs,
        'client timeouts': timedOut,
        'batches sent again (same Idempotency-Key)': retried,
        '/healthz probes': healthz.count,
        '/healthz p50 ms': healthz.p50,
        '/healthz p99 ms': healthz.p99,
        'longest event-loop delay ms': round(loopMaxMs, 0),
      },
    };
  } finally {
    http.close();
    await node.stop();
  }
}

/** Live-feed fan-out: this many sockets follow the same FANOUT_PAGES pages with interval=0. */
export const FANOUT_SOCKETS = 1_000;
export const FANOUT_PAGES = 100;
/** Live-feed memory: this many sockets, each following MEMORY_SOCKET_PAGES long names of its own. */
export const MEMORY_SOCKETS = 2_000;
export const MEMORY_SOCKET_PAGES = 100;
const CLOCK_TICKS_PER_S = 100;

/** CPU time (user + system) a process has used, ms, from /proc/<pid>/stat. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
}

/** Opens a live-feed socket and resolves once `initial` frames (one per page) arrived. */
function openFeed(url: string, pages: readonly string[], onFrame: () => void): Promise<WebSocket> {
  const query = pages.map((p) => `page=${encodeURIComponent(p)}`).join('&');
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/api/live?${query}&interval=0`, { perMessageDeflate: false });
    let initial = 0;
    ws.on('message', () => {
      if (initial < pages.length) {
        initial++;
        if (initial === pages.length) resolve(ws);
        return;
      }
      onFrame();
    });
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`live feed refused: HTTP ${res.statusCode}`)));
  });
}

async function openFeeds(url: string, count: number, pagesOf: (i: number) => string[], onFrame: () => void): Promise<{ sockets: WebSocket[]; refused: number }> {
  const sockets: WebSocket[] = [];
  let refused = 0;
  // In waves, so the node's accept queue and our own file descriptors are not the bottleneck.
  for (let i = 0; i < count; i += 100) {
    const wave = await Promise.allSettled(Array.from({ length: Math.min(100, count - i) }, (_, j) => openFeed(url, pagesOf(i + j), onFrame)));
    for (const result of wave) {
      if (result.status === 'fulfilled') sockets.push(result.value);
      else refused++;
    }
  }
  return { sockets, refused };
}

/**
 * The fan-out node's budget: its live share (30 %) must admit all FANOUT_SOCKETS clients of
 * FANOUT_PAGES names (~58 KiB charged each), or the flood measures the bound, not the fan-out.
 */
export const FANOUT_MEMORY_BUDGET_MB = 256;
/** POSTs of the fan-out flood, one after the other (each waits for all its frames); the median counts. */
export const FANOUT_POSTS = 5;
/** monitorEventLoopDelay's sampling period in prom-client (its default): a reading of its max is one period plus the delay. */
const LOOP_RESOLUTION_MS = 10;
/** How long one POST's frames may take to arrive before the flood gives up on it. */
const FANOUT_ARRIVAL_TIMEOUT_MS = 60_000;

/** 1,000 sockets following the same 100 pages, interval=0; 100-page batches: CPU each costs the node. */
export async function floodLiveFanout(processes: ProcessSet, dir: string, cpuProf = ''): Promise<FloodResult> {
  const node = await startNode(processes, dir, 'flood-fanout', { MEMORY_BUDGET_MB: String(FANOUT_MEMORY_BUDGET_MB) }, cpuProf);
  const http = new HttpTarget(node.url, { maxSockets: 4, writeToken: BENCH_WRITE_TOKEN, adminToken: BENCH_ADMIN_TOKEN });
  const pages = Array.from({ length: FANOUT_PAGES }, (_, i) => `/fanout/${'a-long-page-name-'.repeat(3)}${i}`);
  let frames = 0;
  let wanted = Number.POSITIVE_INFINITY;
  let arrived: (() => void) | undefined;
  const { sockets, refused } = await openFeeds(node.url, FANOUT_SOCKETS, () => pages, () => {
    frames++;
    if (frames >= wanted) arrived?.();
  });
  try {
    const prober = probeApart(node.url);
    const started = performance.now();
    const cpuPerPost: number[] = [];
    const loopMaxPerPost: number[] = [];
    let delivered = 0;
    for (let post = 0; post < FANOUT_POSTS; post++) {
      // A scrape resets the node's event-loop delay histogram (prom-client): the next one reads this POST's.
      await metricValue(http, 'dsqlite_nodejs_eventloop_lag_max_seconds');
      // Every open socket gets one frame per page of each POST (interval=0).
      wanted = frames + sockets.length * FANOUT_PAGES;
      const done = new Promise<void>((resolve) => (arrived = resolve));
      const before = cpuMs(node.pid);
      const res = await http.send('POST', '/api/views', JSON.stringify({ views: pages.map((page) => ({ page, by: 1 })) }));
      if (res.status !== 200) throw new Error(`fan-out flood: POST answered ${res.status}`);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([done, new Promise((resolve) => (timer = setTimeout(resolve, FANOUT_ARRIVAL_TIMEOUT_MS)))]);
      clearTimeout(timer);
      cpuPerPost.push(cpuMs(node.pid) - before);
      loopMaxPerPost.push(Math.max(0, (await metricValue(http, 'dsqlite_nodejs_eventloop_lag_max_seconds')) * 1000 - LOOP_RESOLUTION_MS));
      delivered = frames;
    }
    const elapsedMs = round(performance.now() - started, 0);
    const healthz = await prober.stop();
    const sorted = [...cpuPerPost].sort((a, b) => a - b);
    const loopSorted = [...loopMaxPerPost].sort((a, b) => a - b);
    return {
      name: `${FANOUT_SOCKETS} live sockets × the same ${FANOUT_PAGES} pages, interval=0, ${FANOUT_POSTS} ${FANOUT_PAGES}-page POSTs`,
      peakRssBytes: node.memory()?.peak ?? Number.NaN,
      slowestProbeMs: healthz.max,
      elapsedMs,
      acked: FANOUT_PAGES * FANOUT_POSTS,
      counted: await metricValue(http, 'dsqlite_views_counted_total'),
      refused,
      failed: 0,
      extra: {
        'node CPU ms per POST and its fan-out (median)': round(sorted[Math.floor(sorted.length / 2)] ?? Number.NaN, 0),
        'node CPU ms per POST (max)': round(sorted[sorted.length - 1] ?? Number.NaN, 0),
        'longest event-loop delay ms during a POST and its fan-out (median)': round(loopSorted[Math.floor(loopSorted.length / 2)] ?? Number.NaN, 1),
        'longest event-loop delay ms (max over POSTs)': round(loopSorted[loopSorted.length - 1] ?? Number.NaN, 1),
        '/healthz p50 ms (probed from its own process every 20 ms)': healthz.p50,
        '/healthz p99 ms': healthz.p99,
        'frames delivered': delivered,
        'frames expected': sockets.length * FANOUT_PAGES * FANOUT_POSTS,
        'sockets open': sockets.length,
      },
    };
  } finally {
    for (const ws of sockets) ws.terminate();
    http.close();
    await node.stop();
  }
}

/** 2,000 sockets, each following 100 long page names of its own: RSS per socket. */
export async function floodLiveMemory(processes: ProcessSet, dir: string, cpuProf = ''): Promise<FloodResult> {
  const node = await startNode(processes, dir, 'flood-live-memory', {}, cpuProf);
  const http = new HttpTarget(node.url, { maxSockets: 2, adminToken: BENCH_ADMIN_TOKEN });
  const rssBefore = node.memory()?.rss ?? Number.NaN;
  const started = performance.now();
  const name = (socket: number, i: number) => `/live-memory/socket-${String(socket).padStart(4, '0')}/${'a-long-page-name-'.repeat(13)}${String(i).padStart(3, '0')}`;
  const { sockets, refused } = await openFeeds(node.url, MEMORY_SOCKETS, (s) => Array.from({ length: MEMORY_SOCKET_PAGES }, (_, i) => name(s, i)), () => undefined);
  try {
    const rssAfter = node.memory()?.rss ?? Number.NaN;
    const elapsedMs = round(performance.now() - started, 0);
    const ok = (await http.send('GET', '/healthz')).status === 200;
    return {
      name: `${MEMORY_SOCKETS} live sockets × ${MEMORY_SOCKET_PAGES} page names of ~240 bytes of their own`,
      peakRssBytes: node.memory()?.peak ?? Number.NaN,
      slowestProbeMs: Number.NaN,
      elapsedMs,
      acked: 0,
      counted: 0,
      refused,
      failed: ok ? 0 : 1,
      extra: { 'sockets open': sockets.length, 'RSS before MB': round(rssBefore / 1048576, 0), 'RSS after MB': round(rssAfter / 1048576, 0), 'KiB per open socket': round((rssAfter - rssBefore) / 1024 / Math.max(1, sockets.length), 1) },
    };
  } finally {
    for (const ws of sockets) ws.terminate();
    http.close();
    await node.stop();
  }
}

/** Frames the peer-frames flood sends, each at the entry bound (MAX_FRAME_ENTRIES slots). */
export const PEER_FLOOD_FRAMES = 100;

/**
 * An authenticated peer (it knows the secret) sends near-limit `slots` frames as fast as the
 * socket takes them while /healthz is probed: the slowest answer is the longest the node's loop
 * was held by one peer's frames (decode per frame, merges in bounded transactions).
 */
export async function floodPeerFrames(processes: ProcessSet, dir: string, cpuProf = ''): Promise<FloodResult> {
  const secret = randomBytes(24).toString('base64');
  const clusterPort = await freePortOn([HOST]);
  const node = await startNode(processes, dir, 'flood-peer-frames', { CLUSTER_SECRET: secret, CLUSTER_PORT: String(clusterPort), CLUSTER_NAME: 'bench-flood' }, cpuProf);
  const http = new HttpTarget(`http://${HOST}:${clusterPort}`, { maxSockets: 2 });
  const ws = new WebSocket(`ws://${HOST}:${clusterPort}${CLUSTER_PATH}`, { perMessageDeflate: false });
  const replica = newReplicaId();
  const nonce = new Uint8Array(randomBytes(NONCE_BYTES));
  const hello = new Promise<Extract<Message, { type: 'hello' }>>((resolve, reject) => {
    ws.once('message', (data: Buffer) => {
      const message = decodeFrame(new Uint8Array(data));
      if (message.type === 'hello') resolve(message);
      else reject(new Error(`expected hello, got ${message.type}`));
    });
    ws.once('error', reject);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.send(encodeMessage({ type: 'hello', cluster: 'bench-flood', replica, node: 'flood', nonce }));
  const theirs = await hello;
  ws.send(encodeMessage({ type: 'auth', proof: authProof(secret, { cluster: 'bench-flood', challenge: theirs.nonce, responderNonce: nonce, prover: replica, verifier: theirs.replica }) }));
  const sealer = new FrameSealer(sessionKey(secret, { cluster: 'bench-flood', sender: replica, senderNonce: nonce, receiver: theirs.replica, receiverNonce: theirs.nonce }));
  const prober = probe(node.url);
  const started = performance.now();
  try {
    for (let f = 0; f < PEER_FLOOD_FRAMES; f++) {
      const slots = Array.from({ length: MAX_FRAME_ENTRIES }, (_, i) => ({ page: `/f${f}/${i}` as PageName, replica, count: 1, seq: f * MAX_FRAME_ENTRIES + i + 1 }));
      ws.send(sealer.seal(encodeMessage({ type: 'slots', round: 1, index: f, slots })));
      // Keep the socket's buffer short, so the frames arrive as fast as the node reads them.
      while (ws.bufferedAmount > 4 * 1024 * 1024) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const total = PEER_FLOOD_FRAMES * MAX_FRAME_ENTRIES;
    let merged = 0;
    for (let i = 0; i < 6_000 && merged < total; i++) {
      merged = await metricValue(http, 'dsqlite_replication_merge_batch_slots_sum');
      if (merged < total) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const elapsedMs = round(performance.now() - started, 0);
    const slowestProbeMs = await prober.stop();
    return {
      name: `one peer: ${PEER_FLOOD_FRAMES} slots frames of ${MAX_FRAME_ENTRIES} slots (the entry bound)`,
      peakRssBytes: node.memory()?.peak ?? Number.NaN,
      slowestProbeMs,
      elapsedMs,
      acked: total,
      counted: merged,
      refused: 0,
      failed: 0,
      extra: { framesSent: PEER_FLOOD_FRAMES, slotsPerFrame: MAX_FRAME_ENTRIES },
    };
  } finally {
    ws.terminate();
    http.close();
    await node.stop();
  }
}

export async function runPressure(knobs: Knobs, processes: ProcessSet, dir: string): Promise<FloodResult[]> {
  const results: FloodResult[] = [];
  const only = new Set(knobs.floods);
  if (only.has('batches')) {
    log(`pressure: ${FLOOD_BATCH_CLIENTS} concurrent maximal batches`);
    results.push(await floodBatches(processes, dir, knobs.cpuProf));
  }
  if (only.has('peer-frames')) {
    log(`pressure: an authenticated peer sending ${PEER_FLOOD_FRAMES} frames of ${MAX_FRAME_ENTRIES} slots back to back`);
    results.push(await floodPeerFrames(processes, dir, knobs.cpuProf));
  }
  if (!only.has('fanout') && !only.has('live-memory')) return results;
  if (only.has('fanout')) {
    log(`pressure: ${FANOUT_SOCKETS} live sockets on the same ${FANOUT_PAGES} pages, one POST`);
    results.push(await floodLiveFanout(processes, dir, knobs.cpuProf));
  }
  if (only.has('live-memory')) {
    log(`pressure: ${MEMORY_SOCKETS} live sockets × ${MEMORY_SOCKET_PAGES} long page names`);
    results.push(await floodLiveMemory(processes, dir, knobs.cpuProf));
  }
  return results;
}
