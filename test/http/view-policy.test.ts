/**
 * Who may count what, through the real app (koa on port 0, a real SQLite file): anonymous views
 * count exactly one; `by` and batches need a write token; per-address rate limits; page
 * admission; crawlers answered but not counted. The same attacks against real node processes
 * are in public-surface.test.ts.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ANONYMOUS_MAX_BODY_BYTES } from '../../src/http/routes.js';
import { ViewPolicy, type ViewPolicyOptions } from '../../src/http/view-policy.js';
import type { PageName } from '../../src/ids.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite-store.js';
import { tokenSet } from '../../src/tokens.js';
import { serveApp } from '../helpers/app.js';
import type { TestServer } from '../helpers/http-server.js';
import { BROWSER_USER_AGENT } from '../helpers/spawn-node.js';
import { TempDirs } from '../helpers/temp-dir.js';

const TOKEN = 'view-policy-token-0123456789';
const OLD_TOKEN = 'rotated-out-token-abcdefghij';
const GOOGLEBOT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
const dirs = new TempDirs();

interface Harness {
  store: SqliteStore;
  server: TestServer;
  metrics: Metrics;
}
let h: Harness | undefined;

async function start(views: Partial<ViewPolicyOptions> = {}, corsOrigins: '*' | string[] = '*'): Promise<Harness> {
  const store = await openSqliteStore({ path: join(await dirs.create('policy-'), 'counters.db') });
  const metrics = createMetrics();
  const server = await serveApp(store, {
    metrics,
    corsOrigins,
    views: new ViewPolicy({ store, writeTokens: tokenSet([OLD_TOKEN, TOKEN]), registry: metrics.registry, ...views }),
  });
  h = { store, server, metrics };
  return h;
}

afterEach(async () => {
  await h?.server.close();
  await h?.store.close();
  h = undefined;
  await dirs.removeAll();
});

interface Answer {
  status: number;
  body: { page?: string; count?: number; error?: { code: string; message: string } };
  headers: Headers;
}

async function post(path: string, options: { body?: unknown; token?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { 'user-agent': BROWSER_USER_AGENT, ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${(h as Harness).server.url}${path}`, { method: 'POST', headers, ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}) });
  return { status: response.status, body: (await response.json()) as Answer['body'], headers: response.headers };
}

function snapshot(): unknown {
  const store = (h as Harness).store;
  return { digest: store.digest(), seq: store.localSeq(), pages: store.listPages({ limit: 1000 }) };
}

describe('anonymous views count exactly one', () => {
  it('refuses the overflow curl ({"by": 9007199254740990}) without a token (401) and with a wrong one (403), changing nothing', async () => {
    const { store } = await start();
    await post('/api/pages/victim/views');
    const before = snapshot();
    const anonymous = await post('/api/pages/victim/views', { body: { by: 9007199254740990 } });
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error).toMatchObject({ code: 'token_required', message: expect.stringContaining('WRITE_TOKENS') as unknown });
    const wrong = await post('/api/pages/victim/views', { body: { by: 9007199254740990 }, token: 'not-the-token-0123456789' });
    expect(wrong.status).toBe(403);
    expect(wrong.body.error?.code).toBe('bad_token');
    // Even by = 1 is a writer's field; a wrong token is refused with no body too.
    expect((await post('/api/pages/victim/views', { body: { by: 1 } })).status).toBe(401);
    expect((await post('/api/pages/victim/views', { token: 'not-the-token-0123456789' })).status).toBe(403);
    expect(snapshot()).toEqual(before);
    expect(store.count('victim' as PageName)).toBe(1);
    // The page still counts normally.
    expect((await post('/api/pages/victim/views')).body).toEqual({ page: 'victim', count: 2 });
    expect((await post('/api/pages/victim/views', { body: {} })).body).toEqual({ page: 'victim', count: 3 });
  });

  it('takes by and batches from a write-token holder, any of the configured tokens', async () => {
    const { store } = await start();
    expect((await post('/api/pages/a/views', { body: { by: 5 }, token: TOKEN })).body).toEqual({ page: 'a', count: 5 });
    expect((await post('/api/pages/a/views', { body: { by: 2 }, token: OLD_TOKEN })).body).toEqual({ page: 'a', count: 7 });
    const batch = await post('/api/views', { body: { views: [{ page: 'a', by: 3 }, { page: 'b' }] }, token: TOKEN });
    expect(batch.status).toBe(200);
    expect(store.count('a' as PageName)).toBe(10);
    expect(store.count('b' as PageName)).toBe(1);
  });

  it('refuses a batch without a token (401) or with a wrong one (403)', async () => {
    await start();
    const before = snapshot();
    expect((await post('/api/views', { body: { views: [{ page: 'a' }] } })).body.error?.code).toBe('token_required');
    expect((await post('/api/views', { body: { views: [{ page: 'a' }] }, token: 'x'.repeat(20) })).body.error?.code).toBe('bad_token');
    expect(snapshot()).toEqual(before);
  });

  it('reads at most ANONYMOUS_MAX_BODY_BYTES of an anonymous body (413), a writer’s up to MAX_BODY_BYTES', async () => {
    await start();
    const padded = { pad: 'x'.repeat(ANONYMOUS_MAX_BODY_BYTES) };
    const refused = await post('/api/pages/a/views', { body: padded });
    expect(refused.status).toBe(413);
    expect(refused.body.error?.message).toContain(`${ANONYMOUS_MAX_BODY_BYTES} bytes`);
    // The writer's body gets the full limit (then its own checks: no such field).
    expect((await post('/api/pages/a/views', { body: padded, token: TOKEN })).body.error?.code).toBe('bad_request');
    expect(snapshot()).toEqual({ digest: expect.any(String) as unknown, seq: 0, pages: [] });
  });

  it('says when the node has no write tokens at all', async () => {
    await start({ writeTokens: [] });
    const refused = await post('/api/pages/a/views', { body: { by: 2 } });
    expect(refused.body.error?.message).toContain('no WRITE_TOKENS configured');
    expect((await post('/api/pages/a/views', { body: { by: 2 }, token: TOKEN })).status).toBe(403);
  });
});

describe('rate limits', () => {
  it('answers 429 rate_limited with Retry-After past the burst, counting nothing; token holders are not limited', async () => {
    const { store } = await start({ rateLimitPerIp: 1, rateLimitBurst: 3 });
    for (let i = 1; i <= 3; i++) expect((await post('/api/pages/a/views')).status).toBe(200);
    const limited = await post('/api/pages/a/views');
    expect(limited.status).toBe(429);
    expect(limited.body.error?.code).toBe('rate_limited');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(store.count('a' as PageName)).toBe(3);
    for (let i = 0; i < 20; i++) expect((await post('/api/pages/a/views', { token: TOKEN })).status).toBe(200);
    expect(store.count('a' as PageName)).toBe(23);
    expect(await h?.metrics.render()).toContain('dsqlite_views_refused_total{reason="rate_limited"} 1');
  });

  it('ignores Fly-Client-IP unless TRUST_PROXY: spoofed addresses are still one client', async () => {
    await start({ rateLimitPerIp: 1, rateLimitBurst: 2, trustProxy: false });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await post('/api/pages/a/views', { headers: { 'fly-client-ip': `203.0.113.${i}` } })).status);
    expect(statuses).toEqual([200, 200, 429, 429, 429]);
  });

  it('behind a trusted proxy, limits each Fly-Client-IP on its own', async () => {
    await start({ rateLimitPerIp: 1, rateLimitBurst: 2, trustProxy: true });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await post('/api/pages/a/views', { headers: { 'fly-client-ip': '203.0.113.1' } })).status);
    for (let i = 0; i < 2; i++) statuses.push((await post('/api/pages/a/views', { headers: { 'fly-client-ip': '203.0.113.2' } })).status);
    expect(statuses).toEqual([200, 200, 429, 200, 200]);
  });

  it('is off with RATE_LIMIT_PER_IP=0', async () => {
    await start({ rateLimitPerIp: 0 });
    for (let i = 0; i < 80; i++) expect((await post('/api/pages/a/views')).status).toBe(200);
  });
});

describe('page admission', () => {
  it('past MAX_PAGES refuses anonymous views of new pages (too_many_pages); existing pages count; token holders create', async () => {
    const { store } = await start({ maxPages: 2 });
    await post('/api/pages/one/views');
    await post('/api/pages/two/views');
    const refused = await post('/api/pages/three/views');
    expect(refused.status).toBe(403);
    expect(refused.body.error?.code).toBe('too_many_pages');
    expect(store.count('three' as PageName)).toBe(0);
    expect((await post('/api/pages/one/views')).body.count).toBe(2);
    expect((await post('/api/pages/three/views', { token: TOKEN })).body.count).toBe(1);
    expect(store.stats().pages).toBe(3);
  });

  it('with PAGE_PATTERN, anonymous views create only matching pages (page_not_allowed otherwise)', async () => {
    const { store } = await start({ pagePattern: /^\/blog\/[a-z0-9-]+$/u });
    expect((await post(`/api/pages/${encodeURIComponent('/blog/hello')}/views`)).status).toBe(200);
    const refused = await post('/api/pages/wp-login.php/views');
    expect(refused.status).toBe(403);
    expect(refused.body.error?.code).toBe('page_not_allowed');
    expect(store.stats().pages).toBe(1);
    // A token holder may create any page; after that it exists and anonymous views count it.
    await post('/api/pages/special/views', { token: TOKEN });
    expect((await post('/api/pages/special/views')).body.count).toBe(2);
  });

  it('with CORS_ORIGINS set, refuses anonymous views from another site', async () => {
    const { store } = await start({}, ['https://blog.example']);
    const refused = await post('/api/pages/a/views', { headers: { origin: 'https://evil.example' } });
    expect(refused.status).toBe(403);
    expect(refused.body.error?.code).toBe('forbidden_origin');
    expect((await post('/api/pages/a/views', { headers: { origin: 'https://blog.example' } })).status).toBe(200);
    expect(store.count('a' as PageName)).toBe(1);
  });
});

describe('bots are not views', () => {
  it('answers a crawler with the current count, counts it apart, never creates its page', async () => {
    const { store, metrics } = await start();
    await post('/api/pages/a/views');
    const crawled = await post('/api/pages/a/views', { headers: { 'user-agent': GOOGLEBOT } });
    expect(crawled).toMatchObject({ status: 200, body: { page: 'a', count: 1 } });
    expect((await post('/api/pages/new/views', { headers: { 'user-agent': 'curl/8.5.0' } })).body).toEqual({ page: 'new', count: 0 });
    expect(store.count('a' as PageName)).toBe(1);
    expect(store.stats().pages).toBe(1);
    expect(await metrics.render()).toContain('dsqlite_views_not_counted_total{reason="bot"} 2');
    // A write-token holder's collector is not judged by its User-Agent.
    expect((await post('/api/pages/a/views', { token: TOKEN, headers: { 'user-agent': 'node' } })).body.count).toBe(2);
  });

  it('still refuses `by` from a crawler (the token check comes first)', async () => {
    await start();
    expect((await post('/api/pages/a/views', { body: { by: 9 }, headers: { 'user-agent': 'curl/8.5.0' } })).status).toBe(401);
  });
});
