/**
 * A real node's `/metrics`, read on its cluster port after some traffic and a replication session,
 * is clean by `promtool check metrics` (Prometheus's own linter: names, types, help, suffixes),
 * and every metric carries the one prefix. Skips, saying so, where promtool is not installed
 * (Debian's `prometheus` package ships it; CI installs it).
 */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METRIC_PREFIX } from '../../src/metrics.js';
import { ensureBuilt } from '../helpers/build.js';
import { CLUSTER_SECRET } from '../helpers/cluster-node.js';
import { eventually } from '../helpers/eventually.js';
import { clusterStatus, connectedTo, increment } from '../helpers/http-client.js';
import { NodeProcesses } from '../helpers/spawn-node.js';
import { TempDirs } from '../helpers/temp-dir.js';

const PROMTOOL = process.env.PROMTOOL ?? 'promtool';
const hasPromtool = spawnSync(PROMTOOL, ['--version'], { stdio: 'ignore' }).status === 0;
if (!hasPromtool) console.warn(`SKIPPED: ${PROMTOOL} not found; install Debian's "prometheus" package (or set PROMTOOL) to lint /metrics`);

const nodes = new NodeProcesses();
const dirs = new TempDirs();

beforeAll(() => ensureBuilt());
afterAll(async () => {
  await nodes.killAll();
  await dirs.removeAll();
});

function promtoolCheck(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}

describe.skipIf(!hasPromtool)('/metrics', () => {
  it('passes promtool check metrics, every name under one prefix', async () => {
    const dir = await dirs.create('metrics-');
    const env = { CLUSTER_SECRET, HEARTBEAT_INTERVAL_MS: '200', ANTI_ENTROPY_INTERVAL_MS: '300' };
    const a = await nodes.start({ env: { ...env, NODE_NAME: 'a', DATABASE_PATH: join(dir, 'a.db') } });
    const b = await nodes.start({ env: { ...env, NODE_NAME: 'b', DATABASE_PATH: join(dir, 'b.db'), PEERS: a.clusterAddress } });
    const aId = (await clusterStatus(a)).node.replicaId;
    await eventually(async () => expect(connectedTo(await clusterStatus(b), aId)).toBe(true));
    await increment(b, 'home', 2);
    await fetch(`${b.url}/api/pages/%ZZ`); // a 400, so an error series exists too

    const response = await fetch(`${b.privateUrl}/metrics`);
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toContain(`${METRIC_PREFIX}replication_frames_total{`);
    const names = new Set(text.split('\n').filter((line) => line.startsWith('# TYPE ')).map((line) => line.split(' ')[2] as string));
    expect([...names].filter((name) => !name.startsWith(METRIC_PREFIX))).toEqual([]);

    const { code, output } = await promtoolCheck(text);
    expect(output).toBe('');
    expect(code).toBe(0);
  });
});
