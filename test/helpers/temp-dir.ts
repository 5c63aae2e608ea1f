/**
 * Temporary directories for tests: create as many as needed, remove them all in afterEach.
 *
 *   const dirs = new TempDirs();
 *   afterEach(() => dirs.removeAll());
 *   const dir = await dirs.create('store-');
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export async function createTempDir(prefix = 'dsqlite-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeTempDir(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true, maxRetries: 3 });
}

export class TempDirs {
  private readonly paths: string[] = [];

  async create(prefix?: string): Promise<string> {
    const path = await createTempDir(prefix);
    this.paths.push(path);
    return path;
  }

  async removeAll(): Promise<void> {
    const paths = this.paths.splice(0);
    await Promise.all(paths.map(removeTempDir));
  }
}
