/**
 * The real compiled node as a process: concurrency, kill -9 durability, graceful SIGTERM, bad
 * configuration and the migrate command.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { WRITER_HEADERS } from '../helpers/http-client.js';
import { CLUSTER_SECRET } from '../helpers/cluster-node.js';
import { realNodes, runCommand } from '../helpers/spawn-node.js';

const { nodes, dirs } = realNodes();

/** Starts signalled mid-start before one lands ahead of `listening` (each lands there almost always). */
const STOP_DURING_START_ATTEMPTS = 5;

/** One view as a write-token holder: these tests load the node harder than any one visitor may. */
async function increment(url: string, page: string): Promise<number> {
  const response = await fetch(`${url}/api/pages/${page}/views`, { method: 'POST', headers: WRITER_HEADERS });
  if (response.status !== 200) throw new Error(`status ${response.status}: ${await response.text()}`);
  return ((await response.json()) as { count: number }).count;
}

async function count(url: string, page: string): Promise<number> {
  const response = await fetch(`${url}/api/pages/${page}`);
  return ((await response.json()) as { count: number }).count;
}

/** Closed-loop clients: each sends the next increment once the last is answered, until the node goes. */
function startLoad(url: string, page: string, clients = 16): { readonly acked: number; readonly sent: number; finished: Promise<void> } {
  const state = { acked: 0, sent: 0, finished: Promise.resolve() };
  state.finished = Promise.all(
    Array.from({ length: clients }, async () => {
      for (;;) {
        state.sent++;
        try {
          await increment(url, page);
        } catch {
          return; // Refused or connection gone: the node is stopping.
        }
        state.acked++;
      }
    }),
  ).then(() => undefined);
  return state;
}

describe('a real node process', () => {
  it('counts 200 concurrent increments to one page, none lost', async () => {
    const dir = await dirs.create('node-');
    const node = await nodes.start({ env: { DATABASE_PATH: join(dir, 'c.db') } });
    const counts = await Promise.all(Array.from({ length: 200 }, () => increment(node.url, 'hot')));
    // The store answers every unit of one group commit with the page's total after that commit
    // (src/store/store.ts), so answers within a group are equal: each is in 1..200, the last is 200.
    for (const c of counts) expect(c >= 1 && c <= 200).toBe(true);
    expect(Math.max(...counts)).toBe(200);
    expect(await count(node.url, 'hot')).toBe(200);
    // main.ts starts the node warmed up (src/warm-up.ts): the listening line says how long it took.
    expect(node.logs.find((l) => l.msg === 'listening')?.warmUpMs).toEqual(expect.any(Number));
  });

  it('keeps every acknowledged increment across kill -9 under load', async () => {
    const dir = await dirs.create('node-');
    const env = { DATABASE_PATH: join(dir, 'c.db') };
    const node = await nodes.start({ env });
    const load = startLoad(node.url, 'durable');
    await eventually(() => expect(load.acked).toBeGreaterThan(300), { timeoutMs: 20_000 });
    node.signal('SIGKILL');
    const exit = await node.exited;
    await load.finished;
    expect(exit.signal).toBe('SIGKILL');

    const again = await nodes.start({ env });
    const final = await count(again.url, 'durable');
    expect(final).toBeGreaterThanOrEqual(load.acked);
    expect(final).toBeLessThanOrEqual(load.sent);
  });

  it('stops cleanly on SIGTERM under load, committing what was queued', async () => {
    const dir = await dirs.create('node-');
    const path = join(dir, 'c.db');
    const node = await nodes.start({ env: { DATABASE_PATH: path } });
    const load = startLoad(node.url, 'term');
    await eventually(() => expect(load.acked).toBeGreaterThan(200), { timeoutMs: 20_000 });
    node.signal('SIGTERM');
    const exit = await node.exited;
    await load.finished;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(node.logs.some((l) => l.msg === 'stopped')).toBe(true);

    const db = new Database(path, { readonly: true });
    try {
      const row = db.prepare('SELECT total FROM pages WHERE page = ?').get('term') as { total: number } | undefined;
      expect(row?.total).toBeGreaterThanOrEqual(load.acked);
      expect(row?.total).toBeLessThanOrEqual(load.sent);
    } finally {
      db.close();
    }
  });

  it('stops cleanly on a SIGTERM during its start (the warm-up), so the next start keeps its replica id', async () => {
    const dir = await dirs.create('node-');
    const env = { DATABASE_PATH: join(dir, 'c.db') };
    const first = await nodes.start({ env });
    const replicaId = first.logs.find((l) => l.msg === 'listening')?.replicaId;
    first.signal('SIGTERM');
    expect(await first.exited).toEqual({ code: 0, signal: null });
    // The store logs that it opened before the warm-up, and the node logs `listening` after it:
    // signalled on the first line, the node is still starting. Should the signal land after
    // `listening` anyway (a busy host), it was an ordinary stop: that start is tried again.
    let landedDuringStart = false;
    for (let attempt = 1; !landedDuringStart && attempt <= STOP_DURING_START_ATTEMPTS; attempt++) {
      const node = await nodes.start({
        env,
        onLog: (entry, child) => {
          if (typeof entry.msg === 'string' && entry.msg.startsWith('store opened')) child.kill('SIGTERM');
        },
      });
      expect(await node.exited).toEqual({ code: 0, signal: null });
      await eventually(() => expect(node.logs.some((l) => l.msg === 'stopped')).toBe(true));
      expect(node.logs.find((l) => l.msg === 'listening')?.replicaId).toBe(replicaId);
      landedDuringStart = node.logs.some((l) => l.msg === 'signal received while starting: stopping once started');
    }
    expect(landedDuringStart, `no SIGTERM landed before "listening" in ${STOP_DURING_START_ATTEMPTS} starts`).toBe(true);
    // The clean-stop record was written: the next start keeps the id.
    const next = await nodes.start({ env });
    expect(next.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('store opened'))).toMatchObject({ outcome: 'kept', replicaId });
  });

  it('exits non-zero on bad configuration with one message naming every problem', async () => {
    const result = await runCommand(['--port', 'http', '--bogus=1'], { LOG_LEVEL: 'chatty', PEERS: 'nope', CORS_ORIGINS: 'not-an-origin' });
    expect(result.code).toBe(2);
    for (const name of ['PORT', '--bogus', 'LOG_LEVEL', 'PEERS', 'CORS_ORIGINS']) expect(result.stderr).toContain(name);
    expect(result.stderr.match(/bad configuration/g)).toHaveLength(1);
    expect(result.stdout).toBe('');
  });

  // These passed configuration and then failed in discovery after the node had started (exit 1
  // and a stack trace); now configuration applies discovery's own parser.
  it.each(['1.2.3:8080', 'node-:8080', '10.0.0.300:80'])('refuses PEERS=%s at configuration: exit 2 naming the entry', async (peer) => {
    const dir = await dirs.create('node-');
    const databasePath = join(dir, 'counters.db');
    const result = await runCommand([], { PEERS: `ok:1,${peer}`, CLUSTER_SECRET: CLUSTER_SECRET, DATABASE_PATH: databasePath });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`PEERS (--peers): "${peer}"`);
    expect(result.stderr).not.toContain('"ok:1"');
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(databasePath)).toBe(false);
  });

  it('migrates a fresh database with the migrate command and exits 0', async () => {
    const dir = await dirs.create('node-');
    const path = join(dir, 'sub', 'fresh.db');
    const result = await runCommand(['migrate'], { DATABASE_PATH: path });
    expect(result.code).toBe(0);
    expect(existsSync(path)).toBe(true);
    const line = JSON.parse(result.stdout.trim().split('\n').pop() as string) as { msg: string; from: number; to: number };
    expect(line).toMatchObject({ msg: 'migrated', from: 0 });
    expect(line.to).toBeGreaterThan(0);
    const db = new Database(path, { readonly: true });
    try {
      expect(db.pragma('user_version', { simple: true })).toBe(line.to);
    } finally {
      db.close();
    }
    // Again: nothing to do.
    const second = await runCommand(['migrate', `--database-path=${path}`]);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain(`"from":${line.to}`);
  });

  it('refuses an unknown command', async () => {
    const result = await runCommand(['serve-please']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown command');
  });

  it('reports readiness, answers unknown upgrades 404, and serves on an ephemeral port', async () => {
    const dir = await dirs.create('node-');
    const node = await nodes.start({ env: { DATABASE_PATH: join(dir, 'c.db') } });
    expect(node.port).toBeGreaterThan(0);
    expect((await fetch(`${node.url}/readyz`)).status).toBe(200);
    const { request } = await import('node:http');
    const outcome = await new Promise<string>((resolve) => {
      const req = request({ host: '127.0.0.1', port: node.port, path: '/not-a-feed', headers: { connection: 'upgrade', upgrade: 'websocket' } });
      req.on('upgrade', () => resolve('upgraded'));
      req.on('response', (res) => resolve(`response ${res.statusCode}`));
      req.on('error', () => resolve('destroyed'));
      req.end();
    });
    expect(outcome).toBe('response 404');
  });
});
