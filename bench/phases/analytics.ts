/**
 * The analytics phase (issue 16): what views over time and unique visitors cost.
 *
 * 1. Single increments, closed loop, against two lone nodes started side by side, one with
 *    ANALYTICS on (hour and day buckets, visitor sketch) and one with ANALYTICS=false (totals
 *    only), in interleaved turns (throughput.ts, runLoneNodes). Anonymous views, as from a site's
 *    visitors: rate limit off, TRUST_PROXY on and each request from another X-Forwarded-For
 *    address (so another visitor) and on another of `--pages` pages, so every commit raises many
 *    pages' buckets and registers rather than one page's. Goal: on ≥ 85% of off.
 * 2. POST /api/views batches (the throughput phase's load) against the same two nodes, also
 *    interleaved. Goal: ≥ 100,000 views/s with analytics on.
 * 3. Bytes per page per day on disk: `--analytics-storage-pages` pages, each with
 *    STORAGE_VIEWS_PER_HOUR views in every hour of a day, every view another visitor, written
 *    through the store with its clock set to each hour; file + WAL after a TRUNCATE checkpoint
 *    after the first day and after the second: the second day's growth over the pages is the
 *    figure (the first includes the pages' own rows).
 * 4. The dashboard's queries over a large database: `--dashboard-pages` pages and
 *    `--dashboard-views` views over the last 30 days, Zipf-distributed over pages (page i gets
 *    a share 1/(i+1)), one visitor a page-day, written through the store's merge as
 *    one peer's slots (seedDashboard). A real node is then started on the
 *    file and asked, one request at a time, what the dashboard asks every few seconds for its 30
 *    days (wt/i16b's dashboard.js): the site's series by day, the top pages, one page's series
 *    by day. Goal: p99 < 100 ms each.
 */
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { ThroughputResult } from '../closed-loop.js';
import { NODE_MAIN, ROOT } from '../cluster.js';
import { HttpTarget } from '../http-client.js';
import type { Knobs } from '../knobs.js';
import type { ProcessSet } from '../processes.js';
import { log } from '../progress.js';
import { round, roundSummary, seededRandom, summarize, type Summary } from '../stats.js';
import { batchLoad, BROWSER_USER_AGENT, runLoneNodes, type LoneNodeRun } from './throughput.js';
import { HLL_REGISTERS, registerOf, type VisitorRegister } from '../../src/crdt/hyperloglog.js';
import type { Slot } from '../../src/crdt/g-counter.js';
import { DAY_MS, HOUR_MS, registerT, SERIES_DAY, SERIES_HOUR, SERIES_REGISTER } from '../../src/crdt/series.js';
import { newReplicaId, type PageName } from '../../src/ids.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import type { Increment } from '../../src/store/store.js';

export const ANALYTICS_ON_LABEL = 'anonymous single increments, lone node, analytics on';
export const ANALYTICS_OFF_LABEL = 'anonymous single increments, lone node, analytics off';
export const BATCH_ON_LABEL = 'POST /api/views, lone node, analytics on';
export const BATCH_OFF_LABEL = 'POST /api/views, lone node, analytics off';
/** Distinct visitors (client addresses) the single increments cycle through. */
export const SINGLE_VISITORS = 100_000;
/** Views per page per hour in the storage measurement (each one another visitor). */
export const STORAGE_VIEWS_PER_HOUR = 10;
/** Days of the dashboard's range. */
export const DASHBOARD_DAYS = 30;
/** Pages the top list asks for (dashboard.js TOP_LIMIT). */
export const DASHBOARD_TOP_LIMIT = 10;

export interface StorageResult {
  readonly pages: number;
  readonly viewsPerPageDay: number;
  readonly visitorsPerPageDay: number;
  /** File + WAL after a TRUNCATE checkpoint: before any view, after day one, after day two. */
  readonly emptyBytes: number;
  readonly afterFirstDayBytes: number;
  readonly afterSecondDayBytes: number;
  /** (after day one − empty) / pages: the pages' own rows included. */
  readonly firstDayBytesPerPage: number;
  /** (after day two − after day one) / pages: what each further day costs a page. */
  readonly bytesPerPageDay: number;
  /** Series rows per page of day two, by kind. */
  readonly hourRowsPerPageDay: number;
  readonly dayRowsPerPageDay: number;
  readonly registerRowsPerPageDay: number;
}

export interface DashboardQuery {
  readonly name: string;
  /** One example of the path asked (the times move with the clock). */
  readonly path: string;
  readonly ms: Summary;
  readonly bytes: number;
}

export interface DashboardResult {
  readonly pages: number;
  readonly views: number;
  readonly days: number;
  readonly seedMethod: string;
  readonly seedMs: number;
  readonly databaseBytes: number;
  /** Spawn to `listening` of the node on the seeded file. */
  readonly startMs: number;
  readonly queries: readonly DashboardQuery[];
}

export interface AnalyticsResult {
  readonly rounds: number;
  readonly singleOn: ThroughputResult;
  readonly singleOff: ThroughputResult;
  /** singleOn / singleOff requests per second. */
  readonly singleRatio: number;
  /** singleOff / singleOn node CPU per request: the ratio were CPU the only limit (less moved by the host's load). */
  readonly singleCpuRatio: number;
  readonly batchOn: ThroughputResult;
  readonly batchOff: ThroughputResult;
  readonly storage: StorageResult;
  readonly dashboard: DashboardResult;
}

/** An IPv4 address for visitor `v` (< 2^24). */
function visitorAddress(v: number): string {
  return `10.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

async function runThroughputSides(knobs: Knobs, processes: ProcessSet, dir: string): Promise<ThroughputResult[]> {
  const single = (label: string): LoneNodeRun => {
    // One counter per side across its turns, so later turns bring new visitors too.
    let next = 0;
    return {
      label,
      path: '/api/pages/an-0/views',
      headers: { 'user-agent': BROWSER_USER_AGENT },
      viewsPerRequest: 1,
      connections: knobs.connections,
      vary: () => {
        const i = next++;
        return { path: `/api/pages/an-${i % knobs.pages}/views`, headers: { 'x-forwarded-for': visitorAddress((i * 7919) % SINGLE_VISITORS) } };
      },
    };
  };
  const { pages: _pages, ...batch } = batchLoad(knobs, 'an-batch');
  // Rate limit off (RATE_LIMIT_PER_IP=0): the limiter's cost is the throughput phase's figure.
  const env = { RATE_LIMIT_PER_IP: '0', TRUST_PROXY: 'true' };
  return runLoneNodes(
    processes,
    dir,
    [
      { name: 'analytics-on', env: { ...env, ANALYTICS: 'true' }, runs: [single(ANALYTICS_ON_LABEL), { ...batch, label: BATCH_ON_LABEL }] },
      { name: 'analytics-off', env: { ...env, ANALYTICS: 'false' }, runs: [single(ANALYTICS_OFF_LABEL), { ...batch, label: BATCH_OFF_LABEL }] },
    ],
    { rounds: knobs.analyticsRounds, durationMs: knobs.analyticsDurationMs, cpuProf: knobs.cpuProf },
  );
}

/** File + WAL of the database at `path`, after a TRUNCATE checkpoint (no store open on it). */
function checkpointedBytes(path: string): number {
  const db = new Database(path);
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
  const size = (p: string): number => {
    try {
      return statSync(p).size;
    } catch {
      return 0;
    }
  };
  return size(path) + size(`${path}-wal`);
}

/** A visitor register from the PRNG: 8 random bytes through the sketch's own hash-to-register. */
function randomVisitor(random: () => number): VisitorRegister {
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, Math.floor(random() * 2 ** 32));
  view.setUint32(4, Math.floor(random() * 2 ** 32));
  return registerOf(bytes);
}

async function runStorage(knobs: Knobs, dir: string): Promise<StorageResult> {
  const pages = knobs.analyticsStoragePages;
  const path = join(dir, 'analytics-storage.db');
  const random = seededRandom(knobs.seed);
  const firstDay = Math.floor(Date.now() / DAY_MS) - 2;
  let clock = firstDay * DAY_MS;
  const name = (i: number): PageName => `/blog/2026/post-${String(i).padStart(7, '0')}` as PageName;
  const writeDay = async (day: number): Promise<void> => {
    const store = await openSqliteStore({ path, now: () => clock, pruneIntervalMs: 0 });
    try {
      for (let hour = 0; hour < 24; hour++) {
        clock = day * DAY_MS + hour * HOUR_MS;
        const increments: Increment[] = [];
        for (let p = 0; p < pages; p++) for (let v = 0; v < STORAGE_VIEWS_PER_HOUR; v++) increments.push({ page: name(p), by: 1, visitor: randomVisitor(random) });
        await store.increment(increments);
      }
    } finally {
      await store.close();
    }
  };
  const empty = await openSqliteStore({ path });
  await empty.close();
  const emptyBytes = checkpointedBytes(path);
  log(`analytics: storage, ${pages.toLocaleString('en-US')} pages × 24 hours × ${STORAGE_VIEWS_PER_HOUR} views, two days`);
  await writeDay(firstDay);
  const afterFirstDayBytes = checkpointedBytes(path);
  await writeDay(firstDay + 1);
  const afterSecondDayBytes = checkpointedBytes(path);
  const db = new Database(path, { readonly: true });
  let rows: Array<{ kind: number; n: number }>;
  try {
    const second = firstDay + 1;
    rows = db
      .prepare<[number, number, number, number, number], { kind: number; n: number }>(
        'SELECT kind, count(*) AS n FROM series_slots WHERE (kind = 1 AND t >= ? AND t < ?) OR (kind = 2 AND t = ?) OR (kind = 3 AND t >= ? AND t < ?) GROUP BY kind',
      )
      .all(second * 24, second * 24 + 24, second, second * HLL_REGISTERS, (second + 1) * HLL_REGISTERS);
  } finally {
    db.close();
  }
  const perPage = (kind: number): number => round((rows.find((r) => r.kind === kind)?.n ?? 0) / pages, 1);
  return {
    pages,
    viewsPerPageDay: 24 * STORAGE_VIEWS_PER_HOUR,
    visitorsPerPageDay: 24 * STORAGE_VIEWS_PER_HOUR,
    emptyBytes,
    afterFirstDayBytes,
    afterSecondDayBytes,
    firstDayBytesPerPage: Math.round((afterFirstDayBytes - emptyBytes) / pages),
    bytesPerPageDay: Math.round((afterSecondDayBytes - afterFirstDayBytes) / pages),
    hourRowsPerPageDay: perPage(1),
    dayRowsPerPageDay: perPage(2),
    registerRowsPerPageDay: perPage(3),
  };
}

/** Slots per merge while seeding the dashboard's database (one transaction each). */
export const DASHBOARD_SEED_CHUNK = 100_000;

/**
 * Seeds the dashboard's database through the store's merge, as what one peer replica counted:
 * per page (one seq each), its total, its hour buckets, its day buckets and its day registers,
 * in chunks of whole pages, the version vector advanced over each chunk's pages. Every row is
 * written once (counting view by view through increment() rewrites each day bucket and sketch
 * every hour: measured 3–4× slower). Returns the views written.
 */
export async function seedDashboard(knobs: Knobs, path: string): Promise<number> {
  const pages = knobs.dashboardPages;
  const hours = DASHBOARD_DAYS * 24;
  const random = seededRandom(knobs.seed + 1);
  let harmonic = 0;
  for (let i = 0; i < pages; i++) harmonic += 1 / (i + 1);
  const perHour = knobs.dashboardViews / hours;
  const firstHour = Math.floor(Date.now() / HOUR_MS) - hours + 1;
  const replica = newReplicaId();
  let written = 0;
  const store = await openSqliteStore({ path, pruneIntervalMs: 0 });
  try {
    let chunk: Slot[] = [];
    let mergedUpTo = 0;
    for (let i = 0; i < pages; i++) {
      const page = dashboardPage(i);
      const seq = i + 1;
      const expected = perHour / (i + 1) / harmonic;
      const series: Slot[] = [];
      const days = new Map<number, number>();
      const registers = new Map<number, number>();
      let total = 0;
      for (let h = 0; h < hours; h++) {
        const by = Math.floor(expected) + (random() < expected - Math.floor(expected) ? 1 : 0);
        if (by === 0) continue;
        const hour = firstHour + h;
        const day = Math.floor(hour / 24);
        total += by;
        series.push({ page, replica, count: by, seq, kind: SERIES_HOUR, t: hour });
        days.set(day, (days.get(day) ?? 0) + by);
      }
      // One visitor per page-day with views: the dashboard reads the sketches' histograms (one
      // row per page-day whatever the visitors), not their registers, which would only make the
      // seed slower (the storage measurement has a register per visitor).
      for (const day of days.keys()) {
        const visitor = randomVisitor(random);
        registers.set(registerT(day, visitor.index), visitor.rank);
      }
      if (total === 0) continue;
      written += total;
      chunk.push({ page, replica, count: total, seq }, ...series);
      for (const [day, count] of days) chunk.push({ page, replica, count, seq, kind: SERIES_DAY, t: day });
      for (const [t, rank] of registers) chunk.push({ page, replica, count: rank, seq, kind: SERIES_REGISTER, t });
      if (chunk.length >= DASHBOARD_SEED_CHUNK || i === pages - 1) {
        store.merge(chunk, [{ replica, after: mergedUpTo, upTo: seq }]);
        mergedUpTo = seq;
        chunk = [];
        // Let Ctrl-C's handler run between transactions (merge is synchronous).
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (i % 1000 === 999) log(`  seeded ${i + 1} of ${pages} pages (${written.toLocaleString('en-US')} views)`);
    }
    if (chunk.length > 0) store.merge(chunk, [{ replica, after: mergedUpTo, upTo: pages }]);
  } finally {
    await store.close();
  }
  return written;
}

function dashboardPage(i: number): PageName {
  return `/blog/2026/post-${String(i).padStart(7, '0')}` as PageName;
}

async function runDashboard(knobs: Knobs, processes: ProcessSet, dir: string): Promise<DashboardResult> {
  const path = join(dir, 'analytics-dashboard.db');
  log(`analytics: seeding ${knobs.dashboardViews.toLocaleString('en-US')} views over ${knobs.dashboardPages.toLocaleString('en-US')} pages and ${DASHBOARD_DAYS} days through the store`);
  const started = performance.now();
  const views = await seedDashboard(knobs, path);
  const seedMs = Math.round(performance.now() - started);
  const databaseBytes = checkpointedBytes(path);
  log(`analytics: seeded in ${seedMs} ms (${(databaseBytes / 1024 / 1024).toFixed(0)} MB); starting a node on it`);
  const spawned = performance.now();
  const child = await processes.spawn({
    name: 'analytics-dashboard',
    script: NODE_MAIN,
    env: { PORT: '0', HOST: '127.0.0.1', DATABASE_PATH: path, NODE_NAME: 'analytics-dashboard', LOG_LEVEL: 'info' },
    cwd: ROOT,
  });
  const startMs = round(performance.now() - spawned, 1);
  const http = new HttpTarget(child.url, { maxSockets: 1 });
  try {
    const range = (): string => {
      const now = Date.now();
      return `from=${encodeURIComponent(new Date(now - DASHBOARD_DAYS * DAY_MS).toISOString())}&to=${encodeURIComponent(new Date(now).toISOString())}`;
    };
    const random = seededRandom(knobs.seed + 2);
    const kinds: Array<{ name: string; path: () => string }> = [
      { name: `GET /api/series?step=day, ${DASHBOARD_DAYS} days`, path: () => `/api/series?step=day&${range()}` },
      { name: `GET /api/top?limit=${DASHBOARD_TOP_LIMIT}, ${DASHBOARD_DAYS} days`, path: () => `/api/top?${range()}&limit=${DASHBOARD_TOP_LIMIT}` },
      // A page of the top list (a sparkline) or any page (the one clicked): Zipf's head and tail.
      { name: `GET /api/pages/:page/series?step=day, ${DASHBOARD_DAYS} days`, path: () => `/api/pages/${encodeURIComponent(dashboardPage(Math.floor(random() * knobs.dashboardPages)))}/series?step=day&${range()}` },
    ];
    const times = kinds.map((): number[] => []);
    const bytes = kinds.map(() => 0);
    const examples = kinds.map(() => '');
    let checked = false;
    for (let q = 0; q < knobs.dashboardQueries; q++) {
      for (const [k, kind] of kinds.entries()) {
        const path = kind.path();
        const t0 = performance.now();
        const res = await http.send('GET', path);
        const ms = performance.now() - t0;
        if (res.status !== 200) throw new Error(`analytics phase: GET ${path} answered ${res.status}: ${res.body.slice(0, 200)}`);
        times[k]?.push(ms);
        bytes[k] = Buffer.byteLength(res.body);
        examples[k] = path;
        if (!checked && k === 0) {
          // The node must answer what was seeded (all of it lies in the range but the hour the seed began).
          const body = JSON.parse(res.body) as { points: Array<{ views: number }> };
          const total = body.points.reduce((s, p) => s + p.views, 0);
          if (total < views * 0.9) throw new Error(`analytics phase: the site's series holds ${total} views, ${views} were seeded`);
          checked = true;
        }
      }
    }
    return {
      pages: knobs.dashboardPages,
      views,
      days: DASHBOARD_DAYS,
      seedMethod: `store.merge in the benchmark process, as one peer's slots, ${DASHBOARD_SEED_CHUNK.toLocaleString('en-US')} slots a transaction`,
      seedMs,
      databaseBytes,
      startMs,
      queries: kinds.map((kind, k) => ({ name: kind.name, path: examples[k] ?? '', ms: roundSummary(summarize(times[k] ?? []), 2), bytes: bytes[k] ?? 0 })),
    };
  } finally {
    http.close();
    await child.stop();
  }
}

export async function runAnalytics(knobs: Knobs, processes: ProcessSet, dir: string): Promise<AnalyticsResult> {
  log(`analytics: single increments and batches, analytics on vs off, ${knobs.analyticsRounds} interleaved turns`);
  const [singleOn, batchOn, singleOff, batchOff] = (await runThroughputSides(knobs, processes, dir)) as [ThroughputResult, ThroughputResult, ThroughputResult, ThroughputResult];
  const storage = await runStorage(knobs, dir);
  const dashboard = await runDashboard(knobs, processes, dir);
  return {
    rounds: knobs.analyticsRounds,
    singleOn,
    singleOff,
    singleRatio: round(singleOn.requestsPerSecond / Math.max(1, singleOff.requestsPerSecond), 3),
    singleCpuRatio: round((singleOff.nodeCpuMsPerRequest ?? 0) / Math.max(0.001, singleOn.nodeCpuMsPerRequest ?? 0), 3),
    batchOn,
    batchOff,
    storage,
    dashboard,
  };
}
