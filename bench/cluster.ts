/**
 * A cluster of real node processes on loopback: node i listens on 127.0.0.(2+i) and every node
 * on the same ports (public and, for ours, cluster), so PEERS can be written before any node
 * starts. Fresh databases in a temp directory. `kind` picks our node (dist/src/main.js) or the
 * naive baseline (bench/naive, which has no cluster port: its peers and private views ride on
 * its one port).
 */
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HttpTarget, waitFor } from './http-client.js';
import { freePortOn } from './loopback-ports.js';
import { type Child, LISTEN_TIMEOUT_MS, type ProcessSet } from './processes.js';

/** The repository root, from dist/bench/cluster.js. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const NODE_MAIN = join(ROOT, 'dist', 'src', 'main.js');
export const NAIVE_MAIN = join(ROOT, 'dist', 'bench', 'naive', 'naive-node.js');
export const KOA_MAIN = join(ROOT, 'dist', 'bench', 'koa-ceiling.js');
/** Our node with per-frame authentication off (bench only: the `mac` phase's end-to-end comparison). */
/** bench/bench-node.ts: a node with bench-only options from BENCH_NODE_* variables. */
export const BENCH_NODE_MAIN = join(ROOT, 'dist', 'bench', 'bench-node.js');

/**
 * The write token of this run: the benchmark sends `by`, batches and far more views per second
 * than an anonymous client may, as an edge collector with a token does (README, "Anonymous views
 * and tokens"). Every node of every cluster accepts it.
 */
export const BENCH_WRITE_TOKEN = randomBytes(24).toString('base64url');
/** autocannon's headers for a write-token holder. */
/** An admin token for single-node phases that read `/metrics` on the public port. */
export const BENCH_ADMIN_TOKEN = randomBytes(24).toString('base64url');
export const WRITER_HEADERS: Readonly<Record<string, string>> = { authorization: `Bearer ${BENCH_WRITE_TOKEN}` };

/** How long a cluster may take until every node sees every other as connected. */
export const CONNECT_TIMEOUT_MS = 30_000;
/**
 * Nodes a cluster starts within the plain timeouts. Past it the listen and connect timeouts grow
 * in proportion: 16 processes starting at once on 2 cores (busy with other work) took longer than
 * 20 s to listen.
 */
const NODES_PER_TIMEOUT = 4;

/** `base` stretched for a cluster of `nodes` starting at once. */
export function startTimeout(base: number, nodes: number): number {
  return base * Math.max(1, nodes / NODES_PER_TIMEOUT);
}

export type ClusterKind = 'ours' | 'naive';

export interface ClusterNode {
  readonly index: number;
  readonly name: string;
  readonly databasePath: string;
  child: Child;
  readonly http: HttpTarget;
  /** Where `/api/cluster` in full and `/metrics` are read: our cluster port, the naive node's one port. */
  readonly privateHttp: HttpTarget;
}

interface ClusterStatusBody {
  readonly peers: ReadonlyArray<{ readonly state: string; readonly replicaId?: string }>;
  readonly digest: string;
}

export function nodeHost(index: number): string {
  return `127.0.0.${2 + index}`;
}

export class Cluster {
  readonly nodes: ClusterNode[] = [];
  readonly kind: ClusterKind;
  private readonly processes: ProcessSet;
  private readonly port: number;
  private readonly clusterPort: number;
  /** 32 hex characters: CLUSTER_SECRET's minimum length. */
  private readonly secret = randomBytes(16).toString('hex');
  private readonly dir: string;
  private readonly cpuProf: string;
  private readonly size: number;
  /** The node's script: NODE_MAIN or NAIVE_MAIN by kind, unless the caller named another (BENCH_NODE_MAIN). */
  private script = '';
  private readonly extraEnv: Readonly<Record<string, string>>;

  private constructor(kind: ClusterKind, processes: ProcessSet, dir: string, port: number, clusterPort: number, cpuProf: string, size: number, extraEnv: Readonly<Record<string, string>>) {
    this.size = size;
    this.extraEnv = extraEnv;
    this.kind = kind;
    this.processes = processes;
    this.dir = dir;
    this.port = port;
    this.clusterPort = clusterPort;
    this.cpuProf = cpuProf;
  }

  /** `env`: extra variables for every node (the latency probe's). */
  static async start(options: {
    kind: ClusterKind;
    nodes: number;
    processes: ProcessSet;
    dir: string;
    cpuProf?: string;
    label: string;
    script?: string;
    env?: Readonly<Record<string, string>>;
  }): Promise<Cluster> {
    const hosts = Array.from({ length: options.nodes }, (_, i) => nodeHost(i));
    const port = await freePortOn(hosts);
    let clusterPort = port;
    while (options.kind === 'ours' && clusterPort === port) clusterPort = await freePortOn(hosts);
    const cluster = new Cluster(options.kind, options.processes, options.dir, port, clusterPort, options.cpuProf ?? '', options.nodes, options.env ?? {});
    cluster.script = options.script ?? (options.kind === 'ours' ? NODE_MAIN : NAIVE_MAIN);
    try {
      const children = await Promise.all(hosts.map((_, i) => cluster.spawnNode(i, options.label)));
      children.forEach((child, i) => {
        const privateUrl = `http://${nodeHost(i)}:${clusterPort}`;
        cluster.nodes.push({
          index: i,
          name: `${options.label}-${i}`,
          databasePath: cluster.databasePath(i, options.label),
          child,
          http: new HttpTarget(child.url, { writeToken: BENCH_WRITE_TOKEN }),
          privateHttp: new HttpTarget(options.kind === 'ours' ? privateUrl : child.url, { maxSockets: 4 }),
        });
      });
      await cluster.waitConnected(startTimeout(CONNECT_TIMEOUT_MS, options.nodes));
      // Connected is not ready: our node refuses counts and live feeds (503 catching_up) until
      // its first sync rounds are merged, and the latency phase opening its feeds right after the
      // connect lost that race (3 of 9 runs on 2026-12-02, "live feed refused: HTTP 503").
      if (options.kind === 'ours') await cluster.waitReady(startTimeout(CONNECT_TIMEOUT_MS, options.nodes));
      return cluster;
    } catch (error) {
      await cluster.stop();
      await options.processes.stopAll();
      throw error;
    }
  }

  private databasePath(index: number, label: string): string {
    return join(this.dir, `${label}-${index}.db`);
  }

  private spawnNode(index: number, label: string, peers = true): Promise<Child> {
    const peerList = peers ? Array.from({ length: this.size }, (_, i) => i).filter((i) => i !== index).map((i) => `${nodeHost(i)}:${this.clusterPort}`) : [];
    const env: Record<string, string> = {
      PORT: String(this.port),
      CLUSTER_PORT: String(this.clusterPort),
      HOST: nodeHost(index),
      DATABASE_PATH: this.databasePath(index, label),
      NODE_NAME: `${label}-${index}`,
      PEERS: peerList.join(','),
      CLUSTER_SECRET: this.secret,
      WRITE_TOKENS: BENCH_WRITE_TOKEN,
      LOG_LEVEL: 'warn',
      ...this.extraEnv,
    };
    const nodeArgs = this.cpuProf !== '' ? ['--cpu-prof', '--cpu-prof-dir', this.cpuProf, '--cpu-prof-name', `${label}-${index}-${Date.now()}.cpuprofile`] : [];
    return this.processes.spawn({ name: `${label}-${index}`, script: this.script, env, nodeArgs, cwd: ROOT, port: this.port, listenTimeoutMs: startTimeout(LISTEN_TIMEOUT_MS, this.size) });
  }

  /** Waits until every node has an open session with every other (GET /api/cluster). */
  async waitConnected(timeoutMs = CONNECT_TIMEOUT_MS): Promise<void> {
    await Promise.all(
      this.nodes.map((node) =>
        waitFor(`${node.name} to connect to its ${this.nodes.length - 1} peers`, timeoutMs, async () => {
          const status = await node.privateHttp.json<ClusterStatusBody>('/api/cluster');
          const connected = new Set(status.peers.filter((p) => p.state === 'connected').map((p) => p.replicaId));
          return connected.size >= this.nodes.length - 1 ? true : undefined;
        }, 50),
      ),
    );
  }

  /** Waits until every node answers GET /readyz with 200 (it has merged its first sync rounds). */
  async waitReady(timeoutMs = CONNECT_TIMEOUT_MS): Promise<void> {
    await Promise.all(
      this.nodes.map((node) => waitFor(`${node.name} to be ready`, timeoutMs, async () => ((await node.http.send('GET', '/readyz')).status === 200 ? true : undefined), 50)),
    );
  }

  async digests(): Promise<string[]> {
    return Promise.all(this.nodes.map(async (node) => (await node.privateHttp.json<ClusterStatusBody>('/api/cluster')).digest));
  }

  /** Every page's total at one node (GET /api/pages, all pages of the listing). */
  async totals(node: ClusterNode): Promise<Map<string, number>> {
    const totals = new Map<string, number>();
    let after: string | null = null;
    for (let round = 0; round < 100_000; round++) {
      const query: string = `/api/pages?limit=1000${after === null ? '' : `&after=${encodeURIComponent(after)}`}`;
      const body = await node.http.json<{ pages: Array<{ page: string; count: number }>; next: string | null }>(query);
      for (const p of body.pages) totals.set(p.page, p.count);
      if (body.next === null) return totals;
      after = body.next;
    }
    throw new Error('page listing did not end');
  }

  /** Peer bytes sent by every node, summed (`dsqlite_replication_bytes_total{direction="sent"}`; the naive node's has no prefix). */
  async bytesSent(): Promise<number> {
    let sum = 0;
    for (const node of this.nodes) {
      const res = await node.privateHttp.send('GET', '/metrics');
      for (const line of res.body.split('\n')) {
        if (/^(dsqlite_)?replication_bytes_total\{/.test(line) && line.includes('direction="sent"')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
    }
    return sum;
  }

  /** A metric's value at one node (first sample whose line starts with `prefix`). */
  async metric(node: ClusterNode, prefix: string): Promise<number | undefined> {
    const res = await node.privateHttp.send('GET', '/metrics');
    for (const line of res.body.split('\n')) if (line.startsWith(prefix)) return Number(line.slice(line.lastIndexOf(' ') + 1));
    return undefined;
  }

  /** A metric's value at every node, in node order (NaN where a node does not have it). */
  async metricPerNode(prefix: string): Promise<number[]> {
    return Promise.all(this.nodes.map(async (n) => (await this.metric(n, prefix)) ?? Number.NaN));
  }

  /** Bytes of each node's database files (main file and WAL). */
  databaseBytes(): number[] {
    const size = (path: string): number => {
      try {
        return statSync(path).size;
      } catch {
        return 0;
      }
    };
    return this.nodes.map((n) => size(n.databasePath) + size(`${n.databasePath}-wal`));
  }

  async stop(): Promise<void> {
    for (const node of this.nodes) {
      node.http.close();
      node.privateHttp.close();
    }
    await Promise.all(this.nodes.map((n) => n.child.stop()));
  }
}
