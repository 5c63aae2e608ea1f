/** Identity: created, kept or minted at open; minted mid-run by a merge that proves a step back in time, or on request. */
import { describe, expect, it } from 'vitest';
import type { ReplicaId } from '../../../src/ids.js';
import { type ContractContext, counterRandom, page, rejection, replica } from './harness.js';

export function identityContract(ctx: ContractContext): void {
  const { open } = ctx;

  describe('identity', () => {
    it('is created on a new database and kept across a clean restart', async () => {
      const first = await open();
      expect(first.identity.outcome).toBe('created');
      const id = first.replicaId;
      await first.increment([{ page: page('p'), by: 2 }]);
      await first.close();
      const second = await open();
      expect(second.identity).toMatchObject({ outcome: 'kept', replicaId: id });
      expect(second.identity.epoch).toBe(first.identity.epoch + 1);
      expect(second.count(page('p'))).toBe(2);
      expect(second.localSeq()).toBe(1);
      await second.increment([{ page: page('p'), by: 1 }]);
      expect(second.localSeq()).toBe(2);
    });

    it('is minted after a crash (no clean-stop record); queued increments are lost, committed ones stay', async () => {
      const first = await open();
      await first.increment([{ page: page('p'), by: 2 }]);
      const lost = first.increment([{ page: page('p'), by: 100 }]);
      first.kill();
      expect((await rejection(lost)).code).toBe('shutting_down');
      // close() after a crash is a no-op: it must not write a clean-stop record either.
      await first.close();
      const second = await open();
      expect(second.identity).toMatchObject({ outcome: 'minted', previous: first.replicaId });
      expect(second.identity.reason).toMatch(/did not stop cleanly/);
      expect(second.identity.epoch).toBe(first.identity.epoch + 1);
      // Every committed count stays, under the old id, with its version-vector entry.
      expect(second.count(page('p'))).toBe(2);
      expect(second.pageSlots(page('p'))).toEqual([{ page: 'p', replica: first.replicaId, count: 2, seq: 1 }]);
      expect(second.versionVector().get(first.replicaId)).toBe(1);
      expect(second.localSeq()).toBe(0);
      expect(await second.increment([{ page: page('p'), by: 1 }])).toEqual([{ page: 'p', count: 3 }]);
      expect(second.localSeq()).toBe(1);
      // A clean stop after that keeps the new id.
      await second.close();
      const third = await open();
      expect(third.identity).toMatchObject({ outcome: 'kept', replicaId: second.replicaId });
      expect(third.count(page('p'))).toBe(3);
    });

    it('is minted after a crash that follows a mid-run mint (the new id is written as running)', async () => {
      const first = await open();
      const rotated = first.rotateIdentity('a peer said so');
      await first.increment([{ page: page('p'), by: 1 }]);
      first.kill();
      const second = await open();
      expect(second.identity).toMatchObject({ outcome: 'minted', previous: rotated.replicaId });
      expect(second.identity.reason).toMatch(/did not stop cleanly/);
      expect(second.count(page('p'))).toBe(1);
    });

    it('is minted when a copy of the database taken mid-run is restored, and counts again under the new id', async () => {
      const first = await open();
      const old = first.replicaId;
      await first.increment([{ page: page('p'), by: 1 }]);
      await first.increment([{ page: page('p'), by: 2 }, { page: page('q'), by: 5 }]);
      // Same run, same epoch: only the seq tells this copy from the database that stops.
      const copy = await ctx.harness().snapshotDatabase();
      await first.increment([{ page: page('p'), by: 4 }]);
      await first.close();
      await ctx.harness().restoreDatabase(copy);

      const second = await open();
      expect(second.identity).toMatchObject({ outcome: 'minted', previous: old });
      expect(second.identity.reason).toMatch(/database is at seq 2 but the node stopped at seq 3/);
      expect(second.replicaId).not.toBe(old);
      // Everything in the copy is there.
      expect(second.count(page('p'))).toBe(3);
      expect(second.count(page('q'))).toBe(5);
      expect(second.versionVector().get(old)).toBe(2);
      expect(second.localSeq()).toBe(0);
      expect(await second.increment([{ page: page('p'), by: 10 }])).toEqual([{ page: 'p', count: 13 }]);
      expect(second.pageSlots(page('p'))).toContainEqual({ page: 'p', replica: second.replicaId, count: 10, seq: 1 });
      // Peers hold the old id's later commit (p = 7 at seq 3): it merges in and the new
      // increments are not swallowed by it, as they would be under the old id.
      const result = second.merge([{ page: page('p'), replica: old, count: 7, seq: 3 }], [{ replica: old, after: 2, upTo: 3 }]);
      expect(result.identityChanged).toBeUndefined();
      expect(second.count(page('p'))).toBe(17);
      expect(second.versionVector().get(old)).toBe(3);
    });

    it('is kept when a copy taken after the last commit (same seq) is restored', async () => {
      const first = await open();
      await first.increment([{ page: page('p'), by: 1 }]);
      await first.increment([{ page: page('p'), by: 2 }]);
      const copy = await ctx.harness().snapshotDatabase();
      await first.close();
      await ctx.harness().restoreDatabase(copy);
      const second = await open();
      expect(second.identity).toMatchObject({ outcome: 'kept', replicaId: first.replicaId });
      expect(second.count(page('p'))).toBe(3);
      expect(second.localSeq()).toBe(2);
      expect(await second.increment([{ page: page('p'), by: 1 }])).toEqual([{ page: 'p', count: 4 }]);
      expect(second.localSeq()).toBe(3);
    });

    it('is minted when the identity file is missing, holds another id, or the database is an older copy', async () => {
      const ids = new Set<ReplicaId>();
      let store = await open();
      ids.add(store.replicaId);
      await store.increment([{ page: page('p'), by: 1 }]);
      await store.close();

      await ctx.harness().deleteIdentityFile();
      store = await open();
      expect(store.identity).toMatchObject({ outcome: 'minted', previous: [...ids][0] });
      expect(store.identity.reason).toMatch(/missing/);
      ids.add(store.replicaId);
      await store.increment([{ page: page('p'), by: 1 }]);
      await store.close();

      await ctx.harness().writeIdentityFile({ replicaId: replica('abc'), epoch: store.identity.epoch });
      store = await open();
      expect(store.identity.outcome).toBe('minted');
      expect(store.identity.reason).toMatch(/holds replica/);
      ids.add(store.replicaId);
      await store.increment([{ page: page('p'), by: 1 }]);
      await store.close();

      const stale = await ctx.harness().snapshotDatabase();
      store = await open();
      expect(store.identity.outcome).toBe('kept');
      await store.increment([{ page: page('p'), by: 10 }]);
      await store.close();
      await ctx.harness().restoreDatabase(stale);
      store = await open();
      expect(store.identity.outcome).toBe('minted');
      expect(store.identity.reason).toMatch(/behind/);
      ids.add(store.replicaId);
      // The stale copy lost the +10 (peers would heal it); the new id counts from seq 1.
      expect(store.count(page('p'))).toBe(3);
      expect(store.localSeq()).toBe(0);
      expect(await store.increment([{ page: page('p'), by: 5 }])).toEqual([{ page: 'p', count: 8 }]);
      expect(store.localSeq()).toBe(1);

      expect(ids.size).toBe(4);
      const slots = store.pageSlots(page('p'));
      expect(new Set(slots.map((slot) => slot.replica))).toEqual(ids);
      expect(slots.find((slot) => slot.replica === store.replicaId)).toMatchObject({ count: 5, seq: 1 });
      // Old ids keep their version-vector entries.
      const vv = store.versionVector();
      for (const id of ids) expect(vv.get(id)).toBe(1);

      // And the minted id is kept from then on.
      await store.close();
      const again = await open();
      expect(again.identity).toMatchObject({ outcome: 'kept', replicaId: store.replicaId });
    });
  });

  describe('rotation', () => {
    it('mints when a merge brings slots of its own id beyond its local seq', async () => {
      const store = await open();
      await store.increment([{ page: page('p'), by: 2 }]);
      const old = store.replicaId;
      // Its own slot at a seq it has committed is just an echo.
      expect(store.merge([{ page: page('p'), replica: old, count: 2, seq: 1 }], []).identityChanged).toBeUndefined();
      const result = store.merge([{ page: page('p'), replica: old, count: 7, seq: 4 }], [{ replica: old, after: 0, upTo: 4 }]);
      expect(result.identityChanged).toMatchObject({ outcome: 'minted', previous: old });
      expect(store.replicaId).toBe(result.identityChanged?.replicaId);
      expect(store.replicaId).not.toBe(old);
      expect(store.identity).toEqual(result.identityChanged);
      expect(store.count(page('p'))).toBe(7);
      expect(store.versionVector().get(old)).toBe(4);
      expect(store.localSeq()).toBe(0);
      expect(await store.increment([{ page: page('p'), by: 1 }])).toEqual([{ page: 'p', count: 8 }]);
      expect(store.localSeq()).toBe(1);
      await store.close();
      const reopened = await open();
      expect(reopened.identity).toMatchObject({ outcome: 'kept', replicaId: store.replicaId });
    });

    it('mints when a range of its own id goes beyond its local seq, and on request', async () => {
      const store = await open();
      const old = store.replicaId;
      const result = store.merge([], [{ replica: old, after: 0, upTo: 1 }]);
      expect(result.identityChanged?.previous).toBe(old);
      const middle = store.replicaId;
      const rotated = store.rotateIdentity('a peer said so');
      expect(rotated).toMatchObject({ outcome: 'minted', reason: 'a peer said so', previous: middle });
      expect(new Set([old, middle, rotated.replicaId]).size).toBe(3);
    });

    it('mints distinct ids even when the random source is deterministic', async () => {
      const store = await open(ctx.harness(), { random: counterRandom(1) });
      const a = store.replicaId;
      const b = store.rotateIdentity('test').replicaId;
      expect(a).not.toBe(b);
    });
  });
}
