/**
 * The cluster link is private and fails closed (issue 11), against real node processes: peers on
 * their own port, no cluster without a secret, the private views only there or with an admin
 * token, and the public views free of addresses, replica ids and error text.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../helpers/build.js';
import { CLUSTER_SECRET } from '../helpers/cluster-node.js';
import { eventually } from '../helpers/eventually.js';
import { a, startDnsServer } from '../helpers/dns-server.js';
import { clusterStatus, connectedTo, increment, pageCount } from '../helpers/http-client.js';
import { NodeProcesses, runCommand, TEST_ADMIN_TOKEN } from '../helpers/spawn-node.js';
import { TempDirs } from '../helpers/temp-dir.js';

const nodes = new NodeProcesses();
const dirs = new TempDirs();
const FAST = { HEARTBEAT_INTERVAL_MS: '200', HEARTBEAT_TIMEOUT_MS: '3000', ANTI_ENTROPY_INTERVAL_MS: '300' };

beforeAll(() => ensureBuilt());
afterEach(async () => {
  await nodes.killAll();
  await dirs.removeAll();
});

/** The one line a refused start prints, and nothing else. */
function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^distributed-sqlite: /);
  return lines[0] as string;
}

/** What an upgrade to `path` gets: `upgraded`, `response <status>` or `destroyed`. */
function upgradeOutcome(port: number, path: string): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
    ws.on('open', () => {
      ws.terminate();
      resolve('upgraded');
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve(`response ${res.statusCode ?? '?'}`);
      ws.terminate();
    });
    ws.on('error', () => resolve('destroyed'));
  });
}

/** The first cluster message of the live feed, as text. */
function liveClusterMessage(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/live?page=home&cluster=1`);
    ws.on('message', (data: Buffer) => {
      const text = data.toString('utf8');
      if (!text.includes('"type":"cluster"')) return;
      ws.terminate();
      resolve(text);
    });
    ws.on('error', reject);
  });
}

/** A port nothing listens on (bound, noted, closed). */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Something holding a port, as another program would. */
async function holdPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, server };
}

async function db(name = 'counters.db'): Promise<string> {
  return join(await dirs.create('cluster-port-'), 'data', name);
}

describe('fail closed', () => {
  it('refuses to start with peers and no secret: exit 2, one line saying what to set, nothing created', async () => {
    const databasePath = await db();
    const result = await runCommand([], { PEERS: '127.0.0.1:9', DATABASE_PATH: databasePath });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/CLUSTER_SECRET \(--cluster-secret\) must be set because PEERS is set/);
    expect(result.stderr).toContain('openssl rand -base64 32');
    expect(existsSync(databasePath)).toBe(false);
  });

  it('refuses DNS discovery without a secret, and a secret shorter than 32 characters', async () => {
    const dnsOnly = await runCommand([], { DISCOVERY_DNS: 'peers.test', DATABASE_PATH: await db() });
    expect(dnsOnly.code).toBe(2);
    expect(dnsOnly.stderr).toContain('because DISCOVERY_DNS is set');
    const short = await runCommand([], { PEERS: '127.0.0.1:9', CLUSTER_SECRET: 'x'.repeat(31), DATABASE_PATH: await db() });
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('is 31 characters; it needs at least 32');
  });

  it('does not open the cluster port at all for a lone node without a secret', async () => {
    const clusterPort = await deadPort();
    const node = await nodes.start({ env: { DATABASE_PATH: await db(), CLUSTER_PORT: String(clusterPort) } });
    expect(node.clusterPort).toBeUndefined();
    expect(node.logs.find((l) => l.msg === 'listening')).toMatchObject({ clusterPort: null });
    expect(await upgradeOutcome(clusterPort, '/cluster')).toBe('destroyed'); // connection refused
    expect(await upgradeOutcome(node.port, '/cluster')).toBe('response 404');
    expect(await increment(node, 'home')).toBe(1);
  });
});

describe('the cluster port', () => {
  it('serves peers on the cluster port only: /cluster on the public port is a 404, the cluster port handshakes', async () => {
    const env = { ...FAST, CLUSTER_SECRET };
    const a = await nodes.start({ env: { ...env, NODE_NAME: 'a', DATABASE_PATH: await db('a.db') } });
    expect(a.clusterPort).toBeGreaterThan(0);
    expect(a.clusterPort).not.toBe(a.port);
    // The listening line names both ports.
    expect(a.logs.find((l) => l.msg === 'listening')).toMatchObject({ port: a.port, clusterPort: a.clusterPort });
    expect(await upgradeOutcome(a.port, '/cluster')).toBe('response 404');

    const b = await nodes.start({ env: { ...env, NODE_NAME: 'b', DATABASE_PATH: await db('b.db'), PEERS: a.clusterAddress } });
    const [sa, sb] = [await clusterStatus(a), await clusterStatus(b)];
    await eventually(async () => expect(connectedTo(await clusterStatus(b), sa.node.replicaId)).toBe(true));
    await eventually(async () => expect(connectedTo(await clusterStatus(a), sb.node.replicaId)).toBe(true));
    await increment(b, 'home', 3);
    await eventually(async () => expect(await pageCount(a, 'home')).toBe(3));
  });

  it('serves /metrics and the full /api/cluster privately: on the cluster port, or with an admin token', async () => {
    const node = await nodes.start({ env: { CLUSTER_SECRET, DATABASE_PATH: await db() } });
    const metrics = (url: string, headers: Record<string, string> = {}) => fetch(`${url}/metrics`, { headers });
    const anonymous = await metrics(node.url);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer');
    expect(((await anonymous.json()) as { error: { code: string } }).error.code).toBe('admin_token_required');
    const wrong = await metrics(node.url, { authorization: 'Bearer wrong-token-0123456789' });
    expect(wrong.status).toBe(403);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe('admin_token_refused');
    expect((await metrics(node.url, { authorization: `Bearer ${TEST_ADMIN_TOKEN}` })).status).toBe(200);
    expect((await metrics(node.privateUrl as string)).status).toBe(200);

    const full = (await (await fetch(`${node.url}/api/cluster`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } })).json()) as Record<string, unknown>;
    expect(full).toHaveProperty('digest');
    expect(full).toHaveProperty('versionVector');
  });

  it('serves the admin routes on the cluster port without a token, and on the public port only with one', async () => {
    const node = await nodes.start({ env: { CLUSTER_SECRET, DATABASE_PATH: await db() } });
    await increment(node, 'home', 5);
    const reset = (url: string, headers: Record<string, string> = {}) => fetch(`${url}/api/admin/pages/home/reset`, { method: 'POST', headers });
    // Public, no token or a wrong one: refused, and the count stays.
    const anonymous = await reset(node.url);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { error: { code: string } }).error.code).toBe('admin_token_required');
    expect((await reset(node.url, { authorization: 'Bearer wrong-token-0123456789' })).status).toBe(403);
    expect(await pageCount(node, 'home')).toBe(5);
    // The cluster port: no token needed.
    const privately = await reset(node.privateUrl as string);
    expect(privately.status).toBe(200);
    expect(await privately.json()).toMatchObject({ page: 'home', count: 0 });
    expect(await pageCount(node, 'home')).toBe(0);
    // Public with the admin token.
    await increment(node, 'home', 2);
    expect((await reset(node.url, { authorization: `Bearer ${TEST_ADMIN_TOKEN}` })).status).toBe(200);
    expect(await pageCount(node, 'home')).toBe(0);
  });

  it('shows the public no address or error text (nor replica ids in /api/cluster), and /api/cluster not across origins', async () => {
    // A peer that is down: its dial error names its address.
    const down = `127.0.0.1:${await deadPort()}`;
    const node = await nodes.start({ env: { ...FAST, CLUSTER_SECRET, NODE_NAME: 'public-view', FLY_REGION: 'ams', DATABASE_PATH: await db(), PEERS: down } });
    await eventually(async () => expect((await clusterStatus(node)).peers.find((p) => p.address === down)?.lastError).toMatch(/ECONNREFUSED/));
    const full = await clusterStatus(node);
    const secrets = [down, full.node.address, `127.0.0.1:${node.clusterPort}`, 'ECONNREFUSED', 'cannot dial'];

    const response = await fetch(`${node.url}/api/cluster`, { headers: { origin: 'https://elsewhere.example' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    const text = await response.text();
    expect(JSON.parse(text)).toEqual({
      nodes: [
        { name: 'public-view', region: 'ams', state: 'self' },
        { name: 'unnamed peer', state: 'unreachable' },
      ],
    });
    // The page, and its live feed's cluster message, hold none of it either.
    const page = await (await fetch(`${node.url}/`)).text();
    expect(page).toContain('public-view');
    const feed = await liveClusterMessage(node.port);
    expect(feed).toContain('public-view');
    expect(text).not.toContain(full.node.replicaId);
    for (const secret of secrets) {
      expect(text).not.toContain(secret);
      expect(page).not.toContain(secret);
      expect(feed).not.toContain(secret);
    }
  });
});

describe('discovery status', () => {
  it('warns when the DNS name resolves to nothing, and shows the lookup in the private /api/cluster', async () => {
    const dns = await startDnsServer();
    try {
      const node = await nodes.start({
        env: { CLUSTER_SECRET, DATABASE_PATH: await db(), DISCOVERY_DNS: 'nobody.cluster.test', DISCOVERY_DNS_SERVER: dns.server, DISCOVERY_INTERVAL_MS: '200' },
      });
      await eventually(async () =>
        expect((await clusterStatus(node)).discovery).toMatchObject({
          dns: 'nobody.cluster.test',
          answers: [],
          lastLookupAt: expect.any(String),
          lastError: 'no peers: the name resolves to no address',
        }),
      );
      // Once, as a warning, not at every lookup.
      await eventually(() => expect(node.logs.filter((l) => l.msg === 'peer discovery found no peers: the name resolves to no address')).toEqual([expect.objectContaining({ level: 'warn' })]));
      // Once it names a node, the answer shows and the error clears.
      dns.set('nobody.cluster.test', [a('127.0.0.1')]);
      await eventually(async () => expect((await clusterStatus(node)).discovery).toMatchObject({ answers: [`127.0.0.1:${node.clusterPort}`] }));
      expect((await clusterStatus(node)).discovery?.lastError).toBeUndefined();
    } finally {
      await nodes.killAll();
      await dns.stop();
    }
  });
});

describe('one process per database', () => {
  it('refuses a second process on the same database (exit 2, naming the first) while the first serves on', async () => {
    const databasePath = await db();
    const first = await nodes.start({ env: { DATABASE_PATH: databasePath, NODE_NAME: 'first' } });
    await increment(first, 'home');
    const second = await runCommand([], { DATABASE_PATH: databasePath, NODE_NAME: 'second' });
    expect(second.code).toBe(2);
    const line = oneLine(second.stderr);
    expect(line).toContain(`in use by another node process: pid ${first.pid} (node "first", started `);
    expect(await increment(first, 'home')).toBe(2);
    expect((await fetch(`${first.url}/readyz`)).status).toBe(200);
  });

  it('is not blocked by the lock a kill -9 left behind, and frees the file on a clean stop', async () => {
    const databasePath = await db();
    const killed = await nodes.start({ env: { DATABASE_PATH: databasePath } });
    await increment(killed, 'home');
    killed.signal('SIGKILL');
    await killed.exited;
    expect(existsSync(`${databasePath}.lock`)).toBe(true);
    const again = await nodes.start({ env: { DATABASE_PATH: databasePath } });
    expect(await increment(again, 'home')).toBe(2);
    again.signal('SIGTERM');
    expect((await again.exited).code).toBe(0);
    expect(existsSync(`${databasePath}.lock`)).toBe(false);
  });
});

describe('start failures are one line', () => {
  it.each(['PORT', 'CLUSTER_PORT'])('a %s in use: exit 1, one line, no database or identity file created', async (setting) => {
    const { port, server } = await holdPort();
    try {
      const databasePath = await db();
      const result = await runCommand([], { [setting]: String(port), CLUSTER_SECRET, DATABASE_PATH: databasePath });
      expect(result.code).toBe(1);
      expect(oneLine(result.stderr)).toContain(`cannot listen on 127.0.0.1:${port} (${setting}): the port is in use by another process`);
      expect(existsSync(join(databasePath, '..'))).toBe(false);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  // The DNS server is the one setting discovery would resolve before it could resolve anything:
  // configuration takes an IP address only, so a name never fails later, after the node listens.
  it('a DISCOVERY_DNS_SERVER that is a name, not an address: exit 2 naming it, nothing created', async () => {
    const databasePath = await db();
    const result = await runCommand([], { DISCOVERY_DNS: 'peers.test', DISCOVERY_DNS_SERVER: 'dns.example', CLUSTER_SECRET, DATABASE_PATH: databasePath });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^distributed-sqlite: bad configuration:\n {2}- DISCOVERY_DNS_SERVER \(--discovery-dns-server\): "dns\.example" must be an IP address/);
    expect(result.stderr.trim().split('\n')).toHaveLength(2); // the heading and its one problem
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(databasePath, '..'))).toBe(false);
  });

  it('a CLUSTER_HOST name that does not resolve: exit 1, one line', async () => {
    const result = await runCommand([], { CLUSTER_HOST: 'no-such-host.invalid', CLUSTER_SECRET, DATABASE_PATH: await db() });
    expect(result.code).toBe(1);
    expect(oneLine(result.stderr)).toMatch(/cannot listen on no-such-host\.invalid:0 \(CLUSTER_PORT\): the host name (does not resolve|could not be resolved now)/);
  });

  it('an address not on this machine: exit 1, one line', async () => {
    const result = await runCommand([], { CLUSTER_HOST: '192.0.2.1', CLUSTER_SECRET, DATABASE_PATH: await db() });
    expect(result.code).toBe(1);
    expect(oneLine(result.stderr)).toMatch(/cannot listen on 192\.0\.2\.1:0 \(CLUSTER_PORT\): the address is not one of this machine's/);
  });

  it('a data directory that cannot be created, or written: exit 1, one line', async () => {
    // A file where the directory should be (this refuses root too, whom permissions do not stop).
    const dir = await dirs.create('cluster-port-');
    writeFileSync(join(dir, 'blocker'), '');
    const notADirectory = await runCommand([], { DATABASE_PATH: join(dir, 'blocker', 'data', 'counters.db') });
    expect(notADirectory.code).toBe(1);
    expect(oneLine(notADirectory.stderr)).toMatch(/cannot create the directory .*blocker\/data of DATABASE_PATH \(ENOTDIR\)/);
    // A directory nobody may create files in: /proc.
    const readOnly = await runCommand([], { DATABASE_PATH: '/proc/counters.db' });
    expect(readOnly.code).toBe(1);
    expect(oneLine(readOnly.stderr)).toMatch(/cannot write beside DATABASE_PATH \/proc\/counters\.db \(E[A-Z]+\)/);
  });
});
