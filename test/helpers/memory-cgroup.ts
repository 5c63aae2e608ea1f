/**
 * A memory-limited cgroup for a test's node process, nested under this process's own cgroup (so
 * it stays inside whatever limits the test runner has): cgroup v2 (`memory.max`) where the memory
 * controller is there, else cgroup v1's memory hierarchy (`memory.limit_in_bytes`). Swap is
 * limited too, so the limit is real. `memoryCgroupProblem()` says why none can be made here.
 *
 *   const group = MemoryCgroup.create(256 * 1024 * 1024);
 *   await nodes.start({ wrapper: group.wrapper(), env });   // the node starts inside it
 *   group.oomKills(); group.peakBytes(); group.remove();
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const V2_ROOT = '/sys/fs/cgroup';
const V1_MEMORY_ROOT = '/sys/fs/cgroup/memory';

type Version = 'v2' | 'v1';

/** This process's cgroup directory with a memory controller, and which version it is. */
function ownMemoryCgroup(): { version: Version; dir: string } | undefined {
  let lines: string[];
  try {
    lines = readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n');
  } catch {
    return undefined;
  }
  const v1 = lines.find((line) => line.split(':')[1]?.split(',').includes('memory'));
  if (v1 !== undefined && existsSync(V1_MEMORY_ROOT)) return { version: 'v1', dir: join(V1_MEMORY_ROOT, v1.split(':')[2] ?? '/') };
  const v2 = lines.find((line) => line.startsWith('0::'));
  if (v2 !== undefined && existsSync(join(V2_ROOT, 'cgroup.controllers'))) {
    const dir = join(V2_ROOT, v2.slice(3));
    if (readFileSync(join(V2_ROOT, 'cgroup.controllers'), 'utf8').split(/\s+/).includes('memory')) return { version: 'v2', dir };
  }
  return undefined;
}

let probed: string | undefined | null = null;

export function memoryCgroupProblem(): string | undefined {
  if (probed !== null) return probed;
  try {
    const group = MemoryCgroup.create(64 * 1024 * 1024);
    group.remove();
    probed = undefined;
  } catch (error) {
    probed = `no memory-limited cgroup can be made here (needs root and a cgroup memory controller): ${(error as Error).message}`;
  }
  return probed;
}

export class MemoryCgroup {
  private constructor(
    readonly version: Version,
    readonly dir: string,
  ) {}

  static create(limitBytes: number): MemoryCgroup {
    const own = ownMemoryCgroup();
    if (own === undefined) throw new Error('no cgroup memory controller found in /proc/self/cgroup');
    const dir = join(own.dir, `dsqlite-test-${process.pid}-${Date.now().toString(36)}`);
    mkdirSync(dir);
    const group = new MemoryCgroup(own.version, dir);
    try {
      if (own.version === 'v2') {
        writeFileSync(join(dir, 'memory.max'), String(limitBytes));
        if (existsSync(join(dir, 'memory.swap.max'))) writeFileSync(join(dir, 'memory.swap.max'), '0');
      } else {
        writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limitBytes));
        // memory + swap may not exceed memory alone: no swapping out of the limit.
        if (existsSync(join(dir, 'memory.memsw.limit_in_bytes'))) writeFileSync(join(dir, 'memory.memsw.limit_in_bytes'), String(limitBytes));
      }
    } catch (error) {
      group.remove();
      throw error;
    }
    return group;
  }

  /** Runs the command given after it inside this cgroup (for SpawnOptions.wrapper). */
  wrapper(): string[] {
    return ['sh', '-c', `echo $$ > '${join(this.dir, 'cgroup.procs')}' && exec "$@"`, 'sh'];
  }

  /** Processes the kernel's OOM killer killed in this cgroup. */
  oomKills(): number {
    const file = this.version === 'v2' ? 'memory.events' : 'memory.oom_control';
    const match = /^oom_kill (\d+)$/m.exec(readFileSync(join(this.dir, file), 'utf8'));
    return match === null ? 0 : Number(match[1]);
  }

  /** The most memory the cgroup has held (v1 max_usage, v2 peak where the kernel has it). */
  peakBytes(): number {
    const file = this.version === 'v2' ? 'memory.peak' : 'memory.max_usage_in_bytes';
    try {
      return Number(readFileSync(join(this.dir, file), 'utf8').trim());
    } catch {
      return Number.NaN;
    }
  }

  /** Removes the cgroup (its processes must be gone). */
  remove(): void {
    try {
      rmdirSync(this.dir);
    } catch {
      // Still busy or already gone: the kernel frees it once empty.
    }
  }
}
