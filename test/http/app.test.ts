import type { IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_BATCH_VIEWS } from '../../src/http/body.js';
import { MAX_TOKEN_PAGES } from '../../src/http/session-token.js';
import { createApp } from '../../src/http/app.js';
import { singleNodeStatus } from '../../src/http/cluster-status.js';
import type { Readiness } from '../../src/http/routes.js';
import type { PageName } from '../../src/ids.js';
import { createLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import { ViewPolicy, type ViewPolicyOptions } from '../../src/http/view-policy.js';
import { tokenSet } from '../../src/tokens.js';
import { eventually } from '../helpers/eventually.js';
import { rawRequest, serve, type TestServer } from '../helpers/http-server.js';
import { BROWSER_USER_AGENT, TEST_WRITE_TOKEN } from '../helpers/spawn-node.js';
import { TempDirs } from '../helpers/temp-dir.js';

const MAX_BODY_BYTES = 4096;
const dirs = new TempDirs();

interface Harness {
  store: SqliteStore;
  server: TestServer;
  logs: Array<Record<string, unknown>>;
  readiness: { value: Readiness };
}

let h: Harness;
/** The request the server got last, as the server sees it. */
let lastRequest: IncomingMessage | undefined;
/** Settles once koa is done with the last request (its handler and the response). */
let lastHandled: Promise<void> | undefined;
/** A counter of loop turns while `running` (a setImmediate chain), and the turns each answer took. */
const loopTurns = { count: 0, running: false, answered: [] as number[] };
async function countingTurns<T>(work: () => Promise<T>): Promise<T> {
  loopTurns.running = true;
  const tick = (): void => {
    loopTurns.count++;
    if (loopTurns.running) setImmediate(tick);
  };
  setImmediate(tick);
  try {
    return await work();
  } finally {
    loopTurns.running = false;
  }
}

async function start(
  options: { corsOrigins?: '*' | string[]; maxBodyBytes?: number; wrapStore?: (store: SqliteStore) => Store; views?: Partial<ViewPolicyOptions> } = {},
): Promise<Harness> {
  const dir = await dirs.create('http-');
  const store = await openSqliteStore({ path: join(dir, 'counters.db') });
  const logs: Array<Record<string, unknown>> = [];
  const log = createLogger({
    level: 'info',
    destination: new Writable({
      write(chunk: Buffer, _encoding, done) {
        logs.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
        done();
      },
    }),
  });
  const metrics = createMetrics();
  metrics.watchStore(store);
  const served: Store = options.wrapStore?.(store) ?? store;
  const readiness = { value: 'ready' as Readiness };
  const app = createApp({
    store: served,
    cluster: singleNodeStatus(served, () => ({ name: 'n<1>', address: '127.0.0.1:1', version: '9.9.9', startedAt: '2026-01-01T00:00:00.000Z' })),
    metrics,
    log,
    corsOrigins: options.corsOrigins ?? '*',
    maxBodyBytes: options.maxBodyBytes ?? MAX_BODY_BYTES,
    views: new ViewPolicy({ store: served, writeTokens: tokenSet([TEST_WRITE_TOKEN]), registry: metrics.registry, ...options.views }),
    readiness: () => readiness.value,
    adminTokens: tokenSet([ADMIN_TOKEN]),
  });
  const handle = app.callback();
  const server = await serve((req, res) => {
    // The loop turns from the body's end to the answer's end (see "loop turns of a small batch").
    let ended: number | undefined;
    lastRequest = req;
    req.once('end', () => (ended = loopTurns.count));
    res.once('finish', () => {
      if (ended !== undefined) loopTurns.answered.push(loopTurns.count - ended);
    });
    lastHandled = handle(req, res);
  });
  h = { store, server, logs, readiness };
  return h;
}

async function restart(options: Parameters<typeof start>[0]): Promise<void> {
  await h.server.close();
  await h.store.close();
  await start(options);
}

beforeEach(async () => {
  await start();
});

afterEach(async () => {
  await h.server.close();
  await h.store.close();
  await dirs.removeAll();
});

const url = (path: string): string => `${h.server.url}${path}`;
const ADMIN_TOKEN = 'app-test-admin-token-0123';
const ADMIN: RequestInit = { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } };
const json = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/**
 * A request from a browser; with a body (`by`, batches, bad bodies) or to the batch endpoint it
 * carries the write token, as a collector's would, so the body's own checks are what is tested.
 */
async function call(path: string, init?: RequestInit): Promise<{ status: number; body: unknown; headers: Headers }> {
  const headers = new Headers(init?.headers);
  if (!headers.has('user-agent')) headers.set('user-agent', BROWSER_USER_AGENT);
  if ((init?.body !== undefined || path === '/api/views') && !headers.has('authorization')) headers.set('authorization', `Bearer ${TEST_WRITE_TOKEN}`);
  const response = await fetch(url(path), { ...init, headers });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON (HTML, metrics): keep the text.
  }
  return { status: response.status, body, headers: response.headers };
}

/** Everything the database holds that a request could change. */
function snapshot(): unknown {
  return { digest: h.store.digest(), seq: h.store.localSeq(), pages: h.store.listPages({ limit: 10_000 }), stats: h.store.stats() };
}

describe('counting', () => {
  it('counts one view per empty POST and answers the new total', async () => {
    expect(await call('/api/pages/home/views', { method: 'POST' })).toMatchObject({ status: 200, body: { page: 'home', count: 1 } });
    expect(await call('/api/pages/home/views', { method: 'POST' })).toMatchObject({ status: 200, body: { page: 'home', count: 2 } });
    expect(h.store.count('home' as PageName)).toBe(2);
  });

  it('counts {"by": n}', async () => {
    expect(await call('/api/pages/a/views', json({ by: 5 }))).toMatchObject({ status: 200, body: { page: 'a', count: 5 } });
    expect(await call('/api/pages/a/views', json({}))).toMatchObject({ status: 200, body: { page: 'a', count: 6 } });
  });

  it('counts an empty body with any content type (navigator.sendBeacon)', async () => {
    const response = await call('/api/pages/beacon/views', { method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8' }, body: '' });
    expect(response).toMatchObject({ status: 200, body: { page: 'beacon', count: 1 } });
  });

  it('decodes percent-encoded page names, including UTF-8 and slashes', async () => {
    expect(await call(`/api/pages/${encodeURIComponent('blog/héllo wörld')}/views`, { method: 'POST' })).toMatchObject({
      status: 200,
      body: { page: 'blog/héllo wörld', count: 1 },
    });
    expect(await call(`/api/pages/${encodeURIComponent('blog/héllo wörld')}`)).toMatchObject({ body: { page: 'blog/héllo wörld', count: 1 } });
  });

  it('accepts a 256-byte page name', async () => {
    const name = 'é'.repeat(128);
    expect((await call(`/api/pages/${encodeURIComponent(name)}/views`, { method: 'POST' })).status).toBe(200);
  });

  it('counts a batch all together and answers every total in input order', async () => {
    await call('/api/pages/b/views', json({ by: 10 }));
    const response = await call('/api/views', json({ views: [{ page: 'a', by: 2 }, { page: 'b' }, { page: 'a', by: 3 }] }));
    expect(response).toMatchObject({
      status: 200,
      body: {
        pages: [
          { page: 'a', count: 5 },
          { page: 'b', count: 11 },
          { page: 'a', count: 5 },
        ],
      },
    });
    // One store unit: one seq for the whole batch.
    expect(h.store.localSeq()).toBe(2);
  });

  it('accepts the largest batch as one unit', async () => {
    await restart({ maxBodyBytes: 1024 * 1024 });
    const views = Array.from({ length: MAX_BATCH_VIEWS }, (_, i) => ({ page: `p${i % 100}` }));
    const response = await call('/api/views', json({ views }));
    expect(response.status).toBe(200);
    expect((response.body as { pages: unknown[] }).pages).toHaveLength(MAX_BATCH_VIEWS);
    expect(h.store.count('p7' as PageName)).toBe(100);
    expect(h.store.localSeq()).toBe(1);
  });

  it('reads a page (unknown: 0)', async () => {
    await call('/api/pages/x/views', json({ by: 3 }));
    expect(await call('/api/pages/x')).toMatchObject({ status: 200, body: { page: 'x', count: 3 } });
    expect(await call('/api/pages/never')).toMatchObject({ status: 200, body: { page: 'never', count: 0 } });
  });

  it('lists pages in name order, paginated with a next cursor', async () => {
    await call('/api/views', json({ views: ['c', 'a', 'e', 'b', 'd'].map((page, i) => ({ page, by: i + 1 })) }));
    const first = await call('/api/pages?limit=2');
    expect(first).toMatchObject({ status: 200, body: { pages: [{ page: 'a', count: 2 }, { page: 'b', count: 4 }], next: 'b' } });
    const second = await call('/api/pages?limit=2&after=b');
    expect(second.body).toEqual({ pages: [{ page: 'c', count: 1 }, { page: 'd', count: 5 }], next: 'd' });
    const last = await call('/api/pages?limit=2&after=d');
    expect(last.body).toEqual({ pages: [{ page: 'e', count: 3 }], next: null });
    expect((await call('/api/pages')).body).toMatchObject({ next: null });
  });
});

describe('status endpoints', () => {
  it('shows the public the cluster as names and states only, not readable across origins', async () => {
    const { status, body, headers } = await call('/api/cluster', { headers: { origin: 'https://elsewhere.example' } });
    expect(status).toBe(200);
    expect(body).toEqual({ nodes: [{ name: 'n<1>', state: 'self' }] });
    expect(headers.get('access-control-allow-origin')).toBeNull();
    // A wrong token is no token.
    expect((await call('/api/cluster', { headers: { authorization: 'Bearer not-the-admin-token' } })).body).toEqual({ nodes: [{ name: 'n<1>', state: 'self' }] });
  });

  it('shows an admin the cluster: this node, no peers, itself as the only member, vv and digest', async () => {
    await call('/api/pages/a/views', { method: 'POST' });
    const { status, body } = await call('/api/cluster', ADMIN);
    expect(status).toBe(200);
    expect(body).toEqual({
      node: { name: 'n<1>', replicaId: h.store.replicaId, address: '127.0.0.1:1', version: '9.9.9', startedAt: '2026-01-01T00:00:00.000Z' },
      peers: [],
      versionVector: { [h.store.replicaId]: 1 },
      membership: [{ name: 'n<1>', replicaId: h.store.replicaId, address: '127.0.0.1:1', version: '9.9.9', startedAt: '2026-01-01T00:00:00.000Z', live: true }],
      digest: h.store.digest(),
    });
  });

  it('answers healthz, and readyz by readiness', async () => {
    expect(await call('/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await call('/readyz')).toMatchObject({ status: 200, body: { status: 'ready' } });
    h.readiness.value = 'shutting_down';
    expect(await call('/readyz')).toMatchObject({ status: 503, body: { error: { code: 'shutting_down' } } });
    h.readiness.value = 'starting';
    expect(await call('/readyz')).toMatchObject({ status: 503, body: { error: { code: 'not_ready' } } });
    expect((await call('/healthz')).status).toBe(200);
  });

  it('serves Prometheus metrics with requests by route and views counted', async () => {
    await call('/api/pages/a/views', json({ by: 4 }));
    await call('/api/pages/%01/views', { method: 'POST' });
    expect(await call('/metrics')).toMatchObject({ status: 401, body: { error: { code: 'admin_token_required' } } });
    const { status, body, headers } = await call('/metrics', ADMIN);
    expect(status).toBe(200);
    expect(headers.get('content-type')).toContain('text/plain');
    expect(body).toContain('dsqlite_http_requests_total{route="/api/pages/:page/views",method="POST",status="200"} 1');
    expect(body).toContain('dsqlite_http_requests_total{route="/api/pages/:page/views",method="POST",status="400"} 1');
    expect(body).toContain('dsqlite_views_counted_total 4');
    expect(body).toContain('dsqlite_store_commits_total 1');
    expect(body).toContain('dsqlite_store_pages 1');
  });

  it('serves the home page, counting its own view, without JavaScript', async () => {
    const first = await call('/');
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(first.body).toContain('data-page="home"');
    expect(first.body).toContain('<output id="count" aria-live="polite" aria-atomic="true">1</output>');
    expect(first.body).not.toContain('n<1>');
    expect(first.body).toContain('n&lt;1&gt;');
    expect(await call('/')).toMatchObject({ body: expect.stringContaining('>2<') as unknown });
    // HEAD shows, does not count.
    expect((await fetch(url('/'), { method: 'HEAD' })).status).toBe(200);
    expect(h.store.count('home' as PageName)).toBe(2);
  });
});

describe('errors', () => {
  it('answers 404 not_found for unknown routes', async () => {
    expect(await call('/nope')).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    expect(await call('/api/pages/a/views/extra', { method: 'POST' })).toMatchObject({ status: 404 });
  });

  it('answers 405 method_not_allowed with Allow for a known path', async () => {
    const response = await call('/api/pages/a', { method: 'DELETE' });
    expect(response).toMatchObject({ status: 405, body: { error: { code: 'method_not_allowed' } } });
    expect(response.headers.get('allow')).toContain('GET');
    expect((await call('/api/pages/a/views')).status).toBe(405);
  });

  it('answers 500 internal for unexpected errors, hides the message and logs it', async () => {
    await restart({
      wrapStore: (store) =>
        new Proxy(store, {
          get(target, key, receiver) {
            if (key === 'count' || key === 'pageSlots') return () => {
              throw new Error('secret detail');
            };
            const value: unknown = Reflect.get(target, key, receiver);
            return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
          },
        }),
    });
    const response = await call('/api/pages/a');
    expect(response).toEqual(expect.objectContaining({ status: 500, body: { error: { code: 'internal', message: 'internal error' } } }));
    expect(JSON.stringify(response.body)).not.toContain('secret');
    expect(h.logs.some((l) => l.level === 'error' && JSON.stringify(l).includes('secret detail'))).toBe(true);
  });
});

describe('loop turns of a small batch', () => {
  it('a batch of 2 views is answered within 2 loop turns of the end of its body (parse and answer at once on an idle runner; through its queue it took 3)', async () => {
    loopTurns.answered.length = 0;
    await countingTurns(async () => {
      for (let i = 0; i < 20; i++) {
        const response = await call('/api/views', json({ views: [{ page: 'a' }, { page: `b${i}`, by: 2 }] }));
        expect(response.status).toBe(200);
      }
    });
    expect(loopTurns.answered).toHaveLength(20);
    // 1 here (the group commit's turn), as on main; 3 or 4 when the parse and the answer each waited a slice.
    for (const turns of loopTurns.answered) expect(turns).toBeLessThanOrEqual(2);
    expect(h.store.count('a' as PageName)).toBe(20);
  });
});

describe('a batch whose client went away', () => {
  it('is counted, and no answer is built for it (the answer would read the slots of its pages)', async () => {
    let reads = 0;
    let committed = false;
    await restart({
      wrapStore: (store) =>
        new Proxy(store, {
          get(target, key, receiver) {
            if (key === 'pageSlots')
              return (page: PageName) => {
                reads++;
                return target.pageSlots(page);
              };
            if (key === 'increment')
              return async (increments: Parameters<Store['increment']>[0]) => {
                const counts = await target.increment(increments);
                committed = true;
                // Answered only once the server saw its client go.
                const socket = (lastRequest as IncomingMessage).socket;
                if (!socket.destroyed) await new Promise((resolve) => socket.once('close', resolve));
                return counts;
              };
            const value: unknown = Reflect.get(target, key, receiver);
            return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
          },
        }),
    });
    const body = JSON.stringify({ views: [{ page: 'gone', by: 3 }] });
    const client = connect(h.server.port, '127.0.0.1');
    client.on('error', () => {});
    client.write(
      `POST /api/views HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer ${TEST_WRITE_TOKEN}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    await eventually(() => expect(committed).toBe(true));
    client.destroy();
    await lastHandled;
    // The answer reads the page's slots (answerSteps).
    expect(reads).toBe(0);
    expect(h.store.count('gone' as PageName)).toBe(3);
  });
});

describe('a large batch', () => {
  it('reads the slots of no more pages than a session token can carry, and answers every page its count', async () => {
    let reads = 0;
    await restart({
      maxBodyBytes: 1 << 20,
      wrapStore: (store) =>
        new Proxy(store, {
          get(target, key, receiver) {
            if (key === 'pageSlots')
              return (page: PageName) => {
                reads++;
                return target.pageSlots(page);
              };
            const value: unknown = Reflect.get(target, key, receiver);
            return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
          },
        }),
    });
    expect((await call('/api/views', json({ views: [{ page: 'p-1999', by: 4 }] }))).status).toBe(200);
    reads = 0;
    const views = Array.from({ length: 2_000 }, (_, i) => ({ page: `p-${i}`, by: 1 }));
    const response = await call('/api/views', json({ views: [...views, { page: 'p-0', by: 2 }] }));
    expect(response.status).toBe(200);
    expect((response.body as { pages: unknown }).pages).toEqual([...views.map((v, i) => ({ page: v.page, count: i === 1999 ? 5 : i === 0 ? 3 : 1 })), { page: 'p-0', count: 3 }]);
    // Each page's slots were read for the token only, and a token holds fewer than this many.
    expect(reads).toBeLessThanOrEqual(MAX_TOKEN_PAGES);
    expect(response.headers.get('counter-session')).toMatch(/^[A-Za-z0-9_-]+$/);
  });
});

describe('bad input changes nothing', () => {
  beforeEach(async () => {
    // Something to protect.
    await call('/api/views', json({ views: [{ page: 'a', by: 7 }, { page: 'b', by: 1 }] }));
  });

  async function expectRefused(
    request: () => Promise<{ status: number; body: unknown }>,
    status: number,
    code: string,
  ): Promise<void> {
    const before = snapshot();
    const response = await request();
    expect(response.status).toBe(status);
    expect(response.body).toMatchObject({ error: { code, message: expect.any(String) as unknown } });
    expect(snapshot()).toEqual(before);
  }

  const tooLong = encodeURIComponent('x'.repeat(257));
  const tooLongUtf8 = encodeURIComponent('é'.repeat(128) + 'x');
  it.each([
    ['a page name over 256 bytes', tooLong],
    ['a page name over 256 bytes of UTF-8', tooLongUtf8],
    ['a control character', 'a%01b'],
    ['a newline', 'a%0Ab'],
    ['DEL', 'a%7F'],
    ['a C1 control', 'a%C2%85'],
    ['a truncated escape', '%E0%A4%A'],
    ['a non-hex escape', '%ZZ'],
    ['invalid UTF-8', '%FF'],
    ['an encoded lone surrogate', '%ED%A0%80'],
  ])('refuses %s in the path (400)', async (_name, segment) => {
    await expectRefused(async () => {
      const raw = await rawRequest(h.server.port, { method: 'POST', path: `/api/pages/${segment}/views` });
      return { status: raw.status, body: JSON.parse(raw.body) as unknown };
    }, 400, 'bad_page_name');
    const read = await rawRequest(h.server.port, { path: `/api/pages/${segment}` });
    expect(read.status).toBe(400);
  });

  it.each([
    ['0', 0],
    ['-1', -1],
    ['1.5', 1.5],
    ['a string', '1'],
    ['2^53', 2 ** 53],
    ['null', null],
    ['true', true],
    ['an array', [1]],
    ['an object', { n: 1 }],
  ])('refuses by = %s (400 bad_increment)', async (_name, by) => {
    await expectRefused(() => call('/api/pages/a/views', json({ by })), 400, 'bad_increment');
  });

  it('refuses by given as a huge JSON number (1e400 parses to Infinity)', async () => {
    await expectRefused(() => call('/api/pages/a/views', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"by": 1e400}' }), 400, 'bad_increment');
  });

  it('refuses an increment that would overflow the counter, counting nothing', async () => {
    expect((await call('/api/pages/big/views', json({ by: Number.MAX_SAFE_INTEGER - 1 }))).status).toBe(200);
    await expectRefused(() => call('/api/pages/big/views', json({ by: 2 })), 400, 'counter_overflow');
    expect(h.store.count('big' as PageName)).toBe(Number.MAX_SAFE_INTEGER - 1);
  });

  it.each([
    ['malformed JSON', '{"by": ', 'bad_json'],
    ['a JSON array', '[1]', 'bad_request'],
    ['a JSON string', '"by"', 'bad_request'],
    ['JSON null', 'null', 'bad_request'],
    ['an unknown field', '{"by": 1, "evil": true}', 'bad_request'],
  ])('refuses %s (400)', async (_name, body, code) => {
    await expectRefused(() => call('/api/pages/a/views', { method: 'POST', headers: { 'content-type': 'application/json' }, body }), 400, code);
  });

  it('refuses a body that is not JSON (415)', async () => {
    await expectRefused(() => call('/api/pages/a/views', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"by": 2}' }), 415, 'unsupported_media_type');
    await expectRefused(() => call('/api/pages/a/views', { method: 'POST', body: new URLSearchParams({ by: '2' }) }), 415, 'unsupported_media_type');
    await expectRefused(() => call('/api/views', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"views": []}' }), 415, 'unsupported_media_type');
  });

  it('accepts application/json with a charset and +json types', async () => {
    expect((await call('/api/pages/a/views', { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body: '{"by":1}' })).status).toBe(200);
    expect((await call('/api/pages/a/views', { method: 'POST', headers: { 'content-type': 'application/merge+json' }, body: '{"by":1}' })).status).toBe(200);
  });

  it('refuses an oversized body with a declared length (413)', async () => {
    const body = JSON.stringify({ by: 1, pad: 'x'.repeat(MAX_BODY_BYTES) });
    await expectRefused(() => call('/api/pages/a/views', { method: 'POST', headers: { 'content-type': 'application/json' }, body }), 413, 'body_too_large');
  });

  it('refuses an oversized chunked body (413)', async () => {
    const chunk = new TextEncoder().encode(' '.repeat(1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 16) controller.enqueue(chunk);
        else controller.close();
      },
    });
    await expectRefused(
      () => call('/api/views', { method: 'POST', headers: { 'content-type': 'application/json' }, body: stream, duplex: 'half' } as RequestInit),
      413,
      'body_too_large',
    );
  });

  it.each([
    ['no body', undefined, 'bad_request'],
    ['no views', {}, 'bad_request'],
    ['views not an array', { views: { page: 'a' } }, 'bad_request'],
    ['an empty batch', { views: [] }, 'bad_request'],
    ['an unknown top-level field', { views: [{ page: 'a' }], x: 1 }, 'bad_request'],
    ['one entry not an object', { views: [{ page: 'a' }, 'b'] }, 'bad_request'],
    ['one bad page name', { views: [{ page: 'a', by: 1 }, { page: '', by: 1 }] }, 'bad_page_name'],
    ['one page name with a control character', { views: [{ page: 'a' }, { page: 'x\u0000' }] }, 'bad_page_name'],
    ['one page name not a string', { views: [{ page: 'a' }, { page: 5 }] }, 'bad_page_name'],
    ['one bad by', { views: [{ page: 'a', by: 1 }, { page: 'b', by: 0 }] }, 'bad_increment'],
    ['one unknown field in an entry', { views: [{ page: 'a', by: 1, extra: 1 }] }, 'bad_request'],
  ])('refuses a batch with %s, whole (400)', async (_name, body, code) => {
    await expectRefused(() => call('/api/views', body === undefined ? { method: 'POST' } : json(body)), 400, code);
  });

  it('refuses a batch over the cap with a clear message', async () => {
    await restart({ maxBodyBytes: 1024 * 1024 });
    await call('/api/pages/a/views', { method: 'POST' });
    const views = Array.from({ length: MAX_BATCH_VIEWS + 1 }, () => ({ page: 'a' }));
    await expectRefused(async () => {
      const response = await call('/api/views', json({ views }));
      expect(JSON.stringify(response.body)).toContain(`from 1 to ${MAX_BATCH_VIEWS} entries`);
      return response;
    }, 400, 'bad_request');
  });

  it('refuses a batch whose total would overflow, counting nothing of it', async () => {
    await expectRefused(
      () => call('/api/views', json({ views: [{ page: 'c', by: 1 }, { page: 'a', by: Number.MAX_SAFE_INTEGER }] })),
      400,
      'counter_overflow',
    );
  });

  it.each([
    ['limit=0', 'bad_request'],
    ['limit=abc', 'bad_request'],
    ['limit=1001', 'bad_request'],
    ['limit=1&limit=2', 'bad_request'],
    ['after=%01', 'bad_page_name'],
    ['after=a&after=b', 'bad_request'],
  ])('refuses the listing query %s (400)', async (query, code) => {
    await expectRefused(() => call(`/api/pages?${query}`), 400, code);
  });
});

describe('CORS', () => {
  it('answers any origin by default, preflight included', async () => {
    const preflight = await fetch(url('/api/pages/a/views'), {
      method: 'OPTIONS',
      headers: { origin: 'https://blog.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');
    expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('content-type');
    const post = await fetch(url('/api/pages/a/views'), { method: 'POST', headers: { origin: 'https://blog.example' } });
    expect(post.status).toBe(200);
    expect(post.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('keeps CORS headers on error responses so browsers can read them', async () => {
    const response = await fetch(url('/api/pages/%01/views'), { method: 'POST', headers: { origin: 'https://blog.example' } });
    expect(response.status).toBe(400);
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('with a list, echoes listed origins and refuses others', async () => {
    await restart({ corsOrigins: ['https://blog.example'] });
    const allowed = await fetch(url('/api/pages/a/views'), { method: 'POST', headers: { origin: 'https://blog.example' } });
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://blog.example');
    expect(allowed.headers.get('vary')).toContain('Origin');

    const before = snapshot();
    const refusedPreflight = await fetch(url('/api/pages/a/views'), {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(refusedPreflight.status).toBe(403);
    expect(refusedPreflight.headers.get('access-control-allow-origin')).toBeNull();
    const refusedPost = await call('/api/pages/a/views', { method: 'POST', headers: { origin: 'https://evil.example' } });
    expect(refusedPost).toMatchObject({ status: 403, body: { error: { code: 'forbidden_origin' } } });
    expect(snapshot()).toEqual(before);

    const read = await fetch(url('/api/pages/a'), { headers: { origin: 'https://evil.example' } });
    expect(read.status).toBe(200);
    expect(read.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('with a list, still allows the same origin (the node’s own page)', async () => {
    await restart({ corsOrigins: ['https://blog.example'] });
    const response = await fetch(url('/api/pages/a/views'), { method: 'POST', headers: { origin: h.server.url } });
    expect(response.status).toBe(200);
  });

  it('does not add CORS headers outside the API', async () => {
    const response = await fetch(url('/healthz'), { headers: { origin: 'https://blog.example' } });
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
  });
});
