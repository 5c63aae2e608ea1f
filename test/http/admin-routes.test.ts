/**
 * The admin routes through the app (real SQLite store): the token check comes first and a refused
 * or bad request changes nothing; each route resets what it names.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PageName } from '../../src/ids.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite-store.js';
import { tokenSet } from '../../src/tokens.js';
import { serveApp } from '../helpers/app.js';
import type { TestServer } from '../helpers/http-server.js';
import { TempDirs } from '../helpers/temp-dir.js';

const ADMIN_TOKEN = 'admin-token-for-the-app-test';
const dirs = new TempDirs();
let store: SqliteStore;
let server: TestServer;

async function start(adminTokens: readonly string[]): Promise<void> {
  store = await openSqliteStore({ path: join(await dirs.create('admin-'), 'counters.db') });
  server = await serveApp(store, { adminTokens: tokenSet(adminTokens) });
}

beforeEach(async () => {
  await start([ADMIN_TOKEN]);
  await store.increment([
    { page: 'p' as PageName, by: 4 },
    { page: 'a/1' as PageName, by: 1 },
    { page: 'a/2' as PageName, by: 2 },
    { page: 'b' as PageName, by: 3 },
  ]);
});

afterEach(async () => {
  await server.close();
  await store.close();
  await dirs.removeAll();
});

async function call(method: string, path: string, options: { token?: string; body?: string } = {}): Promise<{ status: number; body: { error?: { code: string } } & Record<string, unknown> }> {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${server.url}${path}`, { method, headers, ...(options.body === undefined ? {} : { body: options.body }) });
  return { status: response.status, body: (await response.json()) as { error?: { code: string } } & Record<string, unknown> };
}

const state = () => ({ digest: store.digest(), seq: store.localSeq() });

describe('admin routes', () => {
  it('refuse a missing, malformed or wrong token with a stable code and change nothing', async () => {
    const before = state();
    for (const [token, status, code] of [
      [undefined, 401, 'admin_token_required'],
      ['short', 403, 'admin_token_refused'],
      ['x'.repeat(300), 403, 'admin_token_refused'],
      [`${ADMIN_TOKEN}x`, 403, 'admin_token_refused'],
    ] as const) {
      for (const [method, path, body] of [
        ['POST', '/api/admin/pages/p/reset', undefined],
        ['DELETE', '/api/admin/pages/p', undefined],
        ['POST', '/api/admin/delete-prefix', '{"prefix":"a/"}'],
      ] as const) {
        const answer = await call(method, path, { ...(token === undefined ? {} : { token }), ...(body === undefined ? {} : { body }) });
        expect(answer.status).toBe(status);
        expect(answer.body.error?.code).toBe(code);
      }
    }
    expect(state()).toEqual(before);
  });

  it('refuse everything when no admin token is configured', async () => {
    await server.close();
    await store.close();
    await start([]);
    await store.increment([{ page: 'p' as PageName, by: 4 }]);
    expect(await call('POST', '/api/admin/pages/p/reset', { token: ADMIN_TOKEN })).toMatchObject({ status: 403, body: { error: { code: 'admin_token_refused' } } });
    expect(store.count('p' as PageName)).toBe(4);
  });

  it('refuse bad input with a 400 and change nothing', async () => {
    const before = state();
    for (const [method, path, body] of [
      ['POST', '/api/admin/pages/%E0%A4%A/reset', undefined],
      ['DELETE', '/api/admin/pages/a%00b', undefined],
      ['POST', '/api/admin/delete-prefix', '{"prefix":""}'],
      ['POST', '/api/admin/delete-prefix', '{"prefix":7}'],
      ['POST', '/api/admin/delete-prefix', '{}'],
      ['POST', '/api/admin/delete-prefix', '[1]'],
      ['POST', '/api/admin/delete-prefix', '{"prefix":'],
    ] as const) {
      const answer = await call(method, path, { token: ADMIN_TOKEN, ...(body === undefined ? {} : { body }) });
      expect(answer.status, `${method} ${path} ${body ?? ''}`).toBe(400);
    }
    expect(state()).toEqual(before);
  });

  it('reset, delete and delete by prefix', async () => {
    expect(await call('POST', '/api/admin/pages/p/reset', { token: ADMIN_TOKEN })).toEqual({ status: 200, body: { page: 'p', count: 0, epoch: 1 } });
    expect(store.count('p' as PageName)).toBe(0);
    expect(await call('DELETE', '/api/admin/pages/b', { token: ADMIN_TOKEN })).toEqual({ status: 200, body: { page: 'b', deleted: true, epoch: 1 } });
    expect(await call('POST', '/api/admin/delete-prefix', { token: ADMIN_TOKEN, body: '{"prefix":"a/"}' })).toEqual({ status: 200, body: { prefix: 'a/', deleted: 2 } });
    expect(store.listPages({ limit: 10 })).toEqual([]);
    // Deleting again deletes nothing new under the prefix (they are at 0 already).
    expect(await call('POST', '/api/admin/delete-prefix', { token: ADMIN_TOKEN, body: '{"prefix":"a/"}' })).toEqual({ status: 200, body: { prefix: 'a/', deleted: 0 } });
  });
});
