/**
 * The tag, the pixel and the badge as site owners embed them: in Debian's Chromium, on pages of
 * another origin (a second HTTP server on its own port, at `localhost` while the node is at
 * `127.0.0.1`), against a real node process. A browser's views count; a crawler's (the
 * context's User-Agent set to Googlebot's) and an automated browser's do not.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { BROWSER_USER_AGENT, NodeProcesses, TEST_ADMIN_TOKEN, type SpawnedNode } from '../helpers/spawn-node.js';
import { TempDirs } from '../helpers/temp-dir.js';
import { CHROMIUM, CHROMIUM_ARGS, hasChromium } from './chromium.js';

const BOT_USER_AGENT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
const WAIT_MS = 15_000;

const nodes = new NodeProcesses();
const dirs = new TempDirs();

/** The other site: each path is a page embedding the node's tag, pixel or badge. */
function sitePages(node: string): Record<string, string> {
  const page = (body: string) => `<!doctype html><html><head><meta charset="utf-8"><title>a blog</title></head><body>${body}</body></html>`;
  return {
    '/blog/hello': page(`<h1>Hello</h1><script async src="${node}/count.js"></script>`),
    '/blog/caf%C3%A9': page(`<h1>Café</h1><script async src="${node}/count.js"></script>`),
    '/named': page(`<script async src="${node}/count.js" data-page="named-by-attribute"></script>`),
    '/dnt': page(`<script async src="${node}/count.js" data-respect-dnt></script>`),
    '/nojs': page(`<noscript><img id="pixel" src="${node}/count.gif?page=%2Fnojs" alt="" width="1" height="1"></noscript>`),
    '/pixel-refused': page(`<img id="pixel" src="${node}/count.gif?page=a%01b" alt="" width="1" height="1">`),
    '/badge': page(`<img id="badge" src="${node}/badge/%2Fbadged.svg?count=1" alt="views">`),
  };
}

async function serveSite(pages: () => Record<string, string>): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const body = pages()[req.url ?? ''];
    res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(body ?? 'not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://localhost:${(server.address() as AddressInfo).port}` };
}

async function count(node: SpawnedNode, page: string): Promise<number> {
  const response = await fetch(`${node.url}/api/pages/${encodeURIComponent(page)}`);
  return ((await response.json()) as { count: number }).count;
}

/** The node's tally of anonymous views it answered without counting, for `reason`. */
async function notCounted(node: SpawnedNode, reason: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(`dsqlite_views_not_counted_total{reason="${reason}"}`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

describe.skipIf(!hasChromium)('the tag, the pixel and the badge on another site, in Chromium', () => {
  let node: SpawnedNode;
  let site: { server: Server; url: string };
  let browser: Browser;
  let visitor: BrowserContext;

  beforeAll(async () => {
    const dir = await dirs.create('embed-');
    node = await nodes.start({ env: { DATABASE_PATH: `${dir}/embed.db`, RATE_LIMIT_PER_IP: '0' } });
    site = await serveSite(() => sitePages(node.url));
    // A driven Chromium sets navigator.webdriver, which the tag skips: turned off here, so the
    // visitor is an ordinary browser (one test sets it back on).
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, '--disable-blink-features=AutomationControlled'] });
    visitor = await browser.newContext({ userAgent: BROWSER_USER_AGENT });
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => site?.server.close(resolve));
    await nodes.killAll();
    await dirs.removeAll();
  });

  it('counts the page the tag is on (its path, or data-page), cross-origin, once per view', async () => {
    const page = await visitor.newPage();
    expect(await page.evaluate(() => navigator.webdriver)).toBe(false);
    await page.goto(`${site.url}/blog/hello`);
    await eventually(async () => expect(await count(node, '/blog/hello')).toBe(1), { timeoutMs: WAIT_MS });
    await page.reload();
    await eventually(async () => expect(await count(node, '/blog/hello')).toBe(2), { timeoutMs: WAIT_MS });
    // The path is decoded: the page is named as its reader sees it.
    await page.goto(`${site.url}/blog/caf%C3%A9`);
    await eventually(async () => expect(await count(node, '/blog/café')).toBe(1), { timeoutMs: WAIT_MS });
    await page.goto(`${site.url}/named`);
    await eventually(async () => expect(await count(node, 'named-by-attribute')).toBe(1), { timeoutMs: WAIT_MS });
    expect(await count(node, '/named')).toBe(0);
    await page.close();
  });

  it('does not count a crawler: not the tag, not the pixel, not the badge', async () => {
    const before = await notCounted(node, 'bot');
    const bot = await browser.newContext({ userAgent: BOT_USER_AGENT, javaScriptEnabled: true });
    const page = await bot.newPage();
    await page.goto(`${site.url}/blog/hello`);
    await page.goto(`${site.url}/pixel-refused`);
    await page.goto(`${site.url}/badge`);
    await page.waitForFunction(() => (document.getElementById('badge') as HTMLImageElement | null)?.complete === true);
    const noJs = await browser.newContext({ userAgent: BOT_USER_AGENT, javaScriptEnabled: false });
    const plain = await noJs.newPage();
    await plain.goto(`${site.url}/nojs`);
    // The node answered all three (tag, pixel, badge) and counted none.
    await eventually(async () => expect(await notCounted(node, 'bot')).toBe(before + 3), { timeoutMs: WAIT_MS });
    expect(await count(node, '/blog/hello')).toBe(2);
    expect(await count(node, '/nojs')).toBe(0);
    expect(await count(node, '/badged')).toBe(0);
    await bot.close();
    await noJs.close();
  });

  it('does not count an automated browser (navigator.webdriver), nor Do-Not-Track where the site asks', async () => {
    const page = await visitor.newPage();
    await page.addInitScript(() => Object.defineProperty(Navigator.prototype, 'webdriver', { get: () => true }));
    const beacons: string[] = [];
    page.on('request', (request) => {
      if (request.url().startsWith(node.url)) beacons.push(request.url());
    });
    // An async script runs before the load event: once loaded, the tag has made its choice.
    await page.goto(`${site.url}/blog/hello`, { waitUntil: 'load' });
    expect(await page.evaluate(() => performance.getEntriesByType('resource').some((e) => e.name.endsWith('/count.js')))).toBe(true);
    await page.close();

    const dnt = await visitor.newPage();
    await dnt.addInitScript(() => Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1' }));
    dnt.on('request', (request) => {
      if (request.url().startsWith(node.url)) beacons.push(request.url());
    });
    await dnt.goto(`${site.url}/dnt`, { waitUntil: 'load' });
    // Without Do-Not-Track the same page counts: the tag did run and chose not to send.
    const sends = await visitor.newPage();
    await sends.goto(`${site.url}/dnt`);
    await eventually(async () => expect(await count(node, '/dnt')).toBe(1), { timeoutMs: WAIT_MS });
    expect(beacons.filter((u) => u.includes('/api/'))).toEqual([]);
    expect(await count(node, '/blog/hello')).toBe(2);
    await dnt.close();
    await sends.close();
  });

  it('counts a visitor without JavaScript through the noscript pixel; a refused pixel still loads as an image', async () => {
    const noJs = await browser.newContext({ userAgent: BROWSER_USER_AGENT, javaScriptEnabled: false });
    const page = await noJs.newPage();
    await page.goto(`${site.url}/nojs`);
    await eventually(async () => expect(await count(node, '/nojs')).toBe(1), { timeoutMs: WAIT_MS });
    await noJs.close();

    const page2 = await visitor.newPage();
    const answer = page2.waitForResponse((r) => r.url().startsWith(`${node.url}/count.gif`));
    await page2.goto(`${site.url}/pixel-refused`);
    const response = await answer;
    expect(response.status()).toBe(400);
    expect(response.headers()['counter-view']).toBe('refused; reason=bad_page_name');
    // The image is still a 1×1 GIF to the page: no broken-image icon.
    await page2.waitForFunction(() => (document.getElementById('pixel') as HTMLImageElement).complete);
    expect(await page2.evaluate(() => (document.getElementById('pixel') as HTMLImageElement).naturalWidth)).toBe(1);
    await page2.close();
  });

  it('draws the badge with the count, counting the view with ?count=1', async () => {
    const page = await visitor.newPage();
    await page.goto(`${site.url}/badge`);
    await page.waitForFunction(() => (document.getElementById('badge') as HTMLImageElement).complete);
    expect(await page.evaluate(() => (document.getElementById('badge') as HTMLImageElement).naturalWidth)).toBeGreaterThan(40);
    expect(await page.evaluate(() => (document.getElementById('badge') as HTMLImageElement).naturalHeight)).toBe(20);
    await eventually(async () => expect(await count(node, '/badged')).toBe(1), { timeoutMs: WAIT_MS });
    await page.close();
  });

  it('runs nothing when a badge with script in its name and label is opened on its own', async () => {
    const page = await visitor.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    const name = '<script>alert(1)</script><svg onload="alert(2)">';
    const label = '"><script>alert(3)</script>';
    const response = await page.goto(`${node.url}/badge/${encodeURIComponent(name)}.svg?label=${encodeURIComponent(label)}`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-type']).toBe('image/svg+xml; charset=utf-8');
    // Parsed as SVG, the names are text: no script element, no handler, no dialog.
    const parsed = await page.evaluate(() => ({
      root: document.documentElement.nodeName,
      scripts: document.getElementsByTagName('script').length,
      handlers: Array.from(document.querySelectorAll('*')).filter((e) => e.getAttributeNames().some((a) => a.startsWith('on'))).length,
      title: document.querySelector('title')?.textContent,
    }));
    expect(parsed).toEqual({ root: 'svg', scripts: 0, handlers: 0, title: `${label} of ${name}: 0` });
    expect(dialogs).toEqual([]);
    await page.close();
  });
});
