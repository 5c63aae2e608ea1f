/**
 * `npm start` under a process manager: SIGTERM to npm reaches the node, which stops gracefully
 * (the start script `exec`s node, so the shell npm runs it in does not swallow the signal and
 * leave the node running), and npm exits 0. Flags pass through: `npm start -- --port 0`.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from '../helpers/build.js';
import { eventually } from '../helpers/eventually.js';
import { hermeticEnv, LISTEN_TIMEOUT_MS } from '../helpers/spawn-node.js';
import { TempDirs } from '../helpers/temp-dir.js';

const dirs = new TempDirs();
const leftovers: number[] = [];

beforeAll(() => ensureBuilt());
afterEach(async () => {
  for (const pid of leftovers.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  await dirs.removeAll();
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm start', () => {
  it('passes SIGTERM on to the node, which stops cleanly, and takes flags after --', async () => {
    const dir = await dirs.create('npm-start-');
    const npm = spawn('npm', ['start', '--silent', '--', '--port', '0', '--node-name', 'npm-started'], {
      cwd: ROOT,
      env: hermeticEnv({ DATABASE_PATH: join(dir, 'c.db'), PORT: undefined, NODE_NAME: undefined }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
    const lines: Array<Record<string, unknown>> = [];
    let buffered = '';
    npm.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (line.startsWith('{')) lines.push(JSON.parse(line) as Record<string, unknown>);
      }
    });
    const listening = await eventually(
      () => {
        const line = lines.find((l) => l.msg === 'listening');
        if (line === undefined) throw new Error('not listening yet');
        return line;
      },
      { timeoutMs: LISTEN_TIMEOUT_MS },
    );
    const nodePid = listening.pid as number;
    leftovers.push(nodePid);
    expect(nodePid).not.toBe(npm.pid);
    expect(listening).toMatchObject({ node: 'npm-started' });
    expect(listening.port).not.toBe(8080);
    expect((await fetch(`http://127.0.0.1:${listening.port as number}/healthz`)).status).toBe(200);

    npm.kill('SIGTERM');
    expect(await exited).toBe(0);
    await eventually(() => expect(alive(nodePid)).toBe(false));
    expect(lines.some((l) => l.msg === 'stopped' && l.pid === nodePid)).toBe(true);
  });
});
