/**
 * `Idempotency-Key` on `POST /api/views` (issue 14): a retried batch counts once. Through the
 * app on a real SQLite store; the bounds and the forgetting of failed counts on the class itself.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IdempotencyKeys, MAX_IDEMPOTENCY_KEY_LENGTH } from '../../src/http/idempotency.js';
import { ViewPolicy } from '../../src/http/view-policy.js';
import { AppError, isAppError } from '../../src/errors.js';
import type { PageName } from '../../src/ids.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite-store.js';
import type { Increment } from '../../src/store/store.js';
import { tokenSet } from '../../src/tokens.js';
import { serveApp } from '../helpers/app.js';
import type { TestServer } from '../helpers/http-server.js';
import { TempDirs } from '../helpers/temp-dir.js';

const WRITE_TOKEN = 'write-token-for-the-idempotency-test';
const dirs = new TempDirs();
let store: SqliteStore;
let server: TestServer;

beforeEach(async () => {
  store = await openSqliteStore({ path: join(await dirs.create('idempotency-'), 'counters.db') });
  server = await serveApp(store, { maxBodyBytes: 1024 * 1024, views: new ViewPolicy({ store, writeTokens: tokenSet([WRITE_TOKEN]) }) });
});

afterEach(async () => {
  await server.close();
  await store.close();
  await dirs.removeAll();
});

async function batch(views: readonly { page: string; by?: number }[], key?: string): Promise<{ status: number; replayed: string | null; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { authorization: `Bearer ${WRITE_TOKEN}`, 'content-type': 'application/json' };
  if (key !== undefined) headers['idempotency-key'] = key;
  const response = await fetch(`${server.url}/api/views`, { method: 'POST', headers, body: JSON.stringify({ views }) });
  return { status: response.status, replayed: response.headers.get('idempotency-replayed'), body: (await response.json()) as Record<string, unknown> };
}

describe('POST /api/views with Idempotency-Key', () => {
  const views = [{ page: 'home' }, { page: 'about', by: 2 }, { page: 'home' }];

  it('answers a retry with the first answer and counts it once', async () => {
    const first = await batch(views, 'retry-1');
    expect(first.status).toBe(200);
    expect(first.replayed).toBeNull();
    const seq = store.localSeq();
    const again = await batch(views, 'retry-1');
    expect(again.status).toBe(200);
    expect(again.replayed).toBe('true');
    expect(again.body.pages).toEqual(first.body.pages);
    expect(store.count('home' as PageName)).toBe(2);
    expect(store.count('about' as PageName)).toBe(2);
    expect(store.localSeq()).toBe(seq);
    // Without a key, or with another, it counts as usual.
    expect((await batch(views, 'retry-2')).status).toBe(200);
    expect((await batch(views)).status).toBe(200);
    expect(store.count('home' as PageName)).toBe(6);
  });

  it('counts two requests with one key sent at once once: the second waits for the first commit', async () => {
    const [a, b] = await Promise.all([batch(views, 'twice-at-once'), batch(views, 'twice-at-once')]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(a.body.pages).toEqual(b.body.pages);
    expect([a.replayed, b.replayed].sort()).toEqual(['true', null].sort());
    expect(store.count('home' as PageName)).toBe(2);
  });

  it('refuses the key with other views (422) and counts nothing of them', async () => {
    expect((await batch(views, 'reused')).status).toBe(200);
    const other = await batch([{ page: 'elsewhere' }], 'reused');
    expect(other.status).toBe(422);
    expect((other.body.error as { code: string }).code).toBe('idempotency_key_reused');
    expect(store.count('elsewhere' as PageName)).toBe(0);
  });

  it('refuses a malformed key with 400 before reading the body, counting nothing', async () => {
    for (const key of ['x'.repeat(MAX_IDEMPOTENCY_KEY_LENGTH + 1), 'with space', 'é']) {
      const response = await fetch(`${server.url}/api/views`, {
        method: 'POST',
        headers: { authorization: `Bearer ${WRITE_TOKEN}`, 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify({ views }),
      }).catch((error: unknown) => error);
      // Node's fetch refuses a non-ByteString header itself: nothing was sent then.
      if (response instanceof Response) expect(response.status).toBe(400);
    }
    expect(store.count('home' as PageName)).toBe(0);
  });
});

describe('IdempotencyKeys', () => {
  const views: Increment[] = [{ page: 'p' as PageName, by: 1 }];
  const counter = () => {
    let calls = 0;
    return { count: async () => [{ page: 'p' as PageName, count: ++calls }], calls: () => calls };
  };

  it('forgets a key whose count failed, so its retry counts (and whoever waited on it gets the failure)', async () => {
    const keys = new IdempotencyKeys();
    const failing = keys.run('k', views, () => Promise.reject(new AppError('overloaded', 'full')));
    const waiting = keys.run('k', views, () => Promise.reject(new Error('never called')));
    for (const outcome of await Promise.allSettled([failing, waiting])) expect(outcome.status === 'rejected' && isAppError(outcome.reason) && outcome.reason.code).toBe('overloaded');
    const { count, calls } = counter();
    expect((await keys.run('k', views, count)).replayed).toBe(false);
    expect(calls()).toBe(1);
  });

  it('holds at most its bound of keys and of bytes, the least recently used dropped first', async () => {
    const keys = new IdempotencyKeys(2, 1_000_000);
    const { count, calls } = counter();
    await keys.run('a', views, count);
    await keys.run('b', views, count);
    expect((await keys.run('a', views, count)).replayed).toBe(true);
    await keys.run('c', views, count);
    expect(keys.size).toBe(2);
    // 'b' was the least recently used: it counts again; 'a' does not.
    expect((await keys.run('b', views, count)).replayed).toBe(false);
    expect(calls()).toBe(4);
    const small = new IdempotencyKeys(100, 600);
    for (const key of ['x', 'y', 'z']) await small.run(key, views, count);
    expect(small.size).toBe(2);
  });
});
