import { describe, expect, it } from 'vitest';
import type { PageName } from '../../src/ids.js';
import { MemoryDisk, MemoryStore, openMemoryStore } from '../../src/store/memory-store.js';
import { runStoreContract, type StoreHarness } from './store-contract.js';

function memoryHarness(): StoreHarness {
  const disk = new MemoryDisk();
  return {
    open: (options) => openMemoryStore(disk, { ...options, analytics: options?.analytics ?? false }),
    snapshotDatabase: async () => disk.snapshotDatabase(),
    restoreDatabase: async (snapshot) => disk.restoreDatabase(snapshot as ReturnType<MemoryDisk['snapshotDatabase']>),
    deleteIdentityFile: async () => disk.deleteIdentityFile(),
    writeIdentityFile: async (identity) => disk.writeIdentityFile(identity),
    makeDatabaseTooNew: async () => {
      disk.database.schemaVersion = 99;
    },
    cleanup: async () => {},
  };
}

runStoreContract('MemoryStore', async () => memoryHarness());

describe('MemoryStore', () => {
  it('is deterministic given the random source', async () => {
    const seeded = () => {
      let n = 0;
      return (size: number) => Uint8Array.from({ length: size }, () => n++ & 0xff);
    };
    const a = MemoryStore.open(new MemoryDisk(), { random: seeded() });
    const b = MemoryStore.open(new MemoryDisk(), { random: seeded() });
    expect(a.replicaId).toBe(b.replicaId);
    await Promise.all([a.increment([{ page: 'p' as PageName, by: 1 }]), b.increment([{ page: 'p' as PageName, by: 1 }])]);
    expect(a.digest()).toBe(b.digest());
    await a.close();
    await b.close();
  });
});
