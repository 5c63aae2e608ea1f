/**
 * Clusters of real node processes on loopback for replication tests. Each cluster gets its own
 * random 127.a.b.0/24 (every 127/8 address is loopback on Linux), so test files running in
 * parallel never share an address; its nodes listen on .2, .3, … with one shared port, or on
 * ports of their own. A node keeps its address and database across kill -9 and restarts, so its
 * peers find it again where they left it.
 *
 *   const newCluster = useClusters(); // at file level: builds dist/, cleans up after each test
 *
 *   const nodes = await newCluster().startMesh(3, { env: FAST_LIVENESS });
 *   const [a, b, c] = nodes;
 *   await increment(a, 'home');
 *   await waitForConvergence(nodes);
 *   await c.kill9(); await c.start();
 */
import { randomInt } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeAll } from 'vitest';
import type { ClusterStatus, PeerStatus } from '../../src/http/cluster-status.js';
import { ensureBuilt } from './build.js';
import { eventually } from './eventually.js';
import { spawnNode, type Exit, type SpawnedNode } from './spawn-node.js';
import { TempDirs } from './temp-dir.js';

/**
 * Short loop intervals, so tests see syncs, discovery and reconnects within a second or so. The
 * heartbeat timeout stays at 3 s: on a loaded 2-core machine a node's event loop can stall for
 * a second, and tests that are not about silent peers must not see links drop for that.
 */
export const FAST_LIVENESS: Readonly<Record<string, string>> = {
  HEARTBEAT_INTERVAL_MS: '200',
  HEARTBEAT_TIMEOUT_MS: '3000',
  ANTI_ENTROPY_INTERVAL_MS: '300',
  DISCOVERY_INTERVAL_MS: '200',
};
export const CLUSTER_SECRET = 'cluster-test-secret';
/** Default bound for waitForConvergence. */
export const CONVERGENCE_TIMEOUT_MS = 15_000;
/** Attempts at finding a port free on every address of a cluster. */
const PORT_ATTEMPTS = 5;
/** Bound on one HTTP request of a test to a node. */
export const REQUEST_TIMEOUT_MS = 5_000;

/** `[T, T, …]` with `N` elements, so a fixed-size cluster destructures without casts (`T[]` when `N` is not a literal). */
export type Tuple<T, N extends number, Acc extends T[] = []> = number extends N ? T[] : Acc['length'] extends N ? Acc : Tuple<T, N, [...Acc, T]>;

export interface StartOptions {
  /** Settings every node gets. */
  readonly env?: Readonly<Record<string, string>>;
  /** Each node's own settings, over `env`; see `TestCluster.startNodes`. */
  readonly perNode?: (index: number, addresses: readonly string[]) => Readonly<Record<string, string>>;
  readonly names?: readonly string[];
}

export interface NodeSpec {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly env?: Readonly<Record<string, string>>;
}

/** One node of a cluster: a fixed address and database, and the process currently running it. */
export class ClusterNode {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly databasePath: string;
  readonly env: Readonly<Record<string, string>>;
  private current: SpawnedNode | undefined;
  /** Log lines of every run of this node, oldest first. */
  readonly runs: Array<Array<Record<string, unknown>>> = [];

  constructor(spec: NodeSpec, databasePath: string) {
    this.name = spec.name;
    this.host = spec.host;
    this.port = spec.port;
    this.databasePath = databasePath;
    this.env = {
      CLUSTER_SECRET,
      ...spec.env,
      HOST: spec.host,
      PORT: String(spec.port),
      NODE_NAME: spec.name,
      DATABASE_PATH: databasePath,
    };
  }

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** `host:port`, as peers dial it and as it appears in PEERS and in peer lists. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  get process(): SpawnedNode {
    if (this.current === undefined) throw new Error(`node ${this.name} is not running`);
    return this.current;
  }

  get running(): boolean {
    const child = this.current?.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** Log lines of the current (or last) run. */
  get logs(): Array<Record<string, unknown>> {
    return this.current?.logs ?? [];
  }

  /** Starts the node (again) on its address and database; resolves once it listens. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`node ${this.name} is already running`);
    this.current = await spawnNode({ env: this.env });
    this.runs.push(this.current.logs);
  }

  async kill9(): Promise<Exit> {
    const node = this.process;
    node.signal('SIGKILL');
    return node.exited;
  }

  /** Graceful stop: SIGTERM, resolves with the exit. */
  async terminate(): Promise<Exit> {
    const node = this.process;
    node.signal('SIGTERM');
    return node.exited;
  }

  /** SIGSTOP: the process freezes, its sockets stay open and silent. */
  pause(): void {
    this.process.signal('SIGSTOP');
  }

  resume(): void {
    this.process.signal('SIGCONT');
  }

  /** Kills whatever runs (a stopped process dies of SIGKILL too). */
  async destroy(): Promise<void> {
    if (this.current === undefined || !this.running) return;
    this.current.signal('SIGKILL');
    await this.current.exited;
  }
}

/** A random /24 inside 127/8, avoiding 127.0.0.0/24 (where other tests and services live). */
export function randomLoopbackSubnet(): string {
  return `127.${randomInt(1, 255)}.${randomInt(0, 256)}`;
}

function canListen(host: string, port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen({ host, port, exclusive: true }, () => {
      const bound = (server.address() as { port: number }).port;
      server.close(() => resolve(bound));
    });
  });
}

/** A port free on every host given right now (the node binding it later may still race). */
export async function freePortOn(hosts: readonly string[]): Promise<number> {
  for (let attempt = 0; attempt < PORT_ATTEMPTS * 4; attempt++) {
    const port = await canListen(hosts[0] as string, 0);
    if (port === undefined) continue;
    const rest = await Promise.all(hosts.slice(1).map((host) => canListen(host, port)));
    if (rest.every((p) => p === port)) return port;
  }
  throw new Error(`no port free on all of ${hosts.join(', ')}`);
}

export class TestCluster {
  readonly subnet = randomLoopbackSubnet();
  readonly nodes: ClusterNode[] = [];
  private nextHost = 2;

  constructor(private readonly dirs: TempDirs) {}

  /** The next unused address of this cluster's subnet. */
  allocateHost(): string {
    if (this.nextHost > 254) throw new Error('subnet exhausted');
    return `${this.subnet}.${this.nextHost++}`;
  }

  /** Declares a node (not started). */
  async add(spec: NodeSpec): Promise<ClusterNode> {
    const dir = await this.dirs.create(`cluster-${spec.name}-`);
    const node = new ClusterNode(spec, join(dir, 'counters.db'));
    this.nodes.push(node);
    return node;
  }

  /**
   * Declares `count` nodes on fresh addresses sharing one free port, and starts them all at once.
   * `perNode(i, addresses)` gives each node its own settings (PEERS …); by default every node lists every
   * address, itself included (as a DNS answer would), and recognises itself in the handshake.
   */
  async startNodes<N extends number>(count: N, options: StartOptions = {}): Promise<Tuple<ClusterNode, N>> {
    const hosts = Array.from({ length: count }, () => this.allocateHost());
    for (let attempt = 1; ; attempt++) {
      const port = await freePortOn(hosts);
      const addresses = hosts.map((host) => `${host}:${port}`);
      const nodes = await Promise.all(
        hosts.map((host, i) =>
          this.add({
            name: options.names?.[i] ?? `n${i + 1}`,
            host,
            port,
            env: { ...options.env, ...(options.perNode?.(i, addresses) ?? { PEERS: addresses.join(',') }) },
          }),
        ),
      );
      try {
        await Promise.all(nodes.map((node) => node.start()));
        return nodes as Tuple<ClusterNode, N>;
      } catch (error) {
        // The port was taken between the check and the bind: drop these and try another port.
        await Promise.all(nodes.map((node) => node.destroy()));
        for (const node of nodes) this.nodes.splice(this.nodes.indexOf(node), 1);
        if (attempt >= PORT_ATTEMPTS || !String(error).includes('EADDRINUSE')) throw error;
      }
    }
  }

  /** `startNodes`, then waits until every node holds a settled session with every other. */
  async startMesh<N extends number>(count: N, options: StartOptions = {}): Promise<Tuple<ClusterNode, N>> {
    const nodes = await this.startNodes(count, options);
    await waitForMesh(nodes);
    return nodes;
  }

  /** Kills every node still running. Safe to call twice. */
  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.destroy()));
    this.nodes.length = 0;
  }
}

/**
 * Registers a test file's hooks: dist/ is built before the first test, and after each test every
 * cluster made by the returned factory is killed, then its nodes' directories removed (in that
 * order: a running node still holds its database open). Call it once, at the file's top level;
 * a test may make as many clusters as it needs.
 */
export function useClusters(): () => TestCluster {
  const dirs = new TempDirs();
  const clusters: TestCluster[] = [];
  beforeAll(() => ensureBuilt());
  afterEach(async () => {
    try {
      await Promise.all(clusters.splice(0).map((cluster) => cluster.destroy()));
    } finally {
      await dirs.removeAll();
    }
  });
  return () => {
    const cluster = new TestCluster(dirs);
    clusters.push(cluster);
    return cluster;
  };
}

// ---- talking to nodes ---------------------------------------------------------------------

// The JSON of GET /api/cluster, typed by the node's own definition.
export type { ClusterStatus, PeerStatus } from '../../src/http/cluster-status.js';

async function request(url: string, init?: RequestInit): Promise<Response> {
  return fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
}

async function json<T>(response: Response): Promise<T> {
  if (response.status !== 200) throw new Error(`${response.url}: HTTP ${response.status}: ${await response.text()}`);
  return (await response.json()) as T;
}

/** Counts `by` views of `page` at `node`; resolves with the page's total there. */
export async function increment(node: ClusterNode, page: string, by = 1): Promise<number> {
  const init: RequestInit =
    by === 1 ? { method: 'POST' } : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ by }) };
  const body = await json<{ count: number }>(await request(`${node.url}/api/pages/${encodeURIComponent(page)}/views`, init));
  return body.count;
}

/** `POST /api/views`: all the views in one request. */
export async function incrementBatch(node: ClusterNode, views: ReadonlyArray<{ page: string; by: number }>): Promise<void> {
  await json(await request(`${node.url}/api/views`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ views }) }));
}

export async function pageCount(node: ClusterNode, page: string): Promise<number> {
  return (await json<{ count: number }>(await request(`${node.url}/api/pages/${encodeURIComponent(page)}`))).count;
}

/** Every page's total at `node`, following the pagination. */
export async function totals(node: ClusterNode): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  let after: string | null = null;
  for (let pageIndex = 0; pageIndex < 1_000; pageIndex++) {
    const query: string = after === null ? '' : `&after=${encodeURIComponent(after)}`;
    const body: { pages: Array<{ page: string; count: number }>; next: string | null } = await json(await request(`${node.url}/api/pages?limit=1000${query}`));
    for (const row of body.pages) out[row.page] = row.count;
    if (body.next === null) return out;
    after = body.next;
  }
  throw new Error('more than 1000 pages of pages');
}

export async function clusterStatus(node: ClusterNode): Promise<ClusterStatus> {
  return json<ClusterStatus>(await request(`${node.url}/api/cluster`));
}

/** This node's view of the peer at `address` (by the address it dials), if listed. */
export function peerAt(status: ClusterStatus, address: string): PeerStatus | undefined {
  return status.peers.find((peer) => peer.address === address);
}

/** True when `node` has an open session with the node whose replica id is `replicaId`. */
export function connectedTo(status: ClusterStatus, replicaId: string): boolean {
  return status.peers.some((peer) => peer.state === 'connected' && peer.replicaId === replicaId);
}

/**
 * Waits until every node has an open session with every other and every address it dials is
 * settled (connected, or itself): no dial still in flight that could yet replace a session as a
 * duplicate. Resolves with the ms it took.
 */
export async function waitForMesh(nodes: readonly ClusterNode[], timeoutMs = CONVERGENCE_TIMEOUT_MS): Promise<number> {
  const started = performance.now();
  await eventually(
    async () => {
      const statuses = await Promise.all(nodes.map(clusterStatus));
      for (const [i, status] of statuses.entries()) {
        const unsettled = status.peers.filter((p) => p.state !== 'connected' && p.state !== 'self');
        if (unsettled.length > 0) throw new Error(`${nodes[i]?.name} has unsettled peers: ${JSON.stringify(unsettled)}`);
        for (const [j, other] of statuses.entries()) {
          if (i !== j && !connectedTo(status, other.node.replicaId)) throw new Error(`${nodes[i]?.name} is not connected to ${nodes[j]?.name}`);
        }
      }
    },
    { timeoutMs, intervalMs: 25 },
  );
  return performance.now() - started;
}

export interface Convergence {
  /** The page totals every node agrees on. */
  readonly totals: Record<string, number>;
  readonly digest: string;
  /** How long it took from the call. */
  readonly ms: number;
}

/**
 * Waits until every node shows the same digest and the same page totals (read after the digest
 * matched, and checked again, so a change landing between the two reads is not mistaken for
 * agreement). Throws past the deadline with what still differed.
 */
export async function waitForConvergence(nodes: readonly ClusterNode[], options: { timeoutMs?: number } = {}): Promise<Convergence> {
  const started = performance.now();
  const result = await eventually(
    async () => {
      const before = await Promise.all(nodes.map(clusterStatus));
      const digests = before.map((s) => s.digest);
      if (new Set(digests).size !== 1) throw new Error(`digests differ: ${nodes.map((n, i) => `${n.name}=${digests[i]?.slice(0, 8)}`).join(' ')}`);
      const all = await Promise.all(nodes.map(totals));
      const first = JSON.stringify(all[0]);
      for (const [i, t] of all.entries()) {
        if (JSON.stringify(t) !== first) throw new Error(`totals differ: ${nodes[0]?.name}=${first} ${nodes[i]?.name}=${JSON.stringify(t)}`);
      }
      const after = await Promise.all(nodes.map(clusterStatus));
      if (after.some((s) => s.digest !== digests[0])) throw new Error('digest moved while reading totals');
      return { totals: all[0] as Record<string, number>, digest: digests[0] as string };
    },
    { timeoutMs: options.timeoutMs ?? CONVERGENCE_TIMEOUT_MS, intervalMs: 25 },
  );
  return { ...result, ms: performance.now() - started };
}

// ---- load ---------------------------------------------------------------------------------

export interface Load {
  /** Views acknowledged (200), per page. */
  readonly acked: Record<string, number>;
  /** Requests that failed (node killed or stopping): their views may or may not have counted. */
  failed: number;
  /** Why requests failed, with the node's name (for failure messages). */
  readonly errors: string[];
  /** Requests answered, all clients together. */
  answered: number;
  /** Asks every client to finish its current request and stop; resolves when all did. */
  stop(): Promise<void>;
  /** Resolves when every client has finished (its bound reached, or its node gone). */
  readonly done: Promise<void>;
}

export interface LoadOptions {
  readonly pages: readonly string[];
  /** Concurrent closed-loop clients per node. */
  readonly clientsPerNode?: number;
  /** Hard bound on requests per client. */
  readonly maxRequestsPerClient?: number;
  /** Every `batchEvery`-th request of a client is a `POST /api/views` batch. */
  readonly batchEvery?: number;
}

/**
 * Closed-loop clients against each node, cycling through pages with `by` from 1 to 3 and an
 * occasional batch. A client whose request fails stops (its node is down); the rest go on.
 */
export function startLoad(nodes: readonly ClusterNode[], options: LoadOptions): Load {
  const clients = options.clientsPerNode ?? 4;
  const maxRequests = options.maxRequestsPerClient ?? 2_000;
  const batchEvery = options.batchEvery ?? 7;
  let stopping = false;
  const load: Omit<Load, 'stop' | 'done'> = {
    acked: Object.fromEntries(options.pages.map((p) => [p, 0])),
    failed: 0,
    errors: [],
    answered: 0,
  };
  const ack = (page: string, by: number) => {
    load.acked[page] = (load.acked[page] ?? 0) + by;
  };
  const runs = nodes.flatMap((node, n) =>
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; i < maxRequests && !stopping; i++) {
        const seed = n * 7919 + c * 104_729 + i;
        const page = options.pages[seed % options.pages.length] as string;
        const by = 1 + (seed % 3);
        try {
          if (i % batchEvery === batchEvery - 1) {
            const other = options.pages[(seed + 1) % options.pages.length] as string;
            await incrementBatch(node, [
              { page, by },
              { page: other, by: 1 },
            ]);
            ack(page, by);
            ack(other, 1);
          } else {
            await increment(node, page, by);
            ack(page, by);
          }
          load.answered++;
        } catch (error) {
          load.failed++;
          load.errors.push(`${node.name}: ${error instanceof Error ? `${error.message} ${String(error.cause ?? '')}` : String(error)}`);
          return;
        }
      }
    }),
  );
  const all = Promise.all(runs).then(() => undefined);
  return Object.assign(load, {
    done: all,
    stop: async () => {
      stopping = true;
      await all;
    },
  });
}

export function sum(record: Readonly<Record<string, number>>): number {
  return Object.values(record).reduce((a, b) => a + b, 0);
}

/** Log lines of `node`'s runs matching `fields` exactly on each given key. */
export function logLines(node: ClusterNode, fields: Readonly<Record<string, unknown>>): Array<Record<string, unknown>> {
  return node.runs.flat().filter((line) => Object.entries(fields).every(([key, value]) => line[key] === value));
}
