/**
 * The store contract: one suite that SqliteStore and MemoryStore both pass. The pure CRDT of
 * src/crdt is the oracle. A harness owns one persistent location (a database and the identity
 * file beside it) and can reopen it, crash the store, restore a stale copy of the database (taken
 * while stopped or while running), and tamper with the identity file.
 */
import { afterEach, beforeEach, describe } from 'vitest';
import type { RandomBytes } from '../../src/ids.js';
import { digestContract } from './contract/digest.js';
import type { ContractContext, KillableStore, StoreHarness } from './contract/harness.js';
import { identityContract } from './contract/identity.js';
import { incrementContract } from './contract/increments.js';
import { lifecycleContract } from './contract/lifecycle.js';
import { mergeContract } from './contract/merge.js';
import { paginationContract } from './contract/pagination.js';
import { resetContract } from './contract/resets.js';
import { seriesContract } from './contract/series.js';
import { versionVectorContract } from './contract/version-vector.js';

export type { KillableStore, StoreHarness } from './contract/harness.js';

/** Runs every part of the contract (one file per concern in contract/) against one implementation. */
export function runStoreContract(name: string, createHarness: () => Promise<StoreHarness>): void {
  describe(`Store contract: ${name}`, () => {
    let harness: StoreHarness;
    let extraHarnesses: StoreHarness[];
    let opened: KillableStore[];

    async function open(h: StoreHarness = harness, options?: { random?: RandomBytes; analytics?: boolean }): Promise<KillableStore> {
      const store = await h.open(options);
      opened.push(store);
      return store;
    }

    async function another(): Promise<StoreHarness> {
      const h = await createHarness();
      extraHarnesses.push(h);
      return h;
    }

    beforeEach(async () => {
      harness = await createHarness();
      extraHarnesses = [];
      opened = [];
    });

    afterEach(async () => {
      for (const store of opened) await store.close();
      for (const h of [harness, ...extraHarnesses]) await h.cleanup();
    });

    const ctx: ContractContext = { createHarness, harness: () => harness, open, another };
    incrementContract(ctx);
    mergeContract(ctx);
    versionVectorContract(ctx);
    paginationContract(ctx);
    digestContract(ctx);
    resetContract(ctx);
    identityContract(ctx);
    lifecycleContract(ctx);
    seriesContract(ctx);
  });
}
