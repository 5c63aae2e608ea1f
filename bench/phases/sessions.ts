/**
 * What sessions and the catch-up cost, on real node processes on loopback:
 *
 * - readLatency: `GET /api/pages/:page` at a fixed rate (open loop, default 1,000 reads/s) without
 *   a `Counter-Session` token, then with one (a token naming the page's slots on two replicas);
 *   p50/p99 of each and the p99 added by the token (goal: under 1 ms).
 * - tokenChars: the size of that token, and of the largest a 50-page session reaches (≤ 512).
 * - catchUp: a node restored from a backup of `pages` pages (default 100,000) while its peer moved
 *   on (every page counted again there): from spawn to `/readyz` 200 (start plus catch-up), and
 *   whether every page then answers the peer's count.
 *
 * `runSessionsBench()` is for bench/main.ts; `node dist/bench/phases/sessions.js` runs it alone.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BENCH_WRITE_TOKEN, NODE_MAIN, ROOT, WRITER_HEADERS } from '../cluster.js';
import { waitFor } from '../http-client.js';
import { freePortOn } from '../loopback-ports.js';
import { type Child, ProcessSet } from '../processes.js';
import { round, roundSummary, summarize, type Summary } from '../stats.js';

const SECRET = 'bench-sessions-secret-of-32-characters';
const BATCH = 10_000;
const READY_TIMEOUT_MS = 120_000;

export interface SessionsOptions {
  readonly readsPerSecond: number;
  readonly durationMs: number;
  readonly pages: number;
}

export interface SessionsResult {
  readonly readsPerSecond: number;
  readonly withoutToken: Summary;
  readonly withToken: Summary;
  readonly addedP99Ms: number;
  readonly tokenChars: number;
  readonly maxTokenChars: number;
  readonly catchUp: { readonly pages: number; readonly restoreToReadyMs: number; readonly converged: boolean };
}

async function openLoop(url: string, rate: number, durationMs: number, headers: Record<string, string>): Promise<number[]> {
  const latencies: number[] = [];
  const pending: Array<Promise<void>> = [];
  const start = performance.now();
  const total = Math.round((rate * durationMs) / 1000);
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    const sent = performance.now();
    pending.push(
      fetch(url, { headers })
        .then((res) => res.arrayBuffer())
        .then(
          () => void latencies.push(performance.now() - sent),
          // A refused or reset connection (a loaded machine) is left out of the figures.
          () => undefined,
        ),
    );
  }
  await Promise.all(pending);
  return latencies;
}

/** The length of each turn of the with/without-token comparison. */
const INTERLEAVE_MS = 500;

function copyDatabase(from: string, to: string): void {
  for (const suffix of ['', '-wal', '-shm']) {
    rmSync(to + suffix, { force: true });
    if (existsSync(from + suffix)) copyFileSync(from + suffix, to + suffix);
  }
}

async function countAll(node: Child, pages: number): Promise<void> {
  for (let from = 0; from < pages; from += BATCH) {
    const views = Array.from({ length: Math.min(BATCH, pages - from) }, (_, i) => ({ page: `p-${from + i}`, by: 1 }));
    const res = await fetch(`${node.url}/api/views`, { method: 'POST', headers: { ...WRITER_HEADERS, 'content-type': 'application/json' }, body: JSON.stringify({ views }) });
    if (res.status !== 200) throw new Error(`batch: HTTP ${res.status}: ${await res.text()}`);
  }
}

export async function runSessionsBench(options: SessionsOptions): Promise<SessionsResult> {
  const dir = mkdtempSync(join(tmpdir(), 'dsqlite-sessions-'));
  const processes = new ProcessSet();
  try {
    const hosts = ['127.0.0.1', '127.0.0.2'];
    const port = await freePortOn(hosts);
    // Peers talk on their own port (CLUSTER_PORT), one both hosts have free too.
    let clusterPort = port;
    while (clusterPort === port) clusterPort = await freePortOn(hosts);
    const db = (i: number) => join(dir, `n${i}.db`);
    const spawnNode = (i: number) =>
      processes.spawn({
        name: `sessions-${i}`,
        script: NODE_MAIN,
        cwd: ROOT,
        port,
        env: {
          PORT: String(port),
          HOST: hosts[i]!,
          DATABASE_PATH: db(i),
          NODE_NAME: `sessions-${i}`,
          CLUSTER_PORT: String(clusterPort),
          PEERS: hosts.map((h) => `${h}:${clusterPort}`).join(','),
          CLUSTER_SECRET: SECRET,
          WRITE_TOKENS: BENCH_WRITE_TOKEN,
          LOG_LEVEL: 'warn',
          STARTUP_SYNC_TIMEOUT_MS: String(READY_TIMEOUT_MS),
        },
      });
    let a = await spawnNode(0);
    const b = await spawnNode(1);

    // Token cost: a page with slots of both nodes, read with and without its token.
    await fetch(`${a.url}/api/pages/bench/views`, { method: 'POST', headers: WRITER_HEADERS });
    const viaB = await fetch(`${b.url}/api/pages/bench/views`, { method: 'POST', headers: WRITER_HEADERS });
    await waitFor('both slots at a', 30_000, async () => ((await (await fetch(`${a.url}/api/pages/bench`)).json()) as { count: number }).count === 2 || undefined);
    const token = (await fetch(`${a.url}/api/pages/bench`, { headers: { 'counter-session': viaB.headers.get('counter-session')! } })).headers.get('counter-session')!;
    const url = `${a.url}/api/pages/bench`;
    await openLoop(url, options.readsPerSecond, 500, {}); // warm-up
    await openLoop(url, options.readsPerSecond, 500, { 'counter-session': token });
    // Interleaved in half-second turns, so a GC or a neighbour's burst lands on both alike.
    const withoutMs: number[] = [];
    const withMs: number[] = [];
    for (let spent = 0; spent < options.durationMs; spent += INTERLEAVE_MS) {
      withoutMs.push(...(await openLoop(url, options.readsPerSecond, INTERLEAVE_MS, {})));
      withMs.push(...(await openLoop(url, options.readsPerSecond, INTERLEAVE_MS, { 'counter-session': token })));
    }
    const without = summarize(withoutMs);
    const withToken = summarize(withMs);
    let session = token;
    let maxTokenChars = 0;
    for (let i = 0; i < 50; i++) {
      const res = await fetch(`${a.url}/api/pages/bench-${i}/views`, { method: 'POST', headers: { ...WRITER_HEADERS, 'counter-session': session } });
      session = res.headers.get('counter-session')!;
      maxTokenChars = Math.max(maxTokenChars, session.length);
    }

    // Catch-up after a restore: a's backup holds `pages` pages; b counts every page again; a comes
    // back from the backup and must catch up before it serves.
    await countAll(a, options.pages);
    await waitFor('b to hold every page', READY_TIMEOUT_MS, async () => ((await (await fetch(`${b.url}/api/pages/p-${options.pages - 1}`)).json()) as { count: number }).count === 1 || undefined);
    await a.stop();
    copyDatabase(db(0), join(dir, 'backup.db'));
    a = await spawnNode(0);
    await a.stop();
    copyDatabase(join(dir, 'backup.db'), db(0));
    await countAll(b, options.pages);
    const started = performance.now();
    a = await spawnNode(0);
    await waitFor('a to be ready', READY_TIMEOUT_MS, async () => (await fetch(`${a.url}/readyz`)).status === 200 || undefined);
    const restoreToReadyMs = performance.now() - started;
    const last = ((await (await fetch(`${a.url}/api/pages/p-${options.pages - 1}`)).json()) as { count: number }).count;
    return {
      readsPerSecond: options.readsPerSecond,
      withoutToken: roundSummary(without),
      withToken: roundSummary(withToken),
      addedP99Ms: round(withToken.p99 - without.p99),
      tokenChars: token.length,
      maxTokenChars,
      catchUp: { pages: options.pages, restoreToReadyMs: round(restoreToReadyMs, 1), converged: last === 2 },
    };
  } finally {
    await processes.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const pages = Number(process.env.BENCH_SESSION_PAGES ?? 100_000);
  runSessionsBench({ readsPerSecond: 1_000, durationMs: Number(process.env.BENCH_SESSION_MS ?? 5_000), pages }).then(
    (result) => process.stdout.write(`${JSON.stringify(result, null, 2)}\n`),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
