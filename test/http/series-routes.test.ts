import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../../src/http/app.js';
import { singleNodeStatus } from '../../src/http/cluster-status.js';
import { ViewPolicy } from '../../src/http/view-policy.js';
import { noLog } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite-store.js';
import { tokenSet } from '../../src/tokens.js';
import { serve, type TestServer } from '../helpers/http-server.js';
import { BROWSER_USER_AGENT, TEST_WRITE_TOKEN } from '../helpers/spawn-node.js';
import { TempDirs } from '../helpers/temp-dir.js';

const dirs = new TempDirs();
let store: SqliteStore;
let server: TestServer;

function appFor(store: SqliteStore, options: { pagePattern?: RegExp; analytics?: boolean } = {}) {
  const metrics = createMetrics();
  return createApp({
    store,
    cluster: singleNodeStatus(store, () => ({ name: 'n', address: '127.0.0.1:1', version: '9.9.9', startedAt: '2026-01-01T00:00:00.000Z' })),
    metrics,
    log: noLog,
    corsOrigins: '*',
    maxBodyBytes: 4096,
    views: new ViewPolicy({ store, writeTokens: tokenSet([TEST_WRITE_TOKEN]), rateLimitPerIp: 0, visitors: options.analytics ?? true, ...(options.pagePattern !== undefined ? { pagePattern: options.pagePattern } : {}) }),
    readiness: () => 'ready',
    adminTokens: tokenSet(['series-test-admin-token-01']),
  });
}

/** A store and its app; `analytics` false as a node started with ANALYTICS=false wires them. */
async function open(analytics: boolean): Promise<void> {
  const dir = await dirs.create('series-');
  store = await openSqliteStore({ path: join(dir, 'counters.db'), analytics });
  server = await serve(appFor(store, { analytics }).callback());
}

beforeEach(() => open(true));

afterEach(async () => {
  await server.close();
  await store.close();
  await dirs.removeAll();
});

/** The fields the routes answer with (any of them, by route). */
interface Answer {
  page?: string;
  step: string;
  from: string;
  to: string;
  points: Array<{ t: string; views: number; visitors?: number }>;
  pages: Array<{ page: string; views: number }>;
  error: { code: string };
}

async function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Answer; headers: Headers }> {
  const response = await fetch(`${server.url}${path}`, { headers });
  return { status: response.status, body: (await response.json()) as Answer, headers: response.headers };
}

async function view(page: string, userAgent = BROWSER_USER_AGENT): Promise<void> {
  const response = await fetch(`${server.url}/api/pages/${page}/views`, { method: 'POST', headers: { 'user-agent': userAgent } });
  expect(response.status).toBe(200);
}

describe('GET /api/pages/:page/series, /api/series, /api/top', () => {
  it('answer the views counted, per hour and per day, with visitors per day, and count nothing', async () => {
    for (let i = 0; i < 3; i++) await view('a');
    await view('b');
    await view('b', 'Googlebot/2.1 (+http://www.google.com/bot.html)');
    const hours = await get('/api/pages/a/series', { origin: 'https://blog.example' });
    expect(hours.status).toBe(200);
    expect(hours.headers.get('access-control-allow-origin')).toBe('*');
    expect(hours.body.page).toBe('a');
    expect(hours.body.step).toBe('hour');
    expect(hours.body.points).toHaveLength(24);
    const last = hours.body.points[23] as { t: string; views: number };
    expect(last).toEqual({ t: new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000).toISOString(), views: 3 });
    expect(hours.body.points.slice(0, 23).every((p: { views: number }) => p.views === 0)).toBe(true);
    expect(hours.body.to).toBe(new Date(Date.parse(last.t) + 3_600_000).toISOString());

    const days = await get('/api/series?step=day');
    expect(days.body.page).toBeUndefined();
    expect(days.body.points).toHaveLength(30);
    // Four counted views (the crawler is not counted), one visitor (same address and User-Agent).
    expect(days.body.points[29]).toMatchObject({ views: 4, visitors: 1 });

    const top = await get('/api/top');
    expect(top.body.error).toBeUndefined();
    expect(top.body.pages).toEqual([
      { page: 'a', views: 3 },
      { page: 'b', views: 1 },
    ]);
    expect((await get('/api/top?limit=1')).body.pages).toEqual([{ page: 'a', views: 3 }]);
    // Reading counted nothing.
    expect(store.count('a' as never)).toBe(3);
  });

  it('takes ranges in ISO 8601 or epoch ms, every step a point', async () => {
    const from = Date.UTC(2026, 0, 1);
    const body = (await get(`/api/series?step=day&from=2026-01-01T00:00:00Z&to=${from + 3 * 86_400_000}`)).body;
    expect(body.from).toBe('2026-01-01T00:00:00.000Z');
    expect(body.to).toBe('2026-01-04T00:00:00.000Z');
    expect(body.points.map((p: { t: string }) => p.t)).toEqual(['2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z', '2026-01-03T00:00:00.000Z']);
    expect(body.points[0]).toEqual({ t: '2026-01-01T00:00:00.000Z', views: 0, visitors: 0 });
  });

  it('refuse bad input with a clear code', async () => {
    const cases: Array<[string, string]> = [
      ['/api/series?step=week', 'bad_step'],
      ['/api/series?step=HOUR', 'bad_step'],
      ['/api/pages/a/series?step=minute', 'bad_step'],
      ['/api/series?from=-5', 'bad_time'],
      ['/api/series?from=1e12', 'bad_time'],
      ['/api/series?from=9999999999999999', 'bad_time'],
      ['/api/series?to=253402300800000', 'bad_time'],
      ['/api/series?from=2026-02-30T00:00:00Z', 'bad_time'],
      ['/api/series?from=2026-13-01', 'bad_time'],
      ['/api/series?from=2026-01-01T25:00:00Z', 'bad_time'],
      ['/api/series?from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z', 'bad_range'],
      ['/api/pages/a/series?from=2026-03-01&to=2026-02-01', 'bad_range'],
      ['/api/top?from=2026-03-01&to=2026-02-01', 'bad_range'],
      ['/api/series?step=day&from=0&to=9999-12-31', 'too_many_points'],
      ['/api/pages/a/series?step=day&from=1970-01-01&to=1975-12-31', 'too_many_points'],
      ['/api/top?from=0&to=9999-12-31', 'range_too_long'],
      ['/api/top?limit=ten', 'bad_request'],
      ['/api/series?from=2026-01-01&from=2026-01-02', 'bad_request'],
      [`/api/pages/${'x'.repeat(257)}/series`, 'bad_page_name'],
      ['/api/pages/a%00b/series', 'bad_page_name'],
      ['/api/series?from=yesterday', 'bad_time'],
      ['/api/series?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z', 'bad_range'],
      ['/api/series?step=hour&from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z', 'too_many_points'],
      ['/api/series?step=hour&step=day', 'bad_request'],
      ['/api/top?limit=0', 'bad_request'],
      ['/api/top?limit=101', 'bad_request'],
      ['/api/pages/%E0%A4%A/series', 'bad_page_name'],
    ];
    for (const [path, code] of cases) {
      const answer = await get(path);
      expect(answer.status, path).toBe(400);
      expect(answer.body.error.code, path).toBe(code);
    }
    // The bounds themselves are answered: 2,000 points, 2,000 days of top pages.
    expect((await get('/api/series?step=hour&from=0&to=7200000000')).body.points).toHaveLength(2000);
    expect((await get(`/api/top?from=0&to=${2000 * 86_400_000}`)).status).toBe(200);
    // Nothing was created or counted by any of it.
    expect(store.listPages({ limit: 10, withResets: true })).toEqual([]);
  });

  it('answer a name outside PAGE_PATTERN with a 400 unless the page exists', async () => {
    const dir = await dirs.create('series-pattern-');
    const patterned = await openSqliteStore({ path: join(dir, 'counters.db') });
    const other = await serve(appFor(patterned, { pagePattern: /^\/blog\//u }).callback());
    try {
      // A write-token holder may create any name; an existing page is always readable.
      await patterned.increment([{ page: 'notes' as never, by: 2 }]);
      const cases: Array<[string, number, string | undefined]> = [
        ['/api/pages/%2Fblog%2Fhello/series', 200, undefined],
        ['/api/pages/notes/series?step=day', 200, undefined],
        ['/api/pages/%2Fadmin/series', 400, 'bad_page_name'],
        ['/api/pages/wp-login.php/series?step=day', 400, 'bad_page_name'],
      ];
      for (const [path, status, code] of cases) {
        const response = await fetch(`${other.url}${path}`);
        const body = (await response.json()) as Answer;
        expect(response.status, path).toBe(status);
        expect(body.error?.code, path).toBe(code);
      }
      expect(patterned.listPages({ limit: 10, withResets: true }).map((p) => p.page)).toEqual(['notes']);
    } finally {
      await other.close();
      await patterned.close();
    }
  });
});

describe('with analytics off (ANALYTICS=false)', () => {
  it('counts totals but raises no bucket and no sketch', async () => {
    await server.close();
    await store.close();
    await open(false);
    await view('a');
    await view('a');
    expect(store.count('a' as never)).toBe(2);
    const days = await get('/api/series?step=day');
    expect(days.body.points.every((p) => p.views === 0 && p.visitors === 0)).toBe(true);
    expect((await get('/api/pages/a/series')).body.points.every((p) => p.views === 0)).toBe(true);
    expect((await get('/api/top')).body.pages).toEqual([]);
  });
});
