/**
 * Views over time and unique visitors on three real nodes (real processes, SQLite files,
 * WebSockets): views counted on different nodes give every node the same hour and day series,
 * per page and site-wide, summing to the totals; one visitor (same address and User-Agent on the
 * same site) counted on two nodes is one visitor in the merged sketch; a crawler is no visitor.
 */
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { FAST_LIVENESS, useClusters } from '../helpers/cluster.js';
import type { ClusterNode } from '../helpers/cluster-node.js';
import { CONVERGENCE_TIMEOUT_MS, waitForConvergence } from '../helpers/cluster-waits.js';
import { incrementBatch } from '../helpers/http-client.js';
import { BROWSER_USER_AGENT } from '../helpers/spawn-node.js';

const newCluster = useClusters();
const SITE = 'https://blog.example';
const CRAWLER = 'Googlebot/2.1 (+http://www.google.com/bot.html)';

interface Series {
  points: Array<{ t: string; views: number; visitors?: number }>;
}

/** One anonymous view from a client behind the proxy (TRUST_PROXY: X-Forwarded-For is its address). */
async function view(node: ClusterNode, page: string, client: { address: string; userAgent: string }): Promise<void> {
  const response = await fetch(`${node.url}/api/pages/${encodeURIComponent(page)}/views`, {
    method: 'POST',
    headers: { origin: SITE, 'user-agent': client.userAgent, 'x-forwarded-for': client.address },
  });
  expect(response.status).toBe(200);
}

async function series(node: ClusterNode, path: string): Promise<Series> {
  const response = await fetch(`${node.url}${path}`);
  expect(response.status, path).toBe(200);
  return (await response.json()) as Series;
}

const viewsOf = (s: Series) => s.points.reduce((sum, p) => sum + p.views, 0);
const lastDay = (s: Series) => s.points.at(-1) as { views: number; visitors: number };

describe('series and visitors across three real nodes', () => {
  it('end equal on every node, sum to the totals, and count a visitor seen on two nodes once', async () => {
    const nodes = await newCluster().startMesh(3, { env: { ...FAST_LIVENESS, TRUST_PROXY: 'true', RATE_LIMIT_PER_IP: '0' } });
    const [a, b, c] = nodes;
    const alice = { address: '203.0.113.7', userAgent: BROWSER_USER_AGENT };
    const bob = { address: '198.51.100.9', userAgent: BROWSER_USER_AGENT };
    // Alice on A and on B, Bob on C, a crawler on A (not counted), and batches on every node.
    await view(a, '/blog/hello', alice);
    await view(b, '/blog/hello', alice);
    await view(c, '/blog/hello', bob);
    await view(b, '/about', alice);
    await view(a, '/blog/hello', { address: '192.0.2.1', userAgent: CRAWLER });
    await Promise.all([
      incrementBatch(a, [{ page: '/blog/hello', by: 10 }]),
      incrementBatch(b, [{ page: '/about', by: 5 }, { page: '/pricing', by: 2 }]),
      incrementBatch(c, [{ page: '/blog/hello', by: 7 }]),
    ]);
    const { totals } = await waitForConvergence(nodes);
    // The crawler's view is not among them.
    expect(totals).toEqual({ '/about': 6, '/blog/hello': 20, '/pricing': 2 });

    const paths = [
      '/api/series?step=hour',
      '/api/series?step=day',
      ...Object.keys(totals).flatMap((page) => [`/api/pages/${encodeURIComponent(page)}/series?step=hour`, `/api/pages/${encodeURIComponent(page)}/series?step=day`]),
    ];
    // Hour buckets are not in the digest: they ride the same seqs, so wait for them too.
    const answers = await eventually(
      async () => {
        const all = await Promise.all(nodes.map((node) => Promise.all(paths.map((path) => series(node, path)))));
        for (const [i, answer] of all.entries()) expect(JSON.stringify(answer), nodes[i]?.name).toBe(JSON.stringify(all[0]));
        return all[0] as Series[];
      },
      { timeoutMs: CONVERGENCE_TIMEOUT_MS },
    );
    const byPath = new Map(paths.map((path, i) => [path, answers[i] as Series]));
    const sum = Object.values(totals).reduce((x, y) => x + y, 0);
    expect(viewsOf(byPath.get('/api/series?step=hour')!)).toBe(sum);
    expect(viewsOf(byPath.get('/api/series?step=day')!)).toBe(sum);
    for (const [page, total] of Object.entries(totals)) {
      for (const step of ['hour', 'day']) expect(viewsOf(byPath.get(`/api/pages/${encodeURIComponent(page)}/series?step=${step}`)!), `${page} ${step}`).toBe(total);
    }
    // Alice counted on A and B is one visitor of /blog/hello; Bob on C the second; the crawler none.
    expect(lastDay(byPath.get(`/api/pages/${encodeURIComponent('/blog/hello')}/series?step=day`)!).visitors).toBe(2);
    expect(lastDay(byPath.get(`/api/pages/${encodeURIComponent('/about')}/series?step=day`)!).visitors).toBe(1);
    // Batches carry no visitor.
    expect(lastDay(byPath.get(`/api/pages/${encodeURIComponent('/pricing')}/series?step=day`)!).visitors).toBe(0);
    // Site-wide: the union of the pages' sketches (Alice on two pages is still one).
    expect(lastDay(byPath.get('/api/series?step=day')!).visitors).toBe(2);
  });
});
