/**
 * Real node processes for tests: `node dist/src/main.js` with PORT=0 and CLUSTER_PORT=0 on
 * loopback, resolved once the node logs its `listening` line (both ports are read from it, never
 * guessed; the cluster port only opens with a CLUSTER_SECRET). The environment
 * is hermetic: settings from the test runner's own environment (FLY_*, PEERS …) are not passed on.
 *
 *   const nodes = new NodeProcesses();
 *   afterEach(() => nodes.killAll());
 *   const node = await nodes.start({ env: { DATABASE_PATH: join(dir, 'c.db') } });
 *   await fetch(`${node.url}/healthz`);
 *   await node.signal('SIGTERM'); expect((await node.exited).code).toBe(0);
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, beforeAll } from 'vitest';
import { SETTINGS } from '../../src/config.js';
import { MAIN_JS, ROOT, ensureBuilt } from './build.js';
import { TempDirs } from './temp-dir.js';

/** The write token every test node accepts (WRITE_TOKENS), for `by`, batches and unlimited counting. */
export const TEST_WRITE_TOKEN = 'test-write-token-0123456789';
/** A browser's User-Agent: Node's fetch says `node`, which is a crawler to isbot and not counted. */
export const BROWSER_USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36';

/** How long a node may take to log `listening`. */
export const LISTEN_TIMEOUT_MS = 20_000;
/** How long a command (migrate, bad config) may take to exit. */
export const COMMAND_TIMEOUT_MS = 20_000;

export interface SpawnOptions {
  /** Settings for the node; PORT=0, CLUSTER_PORT=0 and HOST=127.0.0.1 unless given. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly args?: readonly string[];
  readonly listenTimeoutMs?: number;
  /** A command the node is run under (`sh -c '… exec "$@"' sh`), e.g. to start it inside a cgroup. */
  readonly wrapper?: readonly string[];
  /** Called with each log line as it arrives, before `listening` too (e.g. to signal the node mid-start). */
  readonly onLog?: (entry: Record<string, unknown>, child: ChildProcess) => void;
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface SpawnedNode {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly url: string;
  /** The cluster port, when the node opened one (it has a CLUSTER_SECRET). */
  readonly clusterPort: number | undefined;
  /** `http://127.0.0.1:<clusterPort>`: the private views; undefined without a cluster port. */
  readonly privateUrl: string | undefined;
  /** `127.0.0.1:<clusterPort>`, as peers put it in PEERS; undefined without a cluster port. */
  readonly clusterAddress: string | undefined;
  /** Every JSON log line so far, parsed (non-JSON lines are kept as `{ raw }`). */
  readonly logs: Array<Record<string, unknown>>;
  readonly stderr: () => string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<Exit>;
  signal(signal: NodeJS.Signals): void;
}

/** ADMIN_TOKENS of every test node (unless a test sets its own): opens the private views on the public port. */
export const TEST_ADMIN_TOKEN = 'test-admin-token-0123456789';

/** The environment a test node gets: PATH and friends, none of the runner's node settings. */
export function hermeticEnv(extra: Readonly<Record<string, string | undefined>> = {}): Record<string, string> {
  const settings = new Set<string>(SETTINGS.map((s) => s.env));
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !settings.has(key) && !key.startsWith('FLY_') && !key.startsWith('VITEST') && key !== 'NODE_OPTIONS') env[key] = value;
  }
  Object.assign(env, { PORT: '0', CLUSTER_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', NODE_NAME: 'test-node', WRITE_TOKENS: TEST_WRITE_TOKEN, ADMIN_TOKENS: TEST_ADMIN_TOKEN });
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

function watchExit(child: ChildProcess): Promise<Exit> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

/** Spawns a node and waits for its `listening` line. Rejects (and kills it) if it exits first. */
export async function spawnNode(options: SpawnOptions = {}): Promise<SpawnedNode> {
  ensureBuilt();
  const command = [...(options.wrapper ?? []), process.execPath, MAIN_JS, ...(options.args ?? [])];
  const child = spawn(command[0] as string, command.slice(1), {
    cwd: ROOT,
    env: hermeticEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = watchExit(child);
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));

  const listening = new Promise<{ port: number; clusterPort: number | undefined }>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`node did not log "listening" within ${options.listenTimeoutMs ?? LISTEN_TIMEOUT_MS} ms; stderr: ${stderr}`)), options.listenTimeoutMs ?? LISTEN_TIMEOUT_MS);
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          entry = { raw: line };
        }
        logs.push(entry);
        options.onLog?.(entry, child);
        if (entry.msg === 'listening' && typeof entry.port === 'number' && typeof entry.url === 'string') {
          clearTimeout(timer);
          resolve({ port: entry.port, clusterPort: typeof entry.clusterPort === 'number' ? entry.clusterPort : undefined });
        }
      }
    });
    void exited.then((exit) => {
      clearTimeout(timer);
      reject(new Error(`node exited (code ${exit.code}, signal ${exit.signal}) before listening; stderr: ${stderr}; stdout: ${JSON.stringify(logs)}`));
    });
  });

  try {
    const { port, clusterPort } = await listening;
    return {
      child,
      pid: child.pid as number,
      port,
      url: `http://127.0.0.1:${port}`,
      clusterPort,
      privateUrl: clusterPort === undefined ? undefined : `http://127.0.0.1:${clusterPort}`,
      clusterAddress: clusterPort === undefined ? undefined : `127.0.0.1:${clusterPort}`,
      logs,
      stderr: () => stderr,
      exited,
      signal: (signal) => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      },
    };
  } catch (error) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    throw error;
  }
}

export interface CommandResult extends Exit {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node dist/src/main.js <args>` to completion (migrate, bad configuration …). */
export async function runCommand(args: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): Promise<CommandResult> {
  ensureBuilt();
  const child = spawn(process.execPath, [MAIN_JS, ...args], { cwd: ROOT, env: hermeticEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
  const exit = await watchExit(child);
  clearTimeout(timer);
  // Let the pipes drain: 'exit' may come before the last output.
  await Promise.all([child.stdout, child.stderr].map((s) => (s === null || s.readableEnded || s.closed ? undefined : new Promise((r) => s.once('close', r)))));
  return { ...exit, stdout, stderr };
}

/** Tracks spawned nodes so afterEach can kill whatever a test left running. */
export class NodeProcesses {
  private readonly nodes = new Set<SpawnedNode>();

  async start(options: SpawnOptions = {}): Promise<SpawnedNode> {
    const node = await spawnNode(options);
    this.nodes.add(node);
    void node.exited.then(() => this.nodes.delete(node));
    return node;
  }

  async killAll(): Promise<void> {
    const nodes = [...this.nodes];
    for (const node of nodes) node.signal('SIGKILL');
    await Promise.all(nodes.map((n) => n.exited));
  }
}

/**
 * The setup a file of real-node tests shares: the build checked once before its tests, and after
 * each test every node it started killed and every temporary folder removed. Call it once, at the
 * file's top level; `startNode` starts a node on a database of its own in a fresh folder.
 *
 *   const { nodes, dirs, startNode } = realNodes();
 *   const node = await startNode({ env: { MAX_PAGES: '10' } });
 */
export function realNodes(): {
  readonly nodes: NodeProcesses;
  readonly dirs: TempDirs;
  startNode(options?: SpawnOptions, prefix?: string): Promise<SpawnedNode>;
} {
  const nodes = new NodeProcesses();
  const dirs = new TempDirs();
  beforeAll(() => ensureBuilt());
  afterEach(async () => {
    await nodes.killAll();
    await dirs.removeAll();
  });
  return {
    nodes,
    dirs,
    startNode: async (options = {}, prefix = 'node-') => nodes.start({ ...options, env: { DATABASE_PATH: join(await dirs.create(prefix), 'c.db'), ...options.env } }),
  };
}

/** The value of one line of a node's `/metrics` (read with the test admin token): `name` or `name{labels}`; undefined when absent. */
export async function nodeMetric(url: string, line: string): Promise<number | undefined> {
  const response = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  const found = (await response.text()).split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}
