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

    it('vectorEntry reads one entry, as versionVector() has it (0 for a replica never seen)', async () => {
      const store = await open();
      const r = replica('e6');
      expect(store.vectorEntry(r)).toBe(0);
      store.merge([], [{ replica: r, after: 0, upTo: 4 }]);
      expect(store.vectorEntry(r)).toBe(4);
      store.merge([{ page: page('p'), replica: r, count: 1, seq: 9 }], [{ replica: r, after: 6, upTo: 9 }]);
      expect(store.vectorEntry(r)).toBe(4);
      expect(store.vectorEntry(replica('e7'))).toBe(0);
      await store.increment([{ page: page('q'), by: 1 }]);
      expect(store.vectorEntry(store.replicaId)).toBe(store.localSeq());
      for (const [id, seq] of store.versionVector()) expect(store.vectorEntry(id)).toBe(seq);
    });
  });
}
