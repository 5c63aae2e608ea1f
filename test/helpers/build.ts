/**
 * Makes sure dist/ is compiled before a test spawns `node dist/src/main.js`, through the same
 * script `npm start` and `npm test` use. Test files run in parallel workers, so a lock directory
 * keeps two of them from running tsc into dist/ at once. The lock lives outside dist/: a test that
 * copies dist/ (the production image's COPY) must not see it appear and vanish mid-copy.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const MAIN_JS = join(ROOT, 'dist', 'src', 'main.js');
/** A lock older than this was left by a killed worker. */
const STALE_LOCK_MS = 180_000;
const LOCK_POLL_MS = 100;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function ensureBuilt(): void {
  const cache = join(ROOT, 'node_modules', '.cache');
  const lock = join(cache, 'distributed-sqlite-build-lock');
  mkdirSync(cache, { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      try {
        if (Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS) rmSync(lock, { recursive: true, force: true });
      } catch {
        // Removed meanwhile: try again.
      }
      // Blocking is fine here: this runs once per test file, before any test.
      sleepSync(LOCK_POLL_MS);
    }
  }
  try {
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'ensure-built.mjs')], { cwd: ROOT, stdio: 'inherit' });
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
