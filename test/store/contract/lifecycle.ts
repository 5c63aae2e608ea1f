/** Lifecycle: schema too new, close commits what is queued and then refuses. */
import { describe, expect, it } from 'vitest';
import { MEMORY_SCHEMA_VERSION } from '../../../src/store/memory-disk.js';
import { loadMigrations } from '../../../src/store/migrate.js';
import { type ContractContext, page, rejection, thrown } from './harness.js';

export function lifecycleContract(ctx: ContractContext): void {
  const { open } = ctx;

  describe('lifecycle', () => {
    it('refuses a database newer than the code', async () => {
      const store = await open();
      await store.close();
      await ctx.harness().makeDatabaseTooNew();
      const error = await rejection(ctx.harness().open());
      expect(error.code).toBe('database_too_new');
      expect(error.message).toMatch(/version 99\b/);
      expect(error.message).toMatch(new RegExp(`migration ${MEMORY_SCHEMA_VERSION}\\b`));
    });

    it('models the schema version of the newest migration (the twin and the SQLite store agree)', () => {
      expect(MEMORY_SCHEMA_VERSION).toBe(loadMigrations().length);
    });

    it('commits what is queued on close, then refuses increments', async () => {
      const store = await open();
      const queued = store.increment([{ page: page('p'), by: 3 }]);
      const closing = store.close();
      expect(store.close()).toBe(closing);
      await closing;
      expect(await queued).toEqual([{ page: 'p', count: 3 }]);
      expect((await rejection(store.increment([{ page: page('p'), by: 1 }]))).code).toBe('shutting_down');
      expect(thrown(() => store.count(page('p'))).code).toBe('shutting_down');
      const reopened = await open();
      expect(reopened.count(page('p'))).toBe(3);
      expect(reopened.localSeq()).toBe(1);
    });
  });
}
