/**
 * Clusters of real node processes on loopback for replication tests. Each cluster gets its own
 * random 127.a.b.0/24 (see loopback-ports.ts), so test files running in parallel never share an
 * address; its nodes listen on .2, .3, … with one shared public port and one shared cluster port
 * (DNS A answers name peers' cluster ports, so they must agree), or on ports of their own. A node
 * keeps its address and database across kill -9 and restarts (cluster-node.ts). Talking to nodes
 * is in http-client.ts, waiting for agreement in cluster-waits.ts, write load in load.ts.
 *
 *   const newCluster = useClusters(); // at file level: builds dist/, cleans up after each test
 *
 *   const nodes = await newCluster().startMesh(3, { env: FAST_LIVENESS });
 *   const [a, b, c] = nodes;
 *   await increment(a, 'home');
 *   await waitForConvergence(nodes);
 *   await c.kill9(); await c.start();
 */
import { join } from 'node:path';
import { afterEach, beforeAll } from 'vitest';
import { ensureBuilt } from './build.js';
import { ClusterNode, type NodeSpec } from './cluster-node.js';
import { waitForMesh } from './cluster-waits.js';
import { freePortOn, randomLoopbackSubnet } from './loopback-ports.js';
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
/** Attempts at starting a cluster's nodes on one port, when another process took it first. */
const PORT_ATTEMPTS = 5;

/** `[T, T, …]` with `N` elements, so a fixed-size cluster destructures without casts (`T[]` when `N` is not a literal). */
export type Tuple<T, N extends number, Acc extends T[] = []> = number extends N ? T[] : Acc['length'] extends N ? Acc : Tuple<T, N, [...Acc, T]>;

export interface StartOptions {
  /** Settings every node gets. */
  readonly env?: Readonly<Record<string, string>>;
  /** Each node's own settings, over `env`; see `TestCluster.startNodes`. */
  readonly perNode?: (index: number, addresses: readonly string[]) => Readonly<Record<string, string>>;
  readonly names?: readonly string[];
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

  /** A public port and a cluster port, both free on every host given. */
  async freePorts(hosts: readonly string[]): Promise<{ port: number; clusterPort: number }> {
    const port = await freePortOn(hosts);
    for (;;) {
      const clusterPort = await freePortOn(hosts);
      if (clusterPort !== port) return { port, clusterPort };
    }
  }

  /**
   * Declares `count` nodes on fresh addresses sharing one free public port and one free cluster
   * port, and starts them all at once. `perNode(i, addresses)` gives each node its own settings
   * (PEERS …), `addresses` being the cluster ports; by default every node lists every address,
   * itself included (as a DNS answer would), and recognises itself in the handshake.
   */
  async startNodes<N extends number>(count: N, options: StartOptions = {}): Promise<Tuple<ClusterNode, N>> {
    const hosts = Array.from({ length: count }, () => this.allocateHost());
    for (let attempt = 1; ; attempt++) {
      const { port, clusterPort } = await this.freePorts(hosts);
      const addresses = hosts.map((host) => `${host}:${clusterPort}`);
      const nodes = await Promise.all(
        hosts.map((host, i) =>
          this.add({
            name: options.names?.[i] ?? `n${i + 1}`,
            host,
            port,
            clusterPort,
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
