/**
 * The page in a real browser: Debian's Chromium driven by playwright-core, against three real
 * node processes on loopback. Skipped, loudly, where /usr/bin/chromium is missing (`.ci/run`
 * installs it, so CI always runs these).
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/build.js';
import { eventually } from '../helpers/eventually.js';
import { WRITER_HEADERS } from '../helpers/http-client.js';
import { BROWSER_USER_AGENT, NodeProcesses, type SpawnedNode } from '../helpers/spawn-node.js';
import { TempDirs } from '../helpers/temp-dir.js';

export const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];
const ARTIFACTS = join(ROOT, 'test-artifacts');
const SECRET = 'browser-test-secret-0123456789abcdef';
/** How soon a change made on another node must show on the page (the bound). */
const LIVE_UPDATE_MS = 1_000;
/** How long a DOM condition may take when no tighter bound applies (a stopped node, a reconnect). */
const DOM_TIMEOUT_MS = 15_000;

const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) {
  console.warn(`test/browser: SKIPPED — ${CHROMIUM} is missing, so the page cannot be tested in a browser. Install it with: apt-get update && apt-get install -y chromium`);
}

const nodes = new NodeProcesses();
const dirs = new TempDirs();

interface RunningNode {
  readonly name: string;
  readonly db: string;
  process: SpawnedNode;
}

async function startNode(name: string, dir: string, peers: readonly RunningNode[], port = 0): Promise<RunningNode> {
  const db = join(dir, `${name}.db`);
  const process = await nodes.start({
    env: {
      NODE_NAME: name,
      DATABASE_PATH: db,
      PORT: String(port),
      PEERS: peers.map((p) => p.process.clusterAddress).join(',') || undefined,
      CLUSTER_SECRET: SECRET,
      HEARTBEAT_INTERVAL_MS: '200',
      HEARTBEAT_TIMEOUT_MS: '1000',
      ANTI_ENTROPY_INTERVAL_MS: '300',
      // The test opens pages that do not exist yet: the first view of any name creates it.
      PAGE_PATTERN: '^.+$',
    },
  });
  return { name, db, process };
}

/** A GET, or a POST as a write-token holder (Node's fetch is a crawler to the node's bot check). */
async function json<T>(url: string, init?: RequestInit): Promise<T> {
  const response = await fetch(url, init?.method === 'POST' ? { ...init, headers: WRITER_HEADERS } : init);
  expect(response.status, url).toBe(200);
  return (await response.json()) as T;
}

interface Cluster {
  membership: Array<{ name: string; live: boolean }>;
  peers: Array<{ name?: string; state: string }>;
}

const format = (n: number) => new Intl.NumberFormat('en-US').format(n);

async function openPage(context: BrowserContext, url: string): Promise<{ page: Page; dialogs: string[] }> {
  const page = await context.newPage();
  const dialogs: string[] = [];
  page.on('dialog', (dialog) => {
    dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  const response = await page.goto(url);
  expect(response?.status()).toBe(200);
  return { page, dialogs };
}

function feedState(page: Page): Promise<string | null> {
  return page.locator('#feed-status').getAttribute('data-state');
}

describe.skipIf(!hasChromium)('the page in a real browser', () => {
  let context: BrowserContext;
  let a: RunningNode;
  let b: RunningNode;
  let c: RunningNode;
  let dir: string;

  beforeAll(async () => {
    dir = await dirs.create('browser-');
    await mkdir(ARTIFACTS, { recursive: true });
    // B and C first, then A dialling both: A then tracks B as a peer of its own, and shows it
    // unreachable as soon as its link drops.
    b = await startNode('node-b', dir, []);
    c = await startNode('node-c', dir, [b]);
    a = await startNode('node-a', dir, [b, c]);
    await eventually(
      async () => {
        const status = await json<Cluster>(`${a.process.privateUrl}/api/cluster`);
        expect(status.membership.filter((m) => m.live).map((m) => m.name).sort()).toEqual(['node-a', 'node-b', 'node-c']);
      },
      { timeoutMs: DOM_TIMEOUT_MS },
    );
    context = await chromium.launchPersistentContext(await dirs.create('chromium-profile-'), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 760, height: 900 },
      // Headless Chromium says "HeadlessChrome", which the node's bot check does not count.
      userAgent: BROWSER_USER_AGENT,
    });
  });

  afterEach(async () => {
    for (const page of context?.pages() ?? []) await page.close();
  });

  afterAll(async () => {
    await context?.close();
    await nodes.killAll();
    await dirs.removeAll();
  });

  it('shows the count, updates it live from another node, and shows a stopped node as unreachable', async () => {
    const before = (await json<{ count: number }>(`${a.process.url}/api/pages/home`)).count;
    const { page, dialogs } = await openPage(context, `${a.process.url}/`);

    // Counted on the server: the page shows the total including this view.
    await expect.poll(() => page.locator('#count').textContent()).toBe(format(before + 1));
    await expect.poll(() => feedState(page), { timeout: DOM_TIMEOUT_MS }).toBe('live');
    // Every node listed, and the breakdown names this node.
    await expect.poll(() => page.locator('#nodes li').count(), { timeout: DOM_TIMEOUT_MS }).toBe(3);
    await page.evaluate(() => ((window as unknown as { notReloaded: boolean }).notReloaded = true));

    // A view counted on B reaches A's page without a reload.
    const counted = await json<{ count: number }>(`${b.process.url}/api/pages/home/views`, { method: 'POST' });
    expect(counted.count).toBeGreaterThanOrEqual(1);
    const start = Date.now();
    await page.waitForFunction((text) => document.getElementById('count')?.textContent === text, format(before + 2), { timeout: LIVE_UPDATE_MS, polling: 'raf' });
    const elapsed = Date.now() - start;
    expect(elapsed).toBeLessThan(LIVE_UPDATE_MS);
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    // The breakdown shows B's part (its one view) under B's name.
    await expect.poll(() => page.locator('#replicas tr', { hasText: 'node-b' }).locator('td').textContent(), { timeout: DOM_TIMEOUT_MS }).toBe('1');
    await expect.poll(() => page.locator('#nodes li[data-state="live"] .node-name').allTextContents(), { timeout: DOM_TIMEOUT_MS }).toEqual(['node-b', 'node-c']);
    await page.screenshot({ path: join(ARTIFACTS, 'page-three-nodes.png'), fullPage: true, animations: 'disabled' });

    // Stop B: A's page says so.
    b.process.signal('SIGTERM');
    await b.process.exited;
    const nodeB = page.locator('#nodes li', { has: page.locator('.node-name', { hasText: /^node-b$/ }) });
    await expect.poll(() => nodeB.getAttribute('data-state'), { timeout: DOM_TIMEOUT_MS }).toBe('unreachable');
    expect(await nodeB.locator('.state').textContent()).toBe('unreachable');
    expect(await page.locator('#count').textContent()).toBe(format(before + 2));
    await page.screenshot({ path: join(ARTIFACTS, 'page-node-b-unreachable.png'), fullPage: true, animations: 'disabled' });
    expect(dialogs).toEqual([]);
  });

  it('after a reset of the open page, shows the count from zero and goes on from there', async () => {
    await json(`${a.process.url}/api/pages/reset-me/views`, { method: 'POST' });
    const { page } = await openPage(context, `${a.process.url}/pages/reset-me`);
    await expect.poll(() => page.locator('#count').textContent()).toBe(format(2));
    await expect.poll(() => feedState(page), { timeout: DOM_TIMEOUT_MS }).toBe('live');
    // The operator resets the page (on the cluster port), and c receives the reset.
    const reset = await fetch(`${a.process.privateUrl}/api/admin/pages/reset-me/reset`, { method: 'POST' });
    expect(reset.status).toBe(200);
    await eventually(async () => expect((await json<{ count: number }>(`${c.process.url}/api/pages/reset-me`)).count).toBe(0), { timeoutMs: DOM_TIMEOUT_MS });
    await expect.poll(() => page.locator('#count').textContent(), { timeout: DOM_TIMEOUT_MS }).toBe(format(0));
    // A view counted on another node after the reset: the page shows 1, not 2 + 1.
    expect((await json<{ count: number }>(`${c.process.url}/api/pages/reset-me/views`, { method: 'POST' })).count).toBe(1);
    await expect.poll(() => page.locator('#count').textContent(), { timeout: DOM_TIMEOUT_MS }).toBe(format(1));
  });

  it('shows page names with HTML or script in them as text, live updates included', async () => {
    const names = ['<script>alert(1)</script>', '<img src=x onerror="alert(2);window.pwned=1">'];
    for (const name of names) {
      const { page, dialogs } = await openPage(context, `${a.process.url}/pages/${encodeURIComponent(name)}`);
      const elementsBefore = await page.evaluate(() => ({ scripts: document.scripts.length, images: document.images.length }));
      expect(await page.locator('#page-name').textContent()).toBe(name);
      expect(await page.title()).toBe(`${name} · distributed-sqlite`);
      await expect.poll(() => feedState(page), { timeout: DOM_TIMEOUT_MS }).toBe('live');

      // An update through the feed is written as text too.
      await json(`${c.process.url}/api/pages/${encodeURIComponent(name)}/views`, { method: 'POST' });
      await expect.poll(() => page.locator('#count').textContent(), { timeout: DOM_TIMEOUT_MS }).toBe('2');
      await expect.poll(() => page.locator('#replicas tr', { hasText: 'node-c' }).count(), { timeout: DOM_TIMEOUT_MS }).toBe(1);

      expect(await page.evaluate(() => ({ scripts: document.scripts.length, images: document.images.length }))).toEqual(elementsBefore);
      expect(elementsBefore).toEqual({ scripts: 1, images: 0 });
      expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();
      expect(dialogs).toEqual([]);
    }
  });

  it('shows that the feed dropped, and reconnects when the node is back', async () => {
    const { page } = await openPage(context, `${c.process.url}/pages/reconnect`);
    await expect.poll(() => feedState(page), { timeout: DOM_TIMEOUT_MS }).toBe('live');
    const port = c.process.port;
    c.process.signal('SIGTERM');
    // A graceful stop with a live page connected: the feed closes it, the node exits cleanly.
    expect((await c.process.exited).code).toBe(0);
    await expect.poll(() => feedState(page), { timeout: DOM_TIMEOUT_MS }).toBe('offline');
    expect(await page.locator('#feed-status').textContent()).toMatch(/^Offline: reconnecting/);

    c = { ...c, process: await startNode('node-c', dir, [], port).then((n) => n.process) };
    await expect.poll(() => feedState(page), { timeout: DOM_TIMEOUT_MS }).toBe('live');
    await json(`${c.process.url}/api/pages/reconnect/views`, { method: 'POST' });
    await expect.poll(() => page.locator('#count').textContent(), { timeout: DOM_TIMEOUT_MS }).toBe('2');
  });

  it('renders the breakdown and the node list as the server renders them', async () => {
    // The script's replicaRows/clusterRows mirror page.ts: for the same state, the same rows.
    const name = 'mirror';
    await json(`${c.process.url}/api/pages/${name}/views`, { method: 'POST' });
    const { page } = await openPage(context, `${a.process.url}/pages/${name}`);
    await expect.poll(() => feedState(page), { timeout: DOM_TIMEOUT_MS }).toBe('live');
    const compare = async (): Promise<{ served: unknown; shown: unknown }> => {
      // Counts one more view, which the open page then follows live.
      const html = await (await fetch(`${a.process.url}/pages/${name}`)).text();
      const served = /<output id="count"[^>]*>([^<]*)<\/output>/.exec(html)?.[1];
      await page.waitForFunction((text) => document.getElementById('count')?.textContent === text, served, { timeout: DOM_TIMEOUT_MS });
      return page.evaluate((source) => {
        const rows = (d: Document) => ({
          replicas: Array.from(d.querySelectorAll('#replicas tr'), (tr) => [tr.className, tr.getAttribute('data-replica'), tr.textContent]),
          nodes: Array.from(d.querySelectorAll('#nodes li'), (li) => [
            li.getAttribute('data-state'),
            li.getAttribute('data-replica'),
            li.querySelector('.node-name')?.textContent,
            li.querySelector('.state')?.textContent,
          ]),
        });
        return { served: rows(new DOMParser().parseFromString(source, 'text/html')), shown: rows(document) };
      }, html);
    };
    // Polled: the server's node list may be a second old while the cluster settles.
    await expect
      .poll(
        async () => {
          const { served, shown } = await compare();
          return JSON.stringify(shown) === JSON.stringify(served) ? 'same' : JSON.stringify({ served, shown });
        },
        { timeout: DOM_TIMEOUT_MS },
      )
      .toBe('same');
    const { shown } = await compare();
    expect(JSON.stringify(shown)).toContain('node-a');
    expect(JSON.stringify(shown)).toContain('node-c');
  });
});
