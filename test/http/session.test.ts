/**
 * Counter-Session through the app: two apps over two stores that share the cluster's token key
 * stand for two nodes that have not synced; a client carrying its token from one to the other
 * reads its own writes and never a lower count. Bad tokens are 400 bad_session and count nothing.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { catchUpGate, isCountPath } from '../../src/http/catch-up-gate.js';
import { sessionKey, SessionTokens, MAX_SESSION_TOKEN_CHARS } from '../../src/http/session-token.js';
import type { PageName } from '../../src/ids.js';
import { ViewPolicy } from '../../src/http/view-policy.js';
import { tokenSet } from '../../src/tokens.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite-store.js';
import { serveApp } from '../helpers/app.js';
import type { TestServer } from '../helpers/http-server.js';
import { TempDirs } from '../helpers/temp-dir.js';

const dirs = new TempDirs();
const open: Array<{ server: TestServer; store: SqliteStore }> = [];
const WRITE_TOKEN = 'session-test-write-token-0123456789abcdef';
const KEY = sessionKey('a-cluster-secret-of-at-least-32-characters', 'test');

async function node(key = KEY): Promise<{ url: string; store: SqliteStore }> {
  const dir = await dirs.create('session-');
  const store = await openSqliteStore({ path: join(dir, 'counters.db') });
  const server = await serveApp(store, {
    sessions: new SessionTokens(key),
    views: new ViewPolicy({ store, writeTokens: tokenSet([WRITE_TOKEN]), rateLimitPerIp: 0 }),
  });
  open.push({ server, store });
  return { url: server.url, store };
}

afterEach(async () => {
  for (const { server, store } of open.splice(0)) {
    await server.close();
    await store.close();
  }
  await dirs.removeAll();
});

async function call(url: string, token?: string, init: RequestInit = {}) {
  // As a writer: Node's fetch would be taken for a crawler, and batches need a write token.
  const headers = { authorization: `Bearer ${WRITE_TOKEN}`, ...(token !== undefined ? { 'counter-session': token } : {}), ...(init.headers as Record<string, string>) };
  const res = await fetch(url, { ...init, headers });
  return { status: res.status, token: res.headers.get('counter-session') ?? undefined, body: (await res.json()) as Record<string, unknown> };
}

describe('Counter-Session', () => {
  it('carries read-your-writes and monotonic reads to a node that has not synced, for singles, batches and lists', async () => {
    const a = await node();
    const b = await node();
    await a.store.increment([{ page: 'home' as PageName, by: 40 }]);
    const first = await call(`${a.url}/api/pages/home/views`, undefined, { method: 'POST' });
    expect(first.body.count).toBe(41);
    expect(first.token!.length).toBeLessThanOrEqual(MAX_SESSION_TOKEN_CHARS);
    // B has nothing yet: with the token the answer still includes everything seen at A.
    expect((await call(`${b.url}/api/pages/home`)).body.count).toBe(0);
    const read = await call(`${b.url}/api/pages/home`, first.token);
    expect(read.body.count).toBe(41);
    // B's own increment adds to what was seen, never replaces it.
    const inc = await call(`${b.url}/api/pages/home/views`, read.token, { method: 'POST' });
    expect(inc.body.count).toBe(42);
    // Back at A (which lacks B's view): still 42 with the token.
    expect((await call(`${a.url}/api/pages/home`, inc.token)).body.count).toBe(42);
    // The list honours the token too, and hands it back.
    const list = await call(`${a.url}/api/pages`, inc.token);
    expect(list.body.pages).toEqual([{ page: 'home', count: 42 }]);
    expect(list.token).toBeDefined();
    // Batches carry it the same way.
    const batch = await call(`${b.url}/api/views`, inc.token, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ views: [{ page: 'about' }, { page: 'home' }] }),
    });
    expect(batch.status).toBe(200);
    expect(batch.body.pages).toEqual([
      { page: 'about', count: 1 },
      { page: 'home', count: 43 },
    ]);
    expect((await call(`${a.url}/api/pages/about`, batch.token)).body.count).toBe(1);
    expect((await call(`${a.url}/api/pages/home`, batch.token)).body.count).toBe(43);
  });

  it('refuses a bad, edited or foreign token with 400 bad_session and counts nothing', async () => {
    const a = await node();
    const foreign = await node(sessionKey('another-cluster-secret-of-32-characters!', 'test'));
    const theirs = (await call(`${foreign.url}/api/pages/home/views`, undefined, { method: 'POST' })).token!;
    for (const token of [theirs, 'garbage', `${theirs.slice(0, -2)}AA`]) {
      const res = await call(`${a.url}/api/pages/home/views`, token, { method: 'POST' });
      expect(res.status).toBe(400);
      expect((res.body.error as { code: string }).code).toBe('bad_session');
      expect((await call(`${a.url}/api/pages/home`, token)).status).toBe(400);
    }
    expect(a.store.count('home' as PageName)).toBe(0);
  });

  it('refuses (503 reset_not_seen, counts nothing) an increment whose session saw a reset this node has not received', async () => {
    const a = await node();
    const b = await node();
    await a.store.increment([{ page: 'home' as PageName, by: 5 }]);
    await b.store.increment([{ page: 'home' as PageName, by: 5 }]);
    a.store.reset(['home' as PageName]);
    const after = await call(`${a.url}/api/pages/home/views`, undefined, { method: 'POST' });
    expect(after.body.count).toBe(1);
    // At b (reset not received) the view would land in the ended epoch and be dropped later.
    for (const init of [
      { method: 'POST' },
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ by: 2 }) },
    ]) {
      const refused = await call(`${b.url}/api/pages/home/views`, after.token, init);
      expect(refused.status).toBe(503);
      expect((refused.body.error as { code: string }).code).toBe('reset_not_seen');
    }
    const batch = await call(`${b.url}/api/views`, after.token, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ views: [{ page: 'about' }, { page: 'home' }] }),
    });
    expect(batch.status).toBe(503);
    expect(b.store.count('home' as PageName)).toBe(5);
    expect(b.store.count('about' as PageName)).toBe(0);
    // Reads still answer what the session saw; a session without the page counts as before.
    expect((await call(`${b.url}/api/pages/home`, after.token)).body.count).toBe(1);
    expect((await call(`${b.url}/api/pages/home/views`, undefined, { method: 'POST' })).status).toBe(200);
  });

  it('accepts only the canonical spelling of a token', async () => {
    const a = await node();
    const { token } = await call(`${a.url}/api/pages/home/views`, undefined, { method: 'POST' });
    expect((await call(`${a.url}/api/pages/home`, token)).status).toBe(200);
    // Node's base64url decoder ignores a trailing partial character: "tokenA" decodes like "token".
    const padded = await call(`${a.url}/api/pages/home`, `${token}A`);
    expect(padded.status).toBe(400);
    expect((padded.body.error as { code: string }).code).toBe('bad_session');
  });

  it('is readable and sendable from other sites (CORS expose and preflight)', async () => {
    const a = await node();
    const post = await fetch(`${a.url}/api/pages/home/views`, { method: 'POST', headers: { origin: 'https://blog.example' } });
    expect(post.headers.get('access-control-expose-headers')).toContain('Counter-Session');
    const preflight = await fetch(`${a.url}/api/pages/home/views`, {
      method: 'OPTIONS',
      headers: { origin: 'https://blog.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'counter-session' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-headers')).toContain('Counter-Session');
  });
});

describe('catch-up gate', () => {
  it('holds count requests until the catch-up ends, answers others at once, and caps the waiters', async () => {
    let open = false;
    let release: () => void = () => {};
    const done = new Promise<void>((resolve) => (release = resolve));
    const gate = { get ready() { return open; }, wait: () => done };
    const middleware = catchUpGate(gate, 1);
    const ctx = (path: string) => ({ path, method: 'GET' }) as never;
    const order: string[] = [];
    const waiting = middleware(ctx('/api/pages/home'), async () => void order.push('count served'));
    await middleware(ctx('/healthz'), async () => void order.push('health served'));
    await expect(middleware(ctx('/api/pages/x'), async () => {})).rejects.toMatchObject({ code: 'catching_up', status: 503 });
    expect(order).toEqual(['health served']);
    open = true;
    release();
    await waiting;
    expect(order).toEqual(['health served', 'count served']);
  });

  it('holds admin changes too: a reset on a stale copy would pick an epoch the cluster passed', () => {
    for (const path of ['/api/admin/pages/home/reset', '/api/admin/delete-prefix', '/api/pages/home', '/api/views', '/pages/home', '/']) {
      expect(isCountPath(path), path).toBe(true);
    }
    for (const path of ['/healthz', '/readyz', '/api/cluster', '/metrics', '/assets/live.js']) expect(isCountPath(path), path).toBe(false);
  });
});
