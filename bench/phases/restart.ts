/**
 * Restart and restore times of one node under run.sh with Litestream (a `file://` replica on
 * local disk, so the figures are the node's and Litestream's, not an object store's latency):
 *
 * - restartToServingMs: `run.sh` spawned on an existing database (a deploy's restart) until
 *   `GET /healthz` answers 200; handoverToServingMs: the part after Litestream logged that it
 *   replicates and started the node (the node's own start: open, migrate, listen).
 * - restoreToServingMs / restoreToConvergedMs: the node's data folder is gone; run.sh restores its
 *   backup, the node starts and syncs with a peer that kept running, until both show one digest.
 *
 * `runRestartBench()` is meant for bench/main.ts; `node dist/bench/phases/restart.js` runs it alone and
 * prints one JSON object. Every process it starts is stopped on the way out.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BENCH_WRITE_TOKEN, NODE_MAIN, ROOT, WRITER_HEADERS } from '../cluster.js';
import { freePortOn } from '../loopback-ports.js';
import { waitFor } from '../http-client.js';
import { baseEnv } from '../processes.js';
import { roundSummary, summarize, type Summary } from '../stats.js';

/** How long one start or one convergence may take before the run fails. */
export const RESTART_TIMEOUT_MS = 30_000;
/** Poll step of the readiness and digest probes. */
const PROBE_MS = 5;
/** How long a stop may take before SIGKILL. */
const STOP_TIMEOUT_MS = 15_000;
const HOST = '127.0.0.1';
const SECRET = 'bench-restart-secret-of-32-characters';

export interface RestartOptions {
  /** Restarts and restores measured (each one of each). */
  readonly runs: number;
  /** Pages in the database, one view each plus `viewsPerPage - 1` more on the first page. */
  readonly pages: number;
}

export const DEFAULT_RESTART_OPTIONS: RestartOptions = { runs: 5, pages: 200 };

export interface RestartResult {
  readonly runs: number;
  readonly pages: number;
  readonly restartToServingMs: Summary;
  readonly handoverToServingMs: Summary;
  readonly restoreToServingMs: Summary;
  readonly restoreToConvergedMs: Summary;
}

interface Proc {
  readonly child: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function start(command: string, args: readonly string[], env: Record<string, string>): Proc {
  const child = spawn(command, args, { cwd: ROOT, env: { ...baseEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  const keep = (chunk: string) => (output = (output + chunk).slice(-50_000));
  child.stdout?.setEncoding('utf8').on('data', keep);
  child.stderr?.setEncoding('utf8').on('data', keep);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const group = (signal: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, signal);
    } catch {
      // Gone already.
    }
  };
  return {
    child,
    output: () => output,
    stop: async (signal = 'SIGTERM') => {
      if (signal === 'SIGKILL') group('SIGKILL');
      else child.kill(signal);
      const timer = setTimeout(() => group('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
      // Litestream's node child, if Litestream itself was killed.
      group('SIGKILL');
    },
  };
}

async function get(url: string): Promise<{ status: number; body: string } | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    return { status: response.status, body: await response.text() };
  } catch {
    return undefined;
  }
}

async function serving(port: number): Promise<number> {
  return waitFor('the node to serve', RESTART_TIMEOUT_MS, async () => ((await get(`http://${HOST}:${port}/healthz`))?.status === 200 ? Date.now() : undefined), PROBE_MS);
}

/** The digest of the full status, read on the node's cluster port. */
async function digest(clusterPort: number): Promise<string | undefined> {
  const answer = await get(`http://${HOST}:${clusterPort}/api/cluster`);
  return answer?.status === 200 ? (JSON.parse(answer.body) as { digest: string }).digest : undefined;
}

/** When Litestream logged that it replicates (it starts the node right after), epoch ms. */
function handoverAt(output: string): number | undefined {
  const lines = output.split('\n').filter((line) => line.includes('msg="replicating to"'));
  const time = /time=(\S+)/.exec(lines[lines.length - 1] ?? '')?.[1];
  return time === undefined ? undefined : Date.parse(time);
}

async function seed(port: number, pages: number): Promise<void> {
  const queue = Array.from({ length: pages }, (_, i) => `page-${i}`);
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let page = queue.pop(); page !== undefined; page = queue.pop()) {
        // As a write-token holder: faster than one anonymous client may count, and Node's fetch
        // is a crawler to the node's bot check.
        const response = await fetch(`http://${HOST}:${port}/api/pages/${page}/views`, { method: 'POST', headers: WRITER_HEADERS });
        if (response.status !== 200) throw new Error(`seeding answered ${response.status}`);
        await response.arrayBuffer();
      }
    }),
  );
}

export async function runRestartBench(options: RestartOptions = DEFAULT_RESTART_OPTIONS): Promise<RestartResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-restart-'));
  const running = new Set<Proc>();
  const launch = (command: string, args: readonly string[], env: Record<string, string>) => {
    const proc = start(command, args, env);
    running.add(proc);
    return proc;
  };
  try {
    // Public and cluster ports for both, all distinct.
    const ports = new Set<number>();
    while (ports.size < 4) ports.add(await freePortOn([HOST]));
    const [peerPort, nodePort, peerClusterPort, nodeClusterPort] = [...ports] as [number, number, number, number];
    const peer = launch(process.execPath, [NODE_MAIN], {
      PORT: String(peerPort),
      CLUSTER_PORT: String(peerClusterPort),
      HOST,
      NODE_NAME: 'peer',
      DATABASE_PATH: join(dir, 'peer', 'counters.db'),
      CLUSTER_SECRET: SECRET,
      LOG_LEVEL: 'warn',
    });
    await serving(peerPort);
    const dataDir = join(dir, 'node');
    const nodeEnv = {
      PORT: String(nodePort),
      CLUSTER_PORT: String(nodeClusterPort),
      HOST,
      NODE_NAME: 'node',
      DATABASE_PATH: join(dataDir, 'counters.db'),
      REPLICA_URL: `file://${join(dir, 'replica')}`,
      LITESTREAM_SYNC_INTERVAL: '100ms',
      CLUSTER_SECRET: SECRET,
      PEERS: `${HOST}:${peerClusterPort}`,
      WRITE_TOKENS: BENCH_WRITE_TOKEN,
      LOG_LEVEL: 'info',
    };
    const runSh = () => launch('bash', [join(ROOT, 'run.sh')], nodeEnv);
    let node = runSh();
    await serving(nodePort);
    await seed(nodePort, options.pages);
    await waitFor('the peer to converge', RESTART_TIMEOUT_MS, async () => {
      const [a, b] = await Promise.all([digest(nodeClusterPort), digest(peerClusterPort)]);
      return a !== undefined && a === b ? true : undefined;
    });

    const restart: number[] = [];
    const handover: number[] = [];
    const restoreServing: number[] = [];
    const restoreConverged: number[] = [];
    for (let run = 0; run < options.runs; run++) {
      // A restart: SIGTERM (Litestream ships the last WAL), then run.sh on the same folder.
      await node.stop('SIGTERM');
      running.delete(node);
      const spawned = Date.now();
      node = runSh();
      const at = await serving(nodePort);
      restart.push(at - spawned);
      const handedOver = handoverAt(node.output());
      if (handedOver !== undefined) handover.push(at - handedOver);

      // A lost volume: SIGKILL node and Litestream, delete the folder, restore, converge.
      await node.stop('SIGKILL');
      running.delete(node);
      rmSync(dataDir, { recursive: true, force: true });
      const restoreSpawned = Date.now();
      node = runSh();
      restoreServing.push((await serving(nodePort)) - restoreSpawned);
      await waitFor(
        'the restored node to converge',
        RESTART_TIMEOUT_MS,
        async () => {
          const [a, b] = await Promise.all([digest(nodeClusterPort), digest(peerClusterPort)]);
          return a !== undefined && a === b ? true : undefined;
        },
        PROBE_MS,
      );
      restoreConverged.push(Date.now() - restoreSpawned);
    }
    await node.stop('SIGTERM');
    await peer.stop('SIGTERM');
    return {
      runs: options.runs,
      pages: options.pages,
      restartToServingMs: roundSummary(summarize(restart), 1),
      handoverToServingMs: roundSummary(summarize(handover), 1),
      restoreToServingMs: roundSummary(summarize(restoreServing), 1),
      restoreToConvergedMs: roundSummary(summarize(restoreConverged), 1),
    };
  } finally {
    await Promise.all([...running].map((proc) => proc.stop('SIGKILL')));
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const runs = Number(process.env.RESTART_RUNS ?? DEFAULT_RESTART_OPTIONS.runs);
  const pages = Number(process.env.RESTART_PAGES ?? DEFAULT_RESTART_OPTIONS.pages);
  runRestartBench({ runs, pages }).then(
    (result) => process.stdout.write(`${JSON.stringify(result, null, 2)}\n`),
    (error: unknown) => {
      process.stderr.write(`${String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
