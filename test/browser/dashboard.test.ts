/**
 * The dashboard in Debian's Chromium against a real two-node cluster on loopback: the chart is
 * drawn (uPlot's canvas has pixels), its numbers are the series API's, a view counted on the
 * other node appears without a reload, opening it counts nothing, and it fits a phone in dark
 * mode under the strict CSP.
 */
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/build.js';
import { eventually } from '../helpers/eventually.js';
import { WRITER_HEADERS } from '../helpers/http-client.js';
import { BROWSER_USER_AGENT, NodeProcesses, type SpawnedNode } from '../helpers/spawn-node.js';
import { TempDirs } from '../helpers/temp-dir.js';
import { CHROMIUM, CHROMIUM_ARGS, hasChromium } from './chromium.js';

const ARTIFACTS = join(ROOT, 'test-artifacts');

const SECRET = 'dashboard-test-secret-0123456789abcdef';
const WAIT_MS = 20_000;

const nodes = new NodeProcesses();
const dirs = new TempDirs();
const format = (n: number) => new Intl.NumberFormat('en-US').format(n);

interface SeriesAnswer {
  from: string;
  to: string;
  points: Array<{ t: string; views: number; visitors?: number }>;
}

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url);
  expect(response.status, url).toBe(200);
  return (await response.json()) as T;
}

async function batch(node: SpawnedNode, views: Array<{ page: string; by: number }>): Promise<void> {
  const response = await fetch(`${node.url}/api/views`, { method: 'POST', headers: { ...WRITER_HEADERS, 'content-type': 'application/json' }, body: JSON.stringify({ views }) });
  expect(response.status).toBe(200);
}

/** What the dashboard shows, beside what the API answers for the same question. */
async function shownAndAnswered(page: Page, node: SpawnedNode, section: 'site' | 'detail', apiPath: string) {
  const attrs = await page.evaluate((id) => {
    const el = document.getElementById(id) as HTMLElement;
    return { from: el.dataset.from, to: el.dataset.to, step: document.getElementById('site')?.dataset.step };
  }, section);
  const shown = {
    views: await page.locator(`#${section}-views`).textContent(),
    visitors: await page.locator(`#${section}-visitors`).textContent(),
  };
  const query = `step=${attrs.step}&from=${encodeURIComponent(attrs.from ?? '')}&to=${encodeURIComponent(attrs.to ?? '')}`;
  const series = await getJson<SeriesAnswer>(`${node.url}${apiPath}?${query}`);
  const answered = {
    views: format(series.points.reduce((sum, p) => sum + p.views, 0)),
    visitors: format(series.points.reduce((sum, p) => sum + (p.visitors ?? 0), 0)),
  };
  return { shown, answered, attrs, series };
}

/** Pixels of the chart's canvas that are not blank. */
function paintedPixels(page: Page, selector: string): Promise<number> {
  return page.evaluate((sel) => {
    const canvas = document.querySelector(sel) as HTMLCanvasElement | null;
    if (canvas === null || canvas.width === 0 || canvas.height === 0) return 0;
    const data = (canvas.getContext('2d') as CanvasRenderingContext2D).getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < data.length; i += 4) if ((data[i] as number) > 0) painted++;
    return painted;
  }, selector);
}

describe.skipIf(!hasChromium)('the dashboard in Chromium, on a two-node cluster', () => {
  let a: SpawnedNode;
  let b: SpawnedNode;
  let browser: Browser;

  beforeAll(async () => {
    const dir = await dirs.create('dashboard-');
    await mkdir(ARTIFACTS, { recursive: true });
    const env = (name: string) => ({ NODE_NAME: name, DATABASE_PATH: join(dir, `${name}.db`), CLUSTER_SECRET: SECRET, HEARTBEAT_INTERVAL_MS: '200', ANTI_ENTROPY_INTERVAL_MS: '300' });
    b = await nodes.start({ env: env('node-b') });
    a = await nodes.start({ env: { ...env('node-a'), PEERS: b.clusterAddress } });
    await batch(a, [
      { page: '/', by: 40 },
      { page: '/blog/hello', by: 25 },
      { page: '/blog/<b>escaped</b>', by: 7 },
    ]);
    await batch(b, [{ page: '/docs', by: 12 }]);
    await eventually(async () => expect((await getJson<{ count: number }>(`${a.url}/api/pages/%2Fdocs`)).count).toBe(12), { timeoutMs: WAIT_MS });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });

  afterAll(async () => {
    await browser?.close();
    await nodes.killAll();
    await dirs.removeAll();
  });

  it('draws the chart, shows the API’s numbers, and follows a view counted on the other node without a reload', async () => {
    const context = await browser.newContext({ userAgent: BROWSER_USER_AGENT, viewport: { width: 1000, height: 900 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(String(e)));
    const before = await getJson<{ pages: Array<{ page: string; count: number }> }>(`${a.url}/api/pages`);
    expect((await page.goto(`${a.url}/dashboard`))?.status()).toBe(200);
    await expect.poll(() => page.locator('#feed-status').getAttribute('data-state'), { timeout: WAIT_MS }).toBe('live');

    // Drawn: uPlot's canvas is there and has pixels on it.
    await expect.poll(() => paintedPixels(page, '#site-chart canvas'), { timeout: WAIT_MS }).toBeGreaterThan(500);
    // The figures are the API's for the same range.
    await expect
      .poll(async () => {
        const { shown, answered } = await shownAndAnswered(page, a, 'site', '/api/series');
        return JSON.stringify(shown) === JSON.stringify(answered) ? shown.views : JSON.stringify({ shown, answered });
      }, { timeout: WAIT_MS })
      .toBe(format(84));
    const { attrs } = await shownAndAnswered(page, a, 'site', '/api/series');
    const top = await getJson<{ pages: Array<{ page: string; views: number }> }>(
      `${a.url}/api/top?from=${encodeURIComponent(attrs.from ?? '')}&to=${encodeURIComponent(attrs.to ?? '')}&limit=10`,
    );
    expect(top.pages.map((p) => p.page)).toEqual(['/', '/blog/hello', '/docs', '/blog/<b>escaped</b>']);
    const rows = () =>
      page.evaluate(() => Array.from(document.querySelectorAll('#top-rows tr'), (tr) => [tr.querySelector('.page-link')?.textContent, tr.querySelector('.views')?.textContent]));
    await expect.poll(rows, { timeout: WAIT_MS }).toEqual(top.pages.map((p) => [p.page, format(p.views)]));
    // Markup in a page name is text.
    expect(await page.locator('#top-rows b').count()).toBe(0);
    await expect.poll(() => page.locator('#top-rows .spark-chart canvas').count(), { timeout: WAIT_MS }).toBe(4);
    await expect.poll(() => page.locator('#nodes .node-name').allTextContents(), { timeout: WAIT_MS }).toEqual(['node-a', 'node-b']);
    await page.evaluate(() => ((window as unknown as { notReloaded: boolean }).notReloaded = true));

    // Counted on B: it reaches A, and A's dashboard shows it without a reload.
    await batch(b, [{ page: '/blog/hello', by: 1 }]);
    await expect.poll(() => page.locator('#site-views').textContent(), { timeout: WAIT_MS }).toBe(format(85));
    await expect.poll(rows, { timeout: WAIT_MS }).toContainEqual(['/blog/hello', format(26)]);
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);

    // One page's series on click.
    await page.locator('#top-rows .page-link', { hasText: '/blog/hello' }).click();
    await expect.poll(() => page.locator('#detail').isVisible(), { timeout: WAIT_MS }).toBe(true);
    expect(await page.locator('#detail-name').textContent()).toBe('/blog/hello');
    await expect
      .poll(async () => {
        const { shown, answered } = await shownAndAnswered(page, a, 'detail', `/api/pages/${encodeURIComponent('/blog/hello')}/series`);
        return JSON.stringify(shown) === JSON.stringify(answered) ? shown.views : JSON.stringify({ shown, answered });
      }, { timeout: WAIT_MS })
      .toBe(format(26));
    await expect.poll(() => paintedPixels(page, '#detail-chart canvas'), { timeout: WAIT_MS }).toBeGreaterThan(500);

    // Per hour over 24 h: the same views, and the page's chart follows.
    await page.locator('[data-range="24h"]').click();
    await expect.poll(() => page.evaluate(() => document.getElementById('site')?.dataset.step), { timeout: WAIT_MS }).toBe('hour');
    await expect.poll(() => page.locator('#site-views').textContent(), { timeout: WAIT_MS }).toBe(format(85));
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true, animations: 'disabled' });

    // Looking counted nothing: the pages and their totals are what the batches made them.
    const after = await getJson<{ pages: Array<{ page: string; count: number }> }>(`${a.url}/api/pages`);
    expect(after.pages).toEqual(before.pages.map((p) => (p.page === '/blog/hello' ? { ...p, count: p.count + 1 } : p)));
    expect(problems).toEqual([]);
    await context.close();
  });

  it('fits a phone in dark mode', async () => {
    const context = await browser.newContext({ userAgent: BROWSER_USER_AGENT, viewport: { width: 390, height: 844 }, colorScheme: 'dark', deviceScaleFactor: 2 });
    const page = await context.newPage();
    await page.goto(`${a.url}/dashboard`);
    await expect.poll(() => paintedPixels(page, '#site-chart canvas'), { timeout: WAIT_MS }).toBeGreaterThan(500);
    const layout = await page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      chartWidth: (document.querySelector('#site-chart .uplot') as HTMLElement).getBoundingClientRect().width,
      background: getComputedStyle(document.body).backgroundColor,
    }));
    expect(layout.scrollWidth).toBeLessThanOrEqual(390);
    expect(layout.chartWidth).toBeLessThanOrEqual(390);
    expect(layout.background).toBe('rgb(18, 18, 18)');
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-phone-dark.png'), fullPage: true, animations: 'disabled' });
    await context.close();
  });
});
