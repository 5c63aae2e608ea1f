/**
 * What other sites embed, over HTTP against the real app and a real SQLite file: the tag
 * (`/count.js`), the beacon it sends (text/plain, cross-origin), the pixel (`/count.gif`) and
 * the badge (`/badge/:page.svg`). In a browser: test/browser/embed.test.ts.
 */
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../../src/http/app.js';
import { badgeLayout, textWidth } from '../../src/http/badge.js';
import { singleNodeStatus } from '../../src/http/cluster-status.js';
import { TAG_SCRIPT_PATH } from '../../src/http/page-assets/assets.js';
import { BADGE_MAX_AGE_S, PIXEL_GIF } from '../../src/http/tag-routes.js';
import { ViewPolicy, type ViewPolicyOptions } from '../../src/http/view-policy.js';
import type { PageName } from '../../src/ids.js';
import { createLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite-store.js';
import { tokenSet } from '../../src/tokens.js';
import { rawRequest, serve, type TestServer } from '../helpers/http-server.js';
import { BROWSER_USER_AGENT, TEST_WRITE_TOKEN } from '../helpers/spawn-node.js';
import { TempDirs } from '../helpers/temp-dir.js';

const BOT_USER_AGENT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
const dirs = new TempDirs();
let store: SqliteStore;
let server: TestServer;

async function start(views: Partial<ViewPolicyOptions> = {}): Promise<void> {
  const dir = await dirs.create('tags-');
  store = await openSqliteStore({ path: join(dir, 'counters.db') });
  const log = createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, done) => done() }) });
  const metrics = createMetrics();
  const app = createApp({
    store,
    cluster: singleNodeStatus(store, () => ({ name: 'n1', address: '127.0.0.1:1', version: '9.9.9', startedAt: '2026-01-01T00:00:00.000Z' })),
    metrics,
    log,
    corsOrigins: '*',
    maxBodyBytes: 64 * 1024,
    views: new ViewPolicy({ store, writeTokens: tokenSet([TEST_WRITE_TOKEN]), registry: metrics.registry, ...views }),
  });
  server = await serve(app.callback());
}

async function stop(): Promise<void> {
  await server.close();
  await store.close();
}

beforeEach(() => start());
afterEach(async () => {
  await stop();
  await dirs.removeAll();
});

const count = (page: string): number => store.count(page as PageName);

function get(path: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${server.url}${path}`, { headers: { 'user-agent': BROWSER_USER_AGENT, ...headers } });
}

describe('GET /count.js', () => {
  it('is small, cacheable and revalidates with its ETag', async () => {
    const response = await get(TAG_SCRIPT_PATH);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(response.headers.get('cache-control')).toMatch(/^public, max-age=\d+$/);
    const etag = response.headers.get('etag');
    expect(etag).toMatch(/^"[\w-]{22}"$/);
    const body = await response.arrayBuffer();
    expect(body.byteLength).toBeLessThan(2048);
    // fetch would add `Cache-Control: no-cache` to a conditional request: sent raw, as a browser's revalidation.
    const again = await rawRequest(server.port, { path: TAG_SCRIPT_PATH, headers: { 'if-none-match': etag as string } });
    expect(again.status).toBe(304);
    expect(again.body).toBe('');
  });
});

describe('the beacon count.js sends', () => {
  const beacon = (page: string, init: { type?: string; body?: string; origin?: string; ua?: string } = {}) =>
    fetch(`${server.url}/api/pages/${encodeURIComponent(page)}/views`, {
      method: 'POST',
      headers: {
        'user-agent': init.ua ?? BROWSER_USER_AGENT,
        origin: init.origin ?? 'https://blog.example',
        ...(init.type !== undefined ? { 'content-type': init.type } : {}),
      },
      ...(init.body !== undefined ? { body: init.body } : {}),
    });

  it('counts an empty text/plain POST from another origin, readable by it (CORS)', async () => {
    const response = await beacon('/blog/hello', { type: 'text/plain;charset=UTF-8', body: '' });
    expect(response.status).toBe(200);
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    expect(await response.json()).toEqual({ page: '/blog/hello', count: 1 });
    expect((await beacon('/blog/hello')).status).toBe(200);
    expect(count('/blog/hello')).toBe(2);
  });

  it('accepts a small text/plain body holding {} and refuses `by`, bad JSON and big bodies in it', async () => {
    expect((await beacon('p', { type: 'text/plain', body: '{}' })).status).toBe(200);
    const by = await beacon('p', { type: 'text/plain', body: '{"by": 100}' });
    expect(by.status).toBe(401);
    expect(((await by.json()) as { error: { code: string } }).error.code).toBe('token_required');
    const bad = await beacon('p', { type: 'text/plain', body: 'hello' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('bad_json');
    const big = await beacon('p', { type: 'text/plain', body: ' '.repeat(1025) });
    expect(big.status).toBe(413);
    expect(count('p')).toBe(1);
  });

  it('does not count a crawler', async () => {
    expect((await beacon('p', { ua: BOT_USER_AGENT })).status).toBe(200);
    expect(count('p')).toBe(0);
  });

  it('refuses a page name that breaks the rules, saying why, and counts nothing', async () => {
    const long = await beacon(`/${'a'.repeat(256)}`);
    expect(long.status).toBe(400);
    expect(await long.json()).toEqual({ error: { code: 'bad_page_name', message: 'page name is 257 bytes of UTF-8; at most 256 are allowed' } });
    expect((await beacon('a\u0001b')).status).toBe(400);
    expect(store.stats().pages).toBe(0);
  });
});

describe('GET /count.gif', () => {
  async function pixel(query: string, ua = BROWSER_USER_AGENT): Promise<{ status: number; headers: Headers; body: Buffer }> {
    const response = await get(`/count.gif${query}`, { 'user-agent': ua });
    return { status: response.status, headers: response.headers, body: Buffer.from(await response.arrayBuffer()) };
  }

  it('counts one view and answers a transparent 1×1 GIF that is never cached', async () => {
    const { status, headers, body } = await pixel(`?page=${encodeURIComponent('/blog/héllo')}`);
    expect(status).toBe(200);
    expect(headers.get('content-type')).toBe('image/gif');
    expect(headers.get('cache-control')).toBe('no-store');
    expect(headers.get('counter-view')).toBe('counted');
    expect(body.equals(PIXEL_GIF)).toBe(true);
    expect(body.subarray(0, 6).toString('latin1')).toBe('GIF89a');
    expect(body.readUInt16LE(6)).toBe(1);
    expect(body.readUInt16LE(8)).toBe(1);
    expect(count('/blog/héllo')).toBe(1);
  });

  it('answers a crawler the GIF without counting it, and says so', async () => {
    const { status, headers, body } = await pixel('?page=home', BOT_USER_AGENT);
    expect(status).toBe(200);
    expect(headers.get('counter-view')).toBe('not-counted; reason=bot');
    expect(body.equals(PIXEL_GIF)).toBe(true);
    expect(count('home')).toBe(0);
  });

  it('answers a refused view the GIF with the refusal as status and Counter-View', async () => {
    for (const [query, status, reason] of [
      ['', 400, 'bad_page_name'],
      ['?page=', 400, 'bad_page_name'],
      ['?page=a%01b', 400, 'bad_page_name'],
      [`?page=${'x'.repeat(257)}`, 400, 'bad_page_name'],
      ['?page=a&page=b', 400, 'bad_request'],
    ] as const) {
      const answer = await pixel(query);
      expect({ query, status: answer.status, view: answer.headers.get('counter-view'), gif: answer.body.equals(PIXEL_GIF) }).toEqual({
        query,
        status,
        view: `refused; reason=${reason}`,
        gif: true,
      });
    }
    expect(store.stats().pages).toBe(0);
  });

  it('honours the rate limit (429 with Retry-After) and PAGE_PATTERN (403)', async () => {
    await stop();
    await start({ rateLimitPerIp: 1, rateLimitBurst: 1, pagePattern: /^\/blog\// });
    expect((await pixel('?page=/blog/a')).status).toBe(200);
    const limited = await pixel('?page=/blog/a');
    expect(limited.status).toBe(429);
    expect(limited.headers.get('counter-view')).toBe('refused; reason=rate_limited');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited.body.equals(PIXEL_GIF)).toBe(true);
    expect(count('/blog/a')).toBe(1);

    await stop();
    await start({ pagePattern: /^\/blog\// });
    const refused = await pixel('?page=/wp-login.php');
    expect(refused.status).toBe(403);
    expect(refused.headers.get('counter-view')).toBe('refused; reason=page_not_allowed');
    expect(store.stats().pages).toBe(0);
  });
});

describe('GET /badge/:page.svg', () => {
  async function badge(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; svg: string }> {
    const response = await get(path, headers);
    return { status: response.status, headers: response.headers, svg: await response.text() };
  }

  it('draws the count without counting, cached briefly and revalidated by ETag, under a CSP without script', async () => {
    await fetch(`${server.url}/api/views`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_WRITE_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ views: [{ page: 'home', by: 12345 }] }),
    });
    const { status, headers, svg } = await badge('/badge/home.svg');
    expect(status).toBe(200);
    expect(headers.get('content-type')).toBe('image/svg+xml; charset=utf-8');
    expect(headers.get('cache-control')).toBe(`public, max-age=${BADGE_MAX_AGE_S}`);
    expect(headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(headers.get('x-content-type-options')).toBe('nosniff');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="\d+" height="20"/);
    expect(svg).toContain('>views</text>');
    expect(svg).toContain('>12,345</text>');
    expect(svg).toContain('<title>views of home: 12,345</title>');
    expect(count('home')).toBe(12345);
    const etag = headers.get('etag') as string;
    expect((await rawRequest(server.port, { path: '/badge/home.svg', headers: { 'if-none-match': etag } })).status).toBe(304);
    // Unknown page: 0, like the API.
    expect((await badge('/badge/never.svg')).svg).toContain('>0</text>');
    expect(store.stats().pages).toBe(1);
  });

  it('counts a view with ?count=1 through the view policy, never cached', async () => {
    const first = await badge('/badge/%2Fblog%2Fhello.svg?count=1');
    expect(first.status).toBe(200);
    expect(first.headers.get('cache-control')).toBe('no-store');
    expect(first.headers.get('counter-view')).toBe('counted');
    expect(first.svg).toContain('>1</text>');
    // Slashes may stand as they are.
    expect((await badge('/badge//blog/hello.svg?count=1')).svg).toContain('>2</text>');
    const bot = await badge('/badge//blog/hello.svg?count=1', { 'user-agent': BOT_USER_AGENT });
    expect(bot.headers.get('counter-view')).toBe('not-counted; reason=bot');
    expect(bot.svg).toContain('>2</text>');
    expect(count('/blog/hello')).toBe(2);
  });

  it('escapes the page name and the label: markup in them stays text', async () => {
    const name = `<script>alert(1)</script>&"'`;
    const { status, svg } = await badge(`/badge/${encodeURIComponent(name)}.svg?label=${encodeURIComponent('<b onload="x">&')}`);
    expect(status).toBe(200);
    expect(svg).not.toContain('<script');
    expect(svg).not.toContain('<b ');
    expect(svg).toContain('&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&apos;');
    expect(svg).toContain('>&lt;b onload=&quot;x&quot;&gt;&amp;</text>');
    // Only the elements the badge is made of.
    const elements = new Set([...svg.matchAll(/<([a-zA-Z]+)/g)].map((m) => m[1]));
    expect([...elements].sort()).toEqual(['clipPath', 'g', 'linearGradient', 'rect', 'stop', 'svg', 'text', 'title']);
  });

  it('sizes each part from its characters', () => {
    expect(textWidth('111')).toBeLessThan(textWidth('1,111'));
    expect(textWidth('iii')).toBeLessThan(textWidth('mmm'));
    const small = badgeLayout({ label: 'views', value: '9' });
    const large = badgeLayout({ label: 'views', value: '9,999,999' });
    expect(large.labelWidth).toBe(small.labelWidth);
    expect(large.valueWidth).toBeGreaterThan(small.valueWidth);
    expect(large.width).toBe(large.labelWidth + large.valueWidth);
  });

  it('answers a bad page name or parameter with a 400 badge that says so, counting nothing', async () => {
    for (const path of ['/badge/%E0%A4%A.svg', '/badge/a%01b.svg?count=1', `/badge/${'y'.repeat(257)}.svg`, '/badge/p.svg?count=2', '/badge/p.svg?label=']) {
      const answer = await badge(path);
      expect({ path, status: answer.status, type: answer.headers.get('content-type'), svg: answer.svg.startsWith('<svg') }).toEqual({
        path,
        status: 400,
        type: 'image/svg+xml; charset=utf-8',
        svg: true,
      });
    }
    expect((await rawRequest(server.port, { path: '/badge/%ZZ.svg' })).status).toBe(400);
    expect((await badge('/badge/p.png')).status).toBe(404);
    expect(store.stats().pages).toBe(0);
  });
});

describe('GET /dashboard', () => {
  it('serves the dashboard under the strict CSP, counting nothing, with uPlot from the node itself', async () => {
    const response = await get('/dashboard');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-store');
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    const html = await response.text();
    // No inline script or style: every script and stylesheet is a file of the node's.
    expect(html).not.toMatch(/<script(?![^>]*\ssrc=")/);
    expect(html).not.toMatch(/<style|\sstyle="/);
    const sources = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] as string);
    for (const source of sources.filter((s) => s.startsWith('/assets/'))) {
      const asset = await get(source);
      expect({ source, status: asset.status, cache: asset.headers.get('cache-control'), etag: asset.headers.get('etag') !== null }).toEqual({
        source,
        status: 200,
        cache: expect.stringMatching(/max-age=\d+/) as unknown,
        etag: true,
      });
    }
    expect(sources).toEqual(expect.arrayContaining(['/assets/uplot.min.js', '/assets/uplot.min.css', '/assets/dashboard.js', '/assets/dashboard.css']));
    expect(sources.every((s) => s.startsWith('/') || s.startsWith('data:'))).toBe(true);
    // uPlot byte for byte, its licence header kept; the licence itself beside it.
    expect(await (await get('/assets/uplot.min.js')).text()).toMatch(/^\/\*! https:\/\/github.com\/leeoniya\/uPlot \(v1\.\d+\.\d+\) \*\//);
    expect(await (await get('/assets/uplot.min.css')).text()).toContain('MIT License');
    expect(await (await get('/assets/uplot.LICENSE.txt')).text()).toContain('Permission is hereby granted');
    expect(store.stats().pages).toBe(0);
    expect(store.localSeq()).toBe(0);
  });

  it('is linked from the demo page', async () => {
    expect(await (await get('/')).text()).toContain('<a href="/dashboard">Dashboard</a>');
  });
});
