/**
 * One node of a test cluster: a fixed host, public port, cluster port and database, and the
 * process currently running it. The node keeps all of them across kill -9 and restarts, so its
 * peers find it again where they left it; the log lines of every run are kept.
 */
import { spawnNode, type Exit, type SpawnedNode } from './spawn-node.js';

/** At least the 32 characters a node requires (MIN_CLUSTER_SECRET_LENGTH). */
export const CLUSTER_SECRET = 'cluster-test-secret-0123456789abcdef';

export interface NodeSpec {
  readonly name: string;
  readonly host: string;
  /** The public HTTP port. */
  readonly port: number;
  /** The cluster port: peers dial it, and the private views are read from it. */
  readonly clusterPort: number;
  readonly env?: Readonly<Record<string, string>>;
}

export class ClusterNode {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly clusterPort: number;
  readonly databasePath: string;
  readonly env: Readonly<Record<string, string>>;
  private current: SpawnedNode | undefined;
  /** Log lines of every run of this node, oldest first. */
  readonly runs: Array<Array<Record<string, unknown>>> = [];

  constructor(spec: NodeSpec, databasePath: string) {
    this.name = spec.name;
    this.host = spec.host;
    this.port = spec.port;
    this.clusterPort = spec.clusterPort;
    this.databasePath = databasePath;
    this.env = {
      CLUSTER_SECRET,
      ...spec.env,
      HOST: spec.host,
      PORT: String(spec.port),
      CLUSTER_PORT: String(spec.clusterPort),
      NODE_NAME: spec.name,
      DATABASE_PATH: databasePath,
    };
  }

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** The cluster port's URL: the private views (`/api/cluster` in full, `/metrics`). */
  get privateUrl(): string {
    return `http://${this.host}:${this.clusterPort}`;
  }

  /** `host:clusterPort`, as peers dial it and as it appears in PEERS and in peer lists. */
  get address(): string {
    return `${this.host}:${this.clusterPort}`;
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

/** Log lines of `node`'s runs matching `fields` exactly on each given key. */
export function logLines(node: ClusterNode, fields: Readonly<Record<string, unknown>>): Array<Record<string, unknown>> {
  return node.runs.flat().filter((line) => Object.entries(fields).every(([key, value]) => line[key] === value));
}
