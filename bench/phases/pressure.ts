/**
 * The pressure phase (issue 14): floods a single real node the ways a greedy client can, one
 * fresh node per flood so each peak RSS (VmHWM) is that flood's own, and reports what the node
 * held: peak RSS, the longest /healthz answer during the flood (how long the event loop stalled),
 * how many requests were refused (503) and that every acknowledged view is counted.
 */
import { join } from 'node:path';
import { NODE_MAIN, ROOT } from '../cluster.js';
import { HttpTarget } from '../http-client.js';
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
/** The flood's /healthz probe: one request every this many ms, its slowest answer reported. */
export const PROBE_INTERVAL_MS = 50;
const HOST = '127.0.0.1';

/** A page name of about 90 bytes: 10,000 of them make a body just under 1 MiB (MAX_BODY_BYTES). */
function floodPage(client: number, round: number, i: number): string {
  return `/flood/client-${String(client).padStart(2, '0')}/round-${round}/a-rather-long-article-slug-of-a-blog-post-${String(i).padStart(5, '0')}`;
}

async function startNode(processes: ProcessSet, dir: string, label: string, env: Record<string, string> = {}): Promise<Child> {
  const port = await freePortOn([HOST]);
  return processes.spawn({
    name: label,
    script: NODE_MAIN,
    env: { PORT: String(port), HOST, DATABASE_PATH: join(dir, `${label}.db`), NODE_NAME: label, LOG_LEVEL: 'warn', ...env },
    cwd: ROOT,
    port,
  });
}

/** Probes /healthz every PROBE_INTERVAL_MS until stopped; returns the slowest answer in ms. */
function probe(url: string): { stop(): Promise<number> } {
  const http = new HttpTarget(url, 1);
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

async function metricValue(http: HttpTarget, name: string): Promise<number> {
  const body = (await http.send('GET', '/metrics')).body;
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(body)?.[1] ?? Number.NaN);
}

/** 64 clients × 3 maximal batches (10,000 views, ~1 MiB each) at once. */
export async function floodBatches(processes: ProcessSet, dir: string): Promise<FloodResult> {
  const node = await startNode(processes, dir, 'flood-batches');
  const http = new HttpTarget(node.url, FLOOD_BATCH_CLIENTS + 1);
  const prober = probe(node.url);
  let acked = 0;
  let refused = 0;
  let failed = 0;
  const started = performance.now();
  try {
    await Promise.all(
      Array.from({ length: FLOOD_BATCH_CLIENTS }, async (_, client) => {
        for (let r = 0; r < FLOOD_BATCH_ROUNDS; r++) {
          const body = JSON.stringify({ views: Array.from({ length: FLOOD_BATCH_VIEWS }, (_, i) => ({ page: floodPage(client, r, i), by: 1 })) });
          try {
            const res = await http.send('POST', '/api/views', body);
            if (res.status === 200) acked += FLOOD_BATCH_VIEWS;
            else if (res.status === 503) refused++;
            else failed++;
          } catch {
            failed++;
          }
        }
      }),
    );
    const elapsedMs = round(performance.now() - started, 0);
    const slowestProbeMs = await prober.stop();
    const counted = await metricValue(http, 'dsqlite_views_counted_total');
    const peakRssBytes = node.memory()?.peak ?? Number.NaN;
    return { name: `${FLOOD_BATCH_CLIENTS} concurrent batches of ${FLOOD_BATCH_VIEWS.toLocaleString('en-US')} views (~1 MiB), ${FLOOD_BATCH_ROUNDS} each`, peakRssBytes, slowestProbeMs, elapsedMs, acked, counted, refused, failed };
  } finally {
    http.close();
    await node.stop();
  }
}

export async function runPressure(_knobs: Knobs, processes: ProcessSet, dir: string): Promise<FloodResult[]> {
  const results: FloodResult[] = [];
  log(`pressure: ${FLOOD_BATCH_CLIENTS} concurrent maximal batches`);
  results.push(await floodBatches(processes, dir));
  return results;
}
