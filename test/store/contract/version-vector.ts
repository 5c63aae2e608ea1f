/** The version vector: only a range starting at or below its entry advances it. */
import { describe, expect, it } from 'vitest';
import type { SeqRange } from '../../../src/crdt/version-vector.js';
import { type ContractContext, page, replica } from './harness.js';

export function versionVectorContract(ctx: ContractContext): void {
  const { open } = ctx;

  describe('version vector', () => {
    it('advances the version vector only over a range starting at or below its entry', async () => {
      const store = await open();
      const r = replica('e5');
      const range = (after: number, upTo: number): SeqRange => ({ replica: r, after, upTo });
      expect(store.merge([], [range(0, 3)]).advanced).toEqual([range(0, 3)]);
      expect(store.versionVector().get(r)).toBe(3);
      // A gap: (5, 7] after 3 leaves the entry where it is.
      expect(store.merge([{ page: page('p'), replica: r, count: 7, seq: 7 }], [range(5, 7)]).advanced).toEqual([]);
      expect(store.versionVector().get(r)).toBe(3);
      expect(store.count(page('p'))).toBe(7);
      // Nothing new: no move.
      expect(store.merge([], [range(0, 2)]).advanced).toEqual([]);
      expect(store.merge([], [range(2, 6)]).advanced).toEqual([range(2, 6)]);
      expect(store.versionVector().get(r)).toBe(6);
      // Ranges of one call apply in order.
      expect(store.merge([], [range(6, 8), range(8, 9), range(10, 12)]).advanced).toEqual([range(6, 8), range(8, 9)]);
      expect(store.versionVector().get(r)).toBe(9);
      expect(store.versionVector().get(store.replicaId) ?? 0).toBe(0);
    });
  });
}
