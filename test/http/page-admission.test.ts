/**
 * PageAdmission.exists reads the page's slots (the store's slot cache) instead of its total: it
 * must say what `count(page) > 0` says through every way a page's count changes — a local view,
 * a peer's slot, a local reset, a peer's reset — on both stores, the SQLite one on a real file.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PageAdmission } from '../../src/http/page-admission.js';
import { newReplicaId, type PageName } from '../../src/ids.js';
import { openMemoryStore } from '../../src/store/memory-store.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import { TempDirs } from '../helpers/temp-dir.js';

const dirs = new TempDirs();
afterEach(() => dirs.removeAll());

const stores: Record<string, () => Promise<Store>> = {
  sqlite: async () => openSqliteStore({ path: join(await dirs.create('admission-'), 'counters.db') }),
  memory: () => openMemoryStore(),
};

describe.each(Object.keys(stores))('PageAdmission.exists on the %s store', (kind) => {
  it('is count(page) > 0 after views, a peer slot, a local reset and a peer reset', async () => {
    const store = await (stores[kind] as () => Promise<Store>)();
    try {
      const admission = new PageAdmission({ store, maxPages: 100, pattern: undefined });
      const page = 'home' as PageName;
      const peer = newReplicaId();
      const agrees = (): void => expect(admission.exists(page)).toBe(store.count(page) > 0);
      agrees();
      expect(admission.exists(page)).toBe(false);
      await store.increment([{ page, by: 2 }]);
      agrees();
      expect(admission.exists(page)).toBe(true);
      store.reset([page]);
      agrees();
      expect(admission.exists(page)).toBe(false);
      // A peer's view in the new epoch (1): the page exists again.
      store.merge([{ page, replica: peer, count: 1, seq: 1, epoch: 1 }], [{ replica: peer, after: 0, upTo: 1 }]);
      agrees();
      expect(admission.exists(page)).toBe(true);
      // A peer's reset to epoch 2 (its tombstone): gone, though the replaced slots were above zero.
      store.merge([{ page, replica: peer, count: 0, seq: 2, epoch: 2 }], [{ replica: peer, after: 1, upTo: 2 }]);
      agrees();
      expect(admission.exists(page)).toBe(false);
      await store.increment([{ page, by: 1 }]);
      agrees();
      expect(admission.exists(page)).toBe(true);
    } finally {
      await store.close();
    }
  });
});
