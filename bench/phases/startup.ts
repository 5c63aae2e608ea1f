/**
 * The startup phase: what a start and a metrics scrape cost on a database of `startupPages`
 * pages (issue 14: linear in pages before migration 0003, 4.5 s and 1.45 s at 1.1 M pages). The
 * database is built in this process through the store itself, then a real node process opens
 * it: the time from spawn to its `listening` line, next to the same on an empty database (Node's
 * own boot and module loading, which do not grow with pages), then GET /metrics and
 * GET /api/cluster timed from the client side. The first of each after a start is reported on
 * its own: it was the slow one (issue 14: the first major GC and code loaded on first use landed
 * in it; src/warm-up.ts does that work before `listening`). The empty database's node is scraped
 * the same way first: the same first-scrape cost without the pages, and the benchmark's own
 * client warmed before the timed starts.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { BENCH_ADMIN_TOKEN, NODE_MAIN, ROOT } from '../cluster.js';
import { HttpTarget } from '../http-client.js';
import type { Knobs } from '../knobs.js';
import type { ProcessSet } from '../processes.js';
import { log } from '../progress.js';
import type { StartupResult } from '../result.js';
import { percentile, round } from '../stats.js';
import type { PageName } from '../../src/ids.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';

/** Pages per group-commit unit while building the database (one transaction each). */
export const STARTUP_BUILD_CHUNK = 50_000;
/** Node starts timed per database (the median is reported). */
export const STARTUP_STARTS = 3;
/** Scrapes of /metrics (and reads of /api/cluster) timed per start. */
export const STARTUP_SCRAPES = 20;

/** A page name of a realistic length (about 24 bytes). */
function pageName(i: number): PageName {
  return `/blog/2026/post-${String(i).padStart(7, '0')}` as PageName;
}

async function buildDatabase(path: string, pages: number): Promise<number> {
  const started = performance.now();
  const store = await openSqliteStore({ path });
  try {
    for (let done = 0; done < pages; done += STARTUP_BUILD_CHUNK) {
      const chunk = Math.min(STARTUP_BUILD_CHUNK, pages - done);
      await store.increment(Array.from({ length: chunk }, (_, i) => ({ page: pageName(done + i), by: 1 + ((done + i) % 7) })));
    }
  } finally {
    await store.close();
  }
  return round(performance.now() - started, 0);
}

/** Spawns a node on `path` and returns ms from spawn to its `listening` line; stops it after `measure`. */
async function timedStart(processes: ProcessSet, path: string, label: string, measure?: (http: HttpTarget) => Promise<void>): Promise<number> {
  const started = performance.now();
  const child = await processes.spawn({
    name: label,
    script: NODE_MAIN,
    env: { PORT: '0', HOST: '127.0.0.1', DATABASE_PATH: path, NODE_NAME: label, LOG_LEVEL: 'info', ADMIN_TOKENS: BENCH_ADMIN_TOKEN },
    cwd: ROOT,
  });
  const ms = performance.now() - started;
  // Reads the private views (/metrics, the full /api/cluster) with an admin token.
  const http = new HttpTarget(child.url, { maxSockets: 1, adminToken: BENCH_ADMIN_TOKEN });
  try {
    await measure?.(http);
  } finally {
    http.close();
    await child.stop();
  }
  return round(ms, 1);
}

/** How long after its start the node shows a digest again, polling /api/cluster (ms from spawn). */
const RECOUNT_POLL_MS = 20;
/** The recount is given this long before the phase gives up on it. */
const RECOUNT_TIMEOUT_MS = 120_000;

/**
 * The full database as a kill -9 within DIGEST_STORE_DELAY_MS of a commit (or a restore of a
 * backup taken then) leaves it: the stored digest row NULL. A copy, so the other starts keep theirs.
 */
function withUnknownDigest(full: string, path: string): void {
  copyFileSync(full, path);
  const db = new Database(path);
  try {
    db.prepare('UPDATE store_stats SET digest = NULL WHERE id = 1').run();
  } finally {
    db.close();
  }
}

async function timed(http: HttpTarget, path: string): Promise<{ ms: number; bytes: number }> {
  const started = performance.now();
  const res = await http.send('GET', path);
  const ms = performance.now() - started;
  if (res.status !== 200) throw new Error(`startup phase: GET ${path} answered ${res.status}: ${res.body.slice(0, 200)}`);
  return { ms, bytes: Buffer.byteLength(res.body) };
}

/** The times of one start's scrapes and cluster reads, in order (the first is the one after the start). */
interface Reads {
  readonly scrapes: number[];
  readonly clusterReads: number[];
  metricsBytes: number;
  clusterBytes: number;
}

async function timedReads(http: HttpTarget, into: Reads): Promise<void> {
  for (let s = 0; s < STARTUP_SCRAPES; s++) {
    const metrics = await timed(http, '/metrics');
    into.scrapes.push(metrics.ms);
    into.metricsBytes = metrics.bytes;
    const cluster = await timed(http, '/api/cluster');
    into.clusterReads.push(cluster.ms);
    into.clusterBytes = cluster.bytes;
  }
}

const median = (values: readonly number[]): number => round(percentile([...values].sort((a, b) => a - b), 50), 1);
const max = (values: readonly number[]): number => round(Math.max(...values), 1);

/** first: the slowest first read after a start; p50: the median of the rest; max: the slowest of all. */
function summarize(starts: readonly (readonly number[])[]): { first: number; p50: number; max: number } {
  return { first: max(starts.map((reads) => reads[0] ?? Number.NaN)), p50: median(starts.flatMap((reads) => reads.slice(1))), max: max(starts.flat()) };
}

export async function runStartup(knobs: Knobs, processes: ProcessSet, dir: string): Promise<StartupResult> {
  const empty = join(dir, 'startup-empty.db');
  const full = join(dir, 'startup-full.db');
  log(`startup: building a database of ${knobs.startupPages.toLocaleString('en-US')} pages`);
  const buildMs = await buildDatabase(full, knobs.startupPages);
  await buildDatabase(empty, 0);

  const unknown = join(dir, 'startup-unknown-digest.db');
  const emptyStarts: number[] = [];
  const unknownStarts: number[] = [];
  const recounts: number[] = [];
  const fullStarts: number[] = [];
  const emptyReads: Reads[] = [];
  const fullReads: Reads[] = [];
  let countedPages = 0;
  for (let i = 0; i < STARTUP_STARTS; i++) {
    log(`startup: start ${i + 1} of ${STARTUP_STARTS} (empty, then ${knobs.startupPages.toLocaleString('en-US')} pages)`);
    const onEmpty: Reads = { scrapes: [], clusterReads: [], metricsBytes: 0, clusterBytes: 0 };
    emptyReads.push(onEmpty);
    emptyStarts.push(await timedStart(processes, empty, `startup-empty-${i}`, (http) => timedReads(http, onEmpty)));
    const onFull: Reads = { scrapes: [], clusterReads: [], metricsBytes: 0, clusterBytes: 0 };
    fullReads.push(onFull);
    fullStarts.push(
      await timedStart(processes, full, `startup-full-${i}`, async (http) => {
        await timedReads(http, onFull);
        const body = (await http.send('GET', '/metrics')).body;
        countedPages = Number(/^dsqlite_store_pages (\d+)$/m.exec(body)?.[1] ?? Number.NaN);
      }),
    );
    // As after a kill -9: the digest is recounted in the background, the start must not wait for it.
    withUnknownDigest(full, unknown);
    const spawned = performance.now();
    unknownStarts.push(
      await timedStart(processes, unknown, `startup-unknown-${i}`, async (http) => {
        for (;;) {
          if (performance.now() - spawned > RECOUNT_TIMEOUT_MS) throw new Error(`startup phase: the digest was still being recounted ${RECOUNT_TIMEOUT_MS} ms after the start`);
          const digest = (JSON.parse((await http.send('GET', '/api/cluster')).body) as { digest: string }).digest;
          if (!digest.startsWith('recounting:')) break;
          await new Promise((resolve) => setTimeout(resolve, RECOUNT_POLL_MS));
        }
        recounts.push(performance.now() - spawned);
      }),
    );
  }
  const scrapes = summarize(fullReads.map((reads) => reads.scrapes));
  const clusterReads = summarize(fullReads.map((reads) => reads.clusterReads));
  const emptyScrapes = summarize(emptyReads.map((reads) => reads.scrapes));
  return {
    pages: knobs.startupPages,
    countedPages,
    buildMs,
    startEmptyMs: median(emptyStarts),
    startFullMs: median(fullStarts),
    startFullMaxMs: max(fullStarts),
    startUnknownDigestMs: median(unknownStarts),
    recountDoneMs: median(recounts),
    scrapeFirstMs: scrapes.first,
    scrapeP50Ms: scrapes.p50,
    scrapeMaxMs: scrapes.max,
    metricsBytes: fullReads.at(-1)?.metricsBytes ?? 0,
    emptyScrapeFirstMs: emptyScrapes.first,
    emptyScrapeP50Ms: emptyScrapes.p50,
    emptyScrapeMaxMs: emptyScrapes.max,
    clusterFirstMs: clusterReads.first,
    clusterP50Ms: clusterReads.p50,
    clusterMaxMs: clusterReads.max,
    clusterBytes: fullReads.at(-1)?.clusterBytes ?? 0,
  };
}
