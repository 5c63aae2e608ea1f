/**
 * The public surface under attack, against real node processes (the compiled node, real SQLite
 * files, real sockets): the overflow curl of issue 13, floods of new page names from one address
 * and from spoofed ones, crawlers, scanners; and what a write-token holder can still do.
 */
import { execFile } from 'node:child_process';
import { Agent, request } from 'node:http';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { WRITER_HEADERS } from '../helpers/http-client.js';
import { BROWSER_USER_AGENT, nodeMetric, realNodes, TEST_ADMIN_TOKEN, type SpawnedNode } from '../helpers/spawn-node.js';

const run = promisify(execFile);
const real = realNodes();

function startNode(env: Record<string, string> = {}): Promise<SpawnedNode> {
  return real.startNode({ env }, 'surface-');
}

interface Reply {
  readonly status: number;
  readonly body: string;
}

/** One request over `agent` (keep-alive), optionally from another loopback source address. */
function send(node: SpawnedNode, agent: Agent, options: { method?: string; path: string; headers?: Record<string, string>; body?: string; localAddress?: string }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { 'user-agent': BROWSER_USER_AGENT, 'content-length': Buffer.byteLength(options.body ?? ''), ...options.headers };
    const req = request(
      { host: '127.0.0.1', port: node.port, method: options.method ?? 'POST', path: options.path, headers, agent, ...(options.localAddress !== undefined ? { localAddress: options.localAddress } : {}) },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** The private views (`/metrics`, the full `/api/cluster`) with the test nodes' admin token. */
const ADMIN = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

async function json<T>(node: SpawnedNode, path: string, headers: Record<string, string> = {}): Promise<T> {
  const response = await fetch(`${node.url}${path}`, { headers });
  expect(response.status, path).toBe(200);
  return (await response.json()) as T;
}

async function metric(node: SpawnedNode, line: string): Promise<number> {
  return (await nodeMetric(node.url, line)) ?? 0;
}

const pages = (node: SpawnedNode) => metric(node, 'dsqlite_store_pages');
const digest = async (node: SpawnedNode) => (await json<{ digest: string }>(node, '/api/cluster', ADMIN)).digest;
const countOf = async (node: SpawnedNode, page: string) => (await json<{ count: number }>(node, `/api/pages/${encodeURIComponent(page)}`)).count;

/**
 * `total` requests from `connections` keep-alive connections, each to `path(i)`; the statuses
 * seen, and how long the flood took (for the limit's bound, not as an assertion of speed).
 */
async function flood(node: SpawnedNode, total: number, connections: number, make: (i: number) => { path: string; headers?: Record<string, string> }): Promise<{ statuses: Map<number, number>; seconds: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const statuses = new Map<number, number>();
  let next = 0;
  const started = performance.now();
  try {
    await Promise.all(
      Array.from({ length: connections }, async () => {
        for (let i = next++; i < total; i = next++) {
          const { status } = await send(node, agent, make(i));
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return { statuses, seconds: (performance.now() - started) / 1000 };
}

/** Most views one client may count in `seconds` under a burst per window (rate-limit.ts). */
function allowance(burst: number, perSecond: number, seconds: number): number {
  return burst * (1 + Math.ceil(seconds / (burst / perSecond)));
}

describe('the public surface of a real node', () => {
  it('refuses the overflow curl of issue 13 and changes nothing; the page keeps counting and rendering', async () => {
    const node = await startNode();
    const agent = new Agent({ keepAlive: false });
    expect((await send(node, agent, { path: '/api/pages/victim/views' })).status).toBe(200);
    const before = await digest(node);
    const curl = await run('curl', ['-s', '-o', '-', '-w', '\n%{http_code}', '-X', 'POST', `${node.url}/api/pages/victim/views`, '-d', '{"by":9007199254740990}', '-H', 'content-type: application/json']);
    const [body, status] = curl.stdout.split('\n');
    expect(status).toBe('401');
    expect(JSON.parse(body as string)).toMatchObject({ error: { code: 'token_required' } });
    const wrongToken = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', `${node.url}/api/pages/victim/views`, '-d', '{"by":9007199254740990}', '-H', 'content-type: application/json', '-H', 'authorization: Bearer wrong-token-0123456789']);
    expect(wrongToken.stdout).toBe('403');
    expect(await digest(node)).toBe(before);
    expect(await countOf(node, 'victim')).toBe(1);
    expect((await send(node, agent, { path: '/api/pages/victim/views' })).body).toBe('{"page":"victim","count":2}');
    const page = await send(node, agent, { method: 'GET', path: '/pages/victim' });
    expect(page.status).toBe(200);
    expect(page.body).toContain('>3</output>');
  });

  it('takes a write-token holder’s by and batch', async () => {
    const node = await startNode();
    const agent = new Agent({ keepAlive: false });
    const by = await send(node, agent, { path: '/api/pages/a/views', headers: { ...WRITER_HEADERS, 'content-type': 'application/json' }, body: '{"by":41}' });
    expect(by).toEqual({ status: 200, body: '{"page":"a","count":41}' });
    const batch = await send(node, agent, { path: '/api/views', headers: { ...WRITER_HEADERS, 'content-type': 'application/json' }, body: JSON.stringify({ views: [{ page: 'a' }, { page: 'b', by: 5 }] }) });
    expect(batch.status).toBe(200);
    expect(JSON.parse(batch.body)).toEqual({ pages: [{ page: 'a', count: 42 }, { page: 'b', count: 5 }] });
    expect((await send(node, agent, { path: '/api/views', headers: { 'content-type': 'application/json' }, body: '{"views":[{"page":"a"}]}' })).status).toBe(401);
    expect(await countOf(node, 'a')).toBe(42);
  });

  it('an anonymous flood of 20,000 new page names from one address grows the database by at most the rate limit, while other clients are served', async () => {
    const node = await startNode({ RATE_LIMIT_PER_IP: '10', RATE_LIMIT_BURST: '50' });
    const other = new Agent({ keepAlive: true });
    const served: number[] = [];
    let flooding = true;
    // Another client (another loopback address) counting its own page throughout the flood.
    const bystander = (async () => {
      while (flooding) served.push((await send(node, other, { path: '/api/pages/bystander/views', localAddress: '127.0.0.2' })).status);
    })();
    const result = await flood(node, 20_000, 32, (i) => ({ path: `/api/pages/junk-${i}-${'x'.repeat(200)}/views` }));
    flooding = false;
    await bystander;
    other.destroy();

    const created = (await pages(node)) - 1; // the bystander's page
    const bound = allowance(50, 10, result.seconds);
    expect(created).toBeGreaterThan(0);
    expect(created).toBeLessThanOrEqual(bound);
    expect(result.statuses.get(200)).toBe(created);
    expect(result.statuses.get(429)).toBe(20_000 - created);
    // The bystander's own 429s are in the metric too.
    expect(await metric(node, 'dsqlite_views_refused_total{reason="rate_limited"}')).toBe(20_000 - created + served.filter((s) => s === 429).length);
    // The bystander was served all along, mostly counted (its own allowance is the same limit).
    expect(served.length).toBeGreaterThan(0);
    expect(served.every((s) => s === 200 || s === 429)).toBe(true);
    expect(served.filter((s) => s === 200).length).toBeGreaterThanOrEqual(Math.min(served.length, 50));
    expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
  });

  it('10,000 spoofed Fly-Client-IP addresses are one client with TRUST_PROXY off', async () => {
    const node = await startNode({ RATE_LIMIT_PER_IP: '10', RATE_LIMIT_BURST: '50', TRUST_PROXY: 'false' });
    const result = await flood(node, 10_000, 32, (i) => ({ path: `/api/pages/spoof-${i}/views`, headers: { 'fly-client-ip': `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` } }));
    expect(await pages(node)).toBeLessThanOrEqual(allowance(50, 10, result.seconds));
    expect(await metric(node, 'dsqlite_rate_limit_tracked_clients')).toBeLessThanOrEqual(2);
    expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
  });

  it('10,000 distinct client addresses behind a trusted proxy: each counted once, the limiter’s memory bounded, the node up', async () => {
    const node = await startNode({ RATE_LIMIT_PER_IP: '10', RATE_LIMIT_BURST: '50', TRUST_PROXY: 'true' });
    const agent = new Agent({ keepAlive: false });
    await send(node, agent, { path: '/api/pages/popular/views', headers: WRITER_HEADERS });
    const heapBefore = await metric(node, 'dsqlite_nodejs_heap_size_used_bytes');
    const result = await flood(node, 10_000, 32, (i) => ({ path: '/api/pages/popular/views', headers: { 'fly-client-ip': `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` } }));
    expect(result.statuses.get(200)).toBe(10_000);
    expect(await countOf(node, 'popular')).toBe(10_001);
    // One record per address seen within a window, capped at MAX_TRACKED_CLIENTS (rate-limit.ts;
    // the cap itself is exercised in rate-limit.test.ts): about 450 bytes each.
    const tracked = await metric(node, 'dsqlite_rate_limit_tracked_clients');
    expect(tracked).toBeGreaterThan(0);
    expect(tracked).toBeLessThanOrEqual(10_000);
    const heapAfter = await metric(node, 'dsqlite_nodejs_heap_size_used_bytes');
    expect(heapAfter - heapBefore).toBeLessThan(64 * 1024 * 1024);
    expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
  });

  it('does not count crawlers, prefetches or HEAD, and scanners of /pages/ create nothing', async () => {
    const node = await startNode();
    const agent = new Agent({ keepAlive: false });
    await send(node, agent, { path: '/api/pages/home/views' });
    const bot = await send(node, agent, { path: '/api/pages/home/views', headers: { 'user-agent': 'Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)' } });
    expect(bot).toEqual({ status: 200, body: '{"page":"home","count":1}' });
    expect((await send(node, agent, { method: 'GET', path: '/', headers: { 'user-agent': 'Googlebot/2.1 (+http://www.google.com/bot.html)' } })).status).toBe(200);
    expect((await send(node, agent, { method: 'GET', path: '/', headers: { 'sec-purpose': 'prefetch' } })).status).toBe(200);
    expect((await send(node, agent, { method: 'HEAD', path: '/' })).status).toBe(200);
    expect(await countOf(node, 'home')).toBe(1);
    expect(await metric(node, 'dsqlite_views_not_counted_total{reason="bot"}')).toBe(2);
    for (const path of ['/pages/wp-login.php', '/pages/.env', '/pages/admin/config.php']) {
      expect((await send(node, agent, { method: 'GET', path })).status, path).toBe(404);
    }
    expect(await pages(node)).toBe(1);
  });
});
