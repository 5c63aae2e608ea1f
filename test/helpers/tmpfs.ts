/**
 * A small real filesystem that fills up: a tmpfs mounted on a temp directory (needs root, or
 * CAP_SYS_ADMIN). `tmpfsProblem()` says why one cannot be mounted here, so a test can skip with
 * that reason instead of passing silently.
 *
 *   const disk = await Tmpfs.mount('2m');   // …/dsqlite-tmpfs-XXXX, 2 MiB
 *   disk.fill(); disk.free(); await disk.unmount();
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const FILLER_PREFIX = 'filler-';
/** Filler file sizes, largest first: the disk is filled down to its last free block. */
const FILLER_CHUNKS = [256 * 1024, 16 * 1024, 1024, 64];

function mount(dir: string, size: string): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
}

function unmount(dir: string): void {
  execFileSync('umount', [dir], { stdio: 'pipe' });
}

let probed: string | undefined | null = null;

/** Why a tmpfs cannot be mounted here (undefined: it can). Probed once per process. */
export function tmpfsProblem(): string | undefined {
  if (probed !== null) return probed;
  const dir = mkdtempSync(join(tmpdir(), 'dsqlite-tmpfs-probe-'));
  try {
    mount(dir, '64k');
    unmount(dir);
    probed = undefined;
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim();
    probed = `cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): ${stderr !== '' ? stderr : (error as Error).message}`;
  } finally {
    rmdirSync(dir);
  }
  return probed;
}

export class Tmpfs {
  private fillers = 0;

  private constructor(readonly dir: string) {}

  static mount(size: string): Tmpfs {
    const dir = mkdtempSync(join(tmpdir(), 'dsqlite-tmpfs-'));
    mount(dir, size);
    return new Tmpfs(dir);
  }

  /** Writes filler files until the filesystem refuses even 64 bytes. Returns the bytes written. */
  fill(): number {
    let written = 0;
    for (const size of FILLER_CHUNKS) {
      const chunk = Buffer.alloc(size);
      for (;;) {
        try {
          writeFileSync(join(this.dir, `${FILLER_PREFIX}${this.fillers++}`), chunk);
          written += size;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
          break;
        }
      }
    }
    return written;
  }

  /** Removes every filler file. */
  free(): void {
    for (const name of readdirSync(this.dir)) if (name.startsWith(FILLER_PREFIX)) rmSync(join(this.dir, name), { force: true });
  }

  unmount(): void {
    try {
      unmount(this.dir);
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
