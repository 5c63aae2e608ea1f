/**
 * Child processes the benchmark runs: cluster nodes, naive nodes and the no-work koa app. Each
 * logs a JSON `{"msg":"listening","port":…}` line; the port is read from it, never guessed.
 * Every process is tracked so the benchmark kills what it started, whatever happens.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get } from 'node:http';

/** How long a process may take to log `listening`. */
export const LISTEN_TIMEOUT_MS = 20_000;
/** Poll step of the readiness probe. */
const PROBE_INTERVAL_MS = 20;
/** How long a graceful stop may take before SIGKILL. */
export const STOP_TIMEOUT_MS = 15_000;

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  readonly host: string;
  readonly url: string;
  readonly exited: Promise<void>;
  signal(signal: NodeJS.Signals): void;
  /** Resident set size now and its peak (VmHWM), bytes; undefined once the process is gone. */
  memory(): { rss: number; peak: number } | undefined;
  /** CPU seconds the process has used so far, user + system, all threads; undefined once it is gone. */
  cpuSeconds(): number | undefined;
  /** SIGTERM, then SIGKILL after STOP_TIMEOUT_MS. Idempotent. */
  stop(): Promise<void>;
  stderr(): string;
}

export interface SpawnOptions {
  readonly name: string;
  readonly script: string;
  readonly env: Readonly<Record<string, string>>;
  readonly nodeArgs?: readonly string[];
  readonly cwd: string;
  /**
   * The port the process was told to use. Then readiness is `GET /healthz` answering 200 rather
   * than the `listening` line (which LOG_LEVEL=warn hides).
   */
  readonly port?: number;
  /** How long it may take to be ready; default LISTEN_TIMEOUT_MS. */
  readonly listenTimeoutMs?: number;
}

/** PATH and friends from our environment, none of the node settings (PEERS, FLY_* …). */
export function baseEnv(): Record<string, string> {
  const keep = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ'];
  const env: Record<string, string> = {};
  for (const key of keep) {
    const value = process.env[key];
    if (value !== undefined) env[key] = value;
  }
  return env;
}

export class ProcessSet {
  private readonly children = new Set<Child>();

  async spawn(options: SpawnOptions): Promise<Child> {
    const child = await spawnChild(options);
    this.children.add(child);
    void child.exited.then(() => this.children.delete(child));
    return child;
  }

  /** Stops every process still running (graceful first). */
  async stopAll(): Promise<void> {
    await Promise.all([...this.children].map((c) => c.stop()));
  }

  killAllNow(): void {
    for (const c of this.children) c.signal('SIGKILL');
  }
}

function readStatus(pid: number): { rss: number; peak: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
    return { rss: kb('VmRSS'), peak: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

/**
 * /proc/<pid>/stat counts utime and stime in clock ticks of USER_HZ, which Linux fixes at 100 for
 * every userspace interface whatever the kernel's HZ.
 */
const USER_HZ = 100;

/** utime + stime of a process in seconds (fields 14 and 15 of /proc/<pid>/stat, counted after the `)` that ends the name). */
export function readCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks / USER_HZ : undefined;
  } catch {
    return undefined;
  }
}

async function spawnChild(options: SpawnOptions): Promise<Child> {
  const proc: ChildProcess = spawn(process.execPath, [...(options.nodeArgs ?? []), options.script], {
    cwd: options.cwd,
    env: { ...baseEnv(), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    // Keep the tail only: a chatty process must not grow our memory.
    stderr = (stderr + chunk).slice(-20_000);
  });
  const exited = new Promise<void>((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve();
    else proc.once('exit', () => resolve());
  });
  let done = false;
  void exited.then(() => (done = true));
  const signal = (sig: NodeJS.Signals): void => {
    if (!done) proc.kill(sig);
  };

  const host = options.env.HOST ?? '127.0.0.1';
  const known = options.port;
  const listening = await new Promise<{ port: number }>((resolve, reject) => {
    let buffered = '';
    let probe: NodeJS.Timeout | undefined;
    let settled = false;
    if (known !== undefined) {
      const poll = (): void => {
        if (settled) return;
        const req = get({ host, port: known, path: '/healthz', agent: false }, (res) => {
          res.resume();
          if (res.statusCode === 200) {
            settled = true;
            clearTimeout(timer);
            resolve({ port: known });
          } else probe = setTimeout(poll, PROBE_INTERVAL_MS);
        });
        req.on('error', () => (probe = setTimeout(poll, PROBE_INTERVAL_MS)));
      };
      poll();
    }
    const listenTimeoutMs = options.listenTimeoutMs ?? LISTEN_TIMEOUT_MS;
    const timer = setTimeout(() => {
      settled = true;
      clearTimeout(probe);
      reject(new Error(`${options.name} did not start listening within ${listenTimeoutMs} ms; stderr: ${stderr}`));
    }, listenTimeoutMs);
    proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        try {
          const entry = JSON.parse(line) as { msg?: unknown; port?: unknown };
          if (entry.msg === 'listening' && typeof entry.port === 'number') {
            clearTimeout(timer);
            resolve({ port: entry.port });
          }
        } catch {
          // Not JSON: ignore.
        }
      }
      if (buffered.length > 100_000) buffered = '';
    });
    void exited.then(() => {
      settled = true;
      clearTimeout(timer);
      clearTimeout(probe);
      reject(new Error(`${options.name} exited before listening; stderr: ${stderr}`));
    });
  }).catch(async (error: unknown) => {
    signal('SIGKILL');
    await exited;
    throw error;
  });

  let stopping: Promise<void> | undefined;
  return {
    name: options.name,
    pid: proc.pid as number,
    port: listening.port,
    host,
    url: `http://${host}:${listening.port}`,
    exited,
    signal,
    memory: () => (done ? undefined : readStatus(proc.pid as number)),
    cpuSeconds: () => (done ? undefined : readCpuSeconds(proc.pid as number)),
    stderr: () => stderr,
    stop() {
      stopping ??= (async () => {
        // A stopped process cannot handle SIGTERM until it runs again.
        signal('SIGCONT');
        signal('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_TIMEOUT_MS)))]);
        clearTimeout(timer);
        signal('SIGKILL');
        await exited;
      })();
      return stopping;
    },
  };
}
