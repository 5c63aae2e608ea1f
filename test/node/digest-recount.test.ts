/**
 * The digest after an unclean stop (issue 14): the digest row is written a moment after each
 * commit (DIGEST_STORE_DELAY_MS), so a kill -9 right after writes leaves it NULL. The next start
 * must not scan every slot before it serves (the cost migration 0003 removed): a real node on a
 * database of many pages is killed right after a batch, restarts ready with the recount running
 * in the background (its log says so, and that no scan ran at open), takes writes meanwhile, and
 * ends with the digest a fresh scan of the file gives.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { PageName } from '../../src/ids.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import { eventually } from '../helpers/eventually.js';
import { incrementBatch } from '../helpers/http-client.js';
import { realNodes, TEST_ADMIN_TOKEN } from '../helpers/spawn-node.js';

/** Pages of the database: some 50 recount slices, so the recount spans many loop turns. */
const PAGES = 50_000;

const { nodes, dirs } = realNodes();

async function digestOf(url: string): Promise<string> {
  const response = await fetch(`${url}/api/cluster`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
  return ((await response.json()) as { digest: string }).digest;
}

function storedDigest(path: string): string | null {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare('SELECT digest FROM store_stats WHERE id = 1').pluck().get() as string | null;
  } finally {
    db.close();
  }
}

/** The digest from scratch: the row forgotten, a store opened with the scan at open. */
async function freshDigest(path: string): Promise<string> {
  const db = new Database(path);
  db.prepare('UPDATE store_stats SET digest = NULL WHERE id = 1').run();
  db.close();
  const store = await openSqliteStore({ path, digestRecount: 'at-open' });
  try {
    return store.digest();
  } finally {
    await store.close();
  }
}

const messages = (logs: ReadonlyArray<Record<string, unknown>>): string[] => logs.map((l) => String(l.msg));

describe('the digest after kill -9', () => {
  it('is recounted in the background while the node serves, not scanned before it starts, and equals a fresh scan', async () => {
    const dir = await dirs.create('recount-');
    const path = join(dir, 'c.db');
    const built = await openSqliteStore({ path });
    await built.increment(Array.from({ length: PAGES }, (_, i) => ({ page: `/p/${i}` as PageName, by: 1 + (i % 5) })));
    await built.close();

    const env = { DATABASE_PATH: path };
    const first = await nodes.start({ env });
    await incrementBatch(first, Array.from({ length: 100 }, (_, i) => ({ page: `/p/${i}`, by: 3 })));
    first.signal('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    // Killed within the delay: the row says "unknown".
    expect(storedDigest(path)).toBeNull();

    const second = await nodes.start({ env });
    const ready = await fetch(`${second.url}/readyz`);
    expect(ready.status).toBe(200);
    // Writes while the recount may still run: they must end up in the digest too.
    await incrementBatch(second, Array.from({ length: 100 }, (_, i) => ({ page: `/p/${PAGES - 1 - i}`, by: 2 })));
    expect(messages(second.logs)).toContain('digest sum not stored (a new database, an unclean stop or a restore): recounting it in the background while serving');
    expect(messages(second.logs)).not.toContain('digest sum scanned from every slot and stored');
    await eventually(() => expect(messages(second.logs)).toContain('digest sum recounted in the background and stored'), { timeoutMs: 30_000 });
    const recounted = second.logs.find((l) => l.msg === 'digest sum recounted in the background and stored') as { rows: number };
    expect(recounted.rows).toBeGreaterThanOrEqual(PAGES);
    const shown = await digestOf(second.url);
    expect(shown).toMatch(/^[0-9a-f]{32}$/);
    // Stored by the recount itself (no clean stop needed).
    await eventually(() => expect(storedDigest(path)).toBe(shown));

    second.signal('SIGTERM');
    expect((await second.exited).code).toBe(0);
    expect(await freshDigest(path)).toBe(shown);
  });
});
