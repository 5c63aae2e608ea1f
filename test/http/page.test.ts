import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../../src/http/app.js';
import type { ClusterStatus } from '../../src/cluster-status.js';
import { singleNodeStatus } from '../../src/http/cluster-status.js';
import { PAGE_SCRIPT_PATH, PAGE_STYLE_PATH, readPageScript } from '../../src/http/page-assets/assets.js';
import { clusterRows, escapeHtml, PAGE_CSP, renderPage, replicaRows } from '../../src/http/page.js';
import type { PageName } from '../../src/ids.js';
import { silentLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite-store.js';
import { ViewPolicy } from '../../src/http/view-policy.js';
import { rawRequest, serve, type TestServer } from '../helpers/http-server.js';
import { BROWSER_USER_AGENT } from '../helpers/spawn-node.js';
import { TempDirs } from '../helpers/temp-dir.js';

const PAGE_SCRIPT = readPageScript();

const SELF = 'a'.repeat(32);
const B = 'b'.repeat(32);
const C = 'c'.repeat(32);
const OLD = 'd'.repeat(32);

function status(overrides: Partial<ClusterStatus> = {}): ClusterStatus {
  return {
    node: { name: 'node-a', replicaId: SELF, address: '127.0.0.1:1', version: '1.0.0', startedAt: '2026-01-01T00:00:00.000Z' },
    peers: [],
    versionVector: {},
    membership: [{ name: 'node-a', replicaId: SELF, live: true }],
    digest: 'x',
    ...overrides,
  };
}

describe('page rendering', () => {
  it('escapes every value placed in the HTML', () => {
    const evil = `<script>alert("x")</script>&'`;
    const html = renderPage({
      page: evil,
      count: 42,
      replicas: { [SELF]: 40, [B]: 2 },
      status: status({
        node: { name: evil, replicaId: SELF, address: evil, region: evil, version: evil, startedAt: evil },
        membership: [{ name: evil, replicaId: B, live: false }],
        peers: [{ address: evil, replicaId: B, name: evil, state: 'disconnected', lastError: evil }],
      }),
    });
    expect(html).not.toContain('<script>alert');
    expect(html).not.toContain(`"x"`);
    expect(html).toContain(escapeHtml(evil));
    expect(html).toContain('<output id="count" aria-live="polite" aria-atomic="true">42</output>');
    // Nothing inline: the page's own script and style come from the node, allowed by the CSP.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)/);
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
  });

  it('escapes the five HTML-significant characters', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });

  it('formats counts with digit grouping', () => {
    expect(renderPage({ page: 'home', count: 1234567, replicas: {}, status: status() })).toContain('>1,234,567</output>');
  });
});

describe('replicaRows', () => {
  it('names known replicas, shows unknown ones as earlier replicas, largest first', () => {
    const rows = replicaRows({ [SELF]: 5, [B]: 9, [OLD]: 3 }, status({ membership: [{ name: 'node-b', replicaId: B, live: true }] }));
    expect(rows).toEqual([
      { label: 'node-b', count: 9, replicaId: B, known: true },
      { label: 'node-a', count: 5, replicaId: SELF, known: true },
      { label: 'earlier replica dddddddd', count: 3, replicaId: OLD, known: false },
    ]);
  });

  it('folds many earlier replicas into one row', () => {
    const replicas = Object.fromEntries(['1', '2', '3', '4', '5'].map((d) => [d.repeat(32), Number(d)]));
    expect(replicaRows(replicas, status())).toEqual([{ label: '5 earlier replicas', count: 15, known: false }]);
  });

  it('takes names from peers when membership lacks them', () => {
    const rows = replicaRows({ [C]: 1 }, status({ peers: [{ address: 'h:1', replicaId: C, name: 'node-c', state: 'disconnected' }] }));
    expect(rows[0]).toMatchObject({ label: 'node-c', known: true });
  });
});

describe('clusterRows', () => {
  it('shows this node, live members, unreachable ones — never the lag or the reason (the page is public)', () => {
    const rows = clusterRows(
      status({
        membership: [
          { name: 'node-a', replicaId: SELF, live: true },
          { name: 'node-c', replicaId: C, live: false },
          { name: 'node-b', replicaId: B, live: true },
        ],
        peers: [
          { address: 'h:2', replicaId: B, name: 'node-b', state: 'connected', lagSeqs: 3, behindSeqs: 0 },
          { address: 'h:3', replicaId: C, name: 'node-c', state: 'disconnected', lastError: 'connect ECONNREFUSED' },
        ],
      }),
    );
    expect(rows.map((r) => [r.name, r.state, r.stateText, r.detail])).toEqual([
      ['node-a', 'self', 'this node', ''],
      ['node-b', 'live', 'live', 'connected'],
      ['node-c', 'unreachable', 'unreachable', 'no answer'],
    ]);
  });

  it('keeps showing a stopped peer (gone from membership) as unreachable, and a never-reached one as connecting, without its address', () => {
    const rows = clusterRows(
      status({
        peers: [
          { address: 'h:2', replicaId: B, name: 'node-b', state: 'connecting' },
          { address: 'h:9', state: 'connecting' },
          { address: 'h:1', state: 'self' },
          { address: 'h:4', replicaId: C, name: 'node-c', state: 'connected', lagSeqs: 0, behindSeqs: 0 },
          { address: 'h:5', replicaId: C, name: 'node-c', state: 'disconnected' },
        ],
      }),
    );
    expect(rows.map((r) => [r.name, r.state, r.detail])).toEqual([
      ['node-a', 'self', ''],
      ['node-b', 'unreachable', 'no answer'],
      ['node-c', 'live', 'connected'],
      ['unnamed peer', 'connecting', ''],
    ]);
  });
});

describe('the page script', () => {
  it('is valid JavaScript with no template syntax left in it', () => {
    expect(() => new Function(PAGE_SCRIPT)).not.toThrow();
    expect(PAGE_SCRIPT).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
  });
});

describe('page routes', () => {
  const dirs = new TempDirs();
  let store: SqliteStore | undefined;
  let server: TestServer | undefined;

  afterEach(async () => {
    await server?.close();
    await store?.close();
    server = undefined;
    store = undefined;
    await dirs.removeAll();
  });

  async function start(pagePattern?: RegExp): Promise<{ store: SqliteStore; server: TestServer }> {
    store = await openSqliteStore({ path: join(await dirs.create('page-'), 'counters.db') });
    const s = store;
    const app = createApp({
      store: s,
      cluster: singleNodeStatus(s, () => ({ name: 'node<a>', address: '127.0.0.1:1', version: '1.0.0', startedAt: '2026-01-01T00:00:00.000Z' })),
      metrics: createMetrics(),
      log: silentLogger(),
      corsOrigins: '*',
      maxBodyBytes: 4096,
      views: new ViewPolicy({ store: s, pagePattern }),
    });
    server = await serve(app.callback());
    return { store: s, server };
  }

  it('GET / counts a view of home and renders it, with a strict CSP', async () => {
    const h = await start();
    await h.store.increment([{ page: 'home' as PageName, by: 41 }]);
    const response = await fetch(`${h.server.url}/`, { headers: { 'user-agent': BROWSER_USER_AGENT } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(response.headers.get('content-security-policy')).toBe(PAGE_CSP);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const html = await response.text();
    expect(html).toContain('>42</output>');
    expect(html).toContain('node&lt;a&gt;');
    expect(html).toContain(`data-replica="${h.store.replicaId}"`);
    expect(h.store.count('home' as PageName)).toBe(42);
  });

  const browser = { headers: { 'user-agent': BROWSER_USER_AGENT } };

  it('GET /pages/:page counts a page matching PAGE_PATTERN, with slashes and HTML in the name shown as text', async () => {
    const h = await start(/^(<script>|blog\/)/u);
    const name = '<script>alert(1)</script>/x';
    const html = await (await fetch(`${h.server.url}/pages/${encodeURIComponent(name)}`, browser)).text();
    expect(h.store.count(name as PageName)).toBe(1);
    expect(html).toContain(`<q id="page-name">${escapeHtml(name)}</q>`);
    expect(html).not.toContain('<script>alert');
    await fetch(`${h.server.url}/pages/blog/hello`, browser);
    expect(h.store.count('blog/hello' as PageName)).toBe(1);
  });

  it('GET /pages/:page of a page that neither exists nor matches PAGE_PATTERN is a 404 page that creates nothing', async () => {
    const h = await start();
    for (const path of ['/pages/wp-login.php', `/pages/${encodeURIComponent('<b>x</b>')}`]) {
      const response = await fetch(`${h.server.url}${path}`, browser);
      expect(response.status, path).toBe(404);
      expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(response.headers.get('content-security-policy')).toBe(PAGE_CSP);
      const html = await response.text();
      expect(html).toContain('No page');
      expect(html).not.toContain('<b>x</b>');
    }
    expect(h.store.stats().pages).toBe(0);
    // A page that exists (created by an API view) is served and counted.
    await h.store.increment([{ page: 'docs' as PageName, by: 1 }]);
    expect((await fetch(`${h.server.url}/pages/docs`, browser)).status).toBe(200);
    expect(h.store.count('docs' as PageName)).toBe(2);
  });

  it('does not count crawlers or prefetches of the page, answering them normally', async () => {
    const h = await start();
    await h.store.increment([{ page: 'home' as PageName, by: 5 }]);
    const crawler = await fetch(`${h.server.url}/`, { headers: { 'user-agent': 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)' } });
    expect(crawler.status).toBe(200);
    expect(await crawler.text()).toContain('>5</output>');
    const prefetches: Array<Record<string, string>> = [{ 'sec-purpose': 'prefetch' }, { 'sec-purpose': 'prefetch;prerender' }, { purpose: 'prefetch' }];
    for (const headers of prefetches) {
      expect((await fetch(`${h.server.url}/`, { headers: { ...browser.headers, ...headers } })).status).toBe(200);
    }
    expect(h.store.count('home' as PageName)).toBe(5);
  });

  it('HEAD shows the page without counting', async () => {
    const h = await start(/^a$/u);
    expect((await fetch(`${h.server.url}/pages/a`, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${h.server.url}/`, { method: 'HEAD' })).status).toBe(200);
    expect(h.store.stats().pages).toBe(0);
  });

  it('refuses bad page names with 400, counting nothing', async () => {
    const h = await start();
    for (const path of ['/pages/', '/pages/%E0%A4%A', '/pages/%01', `/pages/${'x'.repeat(257)}`]) {
      const response = await rawRequest(h.server.port, { path });
      expect(response.status, path).toBe(400);
      expect((JSON.parse(response.body) as { error: { code: string } }).error.code, path).toBe('bad_page_name');
    }
    expect(h.store.stats().pages).toBe(0);
  });

  it('serves the script and stylesheet with an ETag, and 304 when unchanged', async () => {
    const h = await start();
    const script = await fetch(`${h.server.url}${PAGE_SCRIPT_PATH}`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await script.text()).toBe(PAGE_SCRIPT);
    const etag = script.headers.get('etag') as string;
    expect(etag).toMatch(/^"[\w-]+"$/);
    // (fetch would add no-cache to a conditional request, which rightly defeats the 304.)
    expect((await rawRequest(h.server.port, { path: PAGE_SCRIPT_PATH, headers: { 'if-none-match': etag } })).status).toBe(304);
    const style = await fetch(`${h.server.url}${PAGE_STYLE_PATH}`);
    expect(style.headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect(await style.text()).toContain('#count');
  });
});
