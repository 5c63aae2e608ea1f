/**
 * What every part of the store contract shares: the harness a store implementation provides, the
 * context a part runs in (the test's harness, stores it opened, closed and cleaned up by the
 * suite), and small helpers.
 */
import { expect } from 'vitest';
import { AppError } from '../../../src/errors.js';
import type { PageName, RandomBytes, ReplicaId } from '../../../src/ids.js';
import type { IdentityRecord } from '../../../src/store/identity.js';
import type { Store } from '../../../src/store/store.js';

export type KillableStore = Store & { kill(): void };

export interface StoreHarness {
  /**
   * Opens (or reopens) the store at this harness's location. `analytics`: local views raise hour
   * and day buckets and visitor registers too (src/crdt/series.ts). Off unless asked: the parts
   * that list slots and digests by hand are about totals; series.ts turns it on.
   */
  open(options?: { random?: RandomBytes; analytics?: boolean }): Promise<KillableStore>;
  /**
   * A copy of the database as it is now: the store closed, or open and between commits (a copy
   * taken while the node runs).
   */
  snapshotDatabase(): Promise<unknown>;
  /** Puts a copy back in place of the database (store closed); the identity file stays. */
  restoreDatabase(snapshot: unknown): Promise<void>;
  deleteIdentityFile(): Promise<void>;
  writeIdentityFile(identity: IdentityRecord): Promise<void>;
  /** Marks the database as written by a newer schema than the code knows. */
  makeDatabaseTooNew(): Promise<void>;
  /** Releases everything (stores still open are closed by the suite first). */
  cleanup(): Promise<void>;
}

export const MAX = Number.MAX_SAFE_INTEGER;
export const page = (name: string) => name as PageName;
export const replica = (hex: string) => hex.padStart(32, '0') as ReplicaId;
export const utf8Order = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

export async function rejection(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error('expected a rejection');
}

export function thrown(fn: () => unknown): AppError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error('expected a throw');
}

/** A deterministic random source: a counter spread over the bytes. */
export function counterRandom(seed: number): RandomBytes {
  let next = seed;
  return (size) => {
    next += 1;
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) bytes[i] = (next * (i + 7) * 2654435761) >>> (i % 24);
    return bytes;
  };
}

/** What a part of the contract runs with; set up afresh before each test by runStoreContract. */
export interface ContractContext {
  /** A new, empty location (for properties that open their own stores and clean up after). */
  readonly createHarness: () => Promise<StoreHarness>;
  /** This test's location. */
  harness(): StoreHarness;
  /** Opens a store at `h` (default: this test's location); the suite closes it after the test. */
  open(h?: StoreHarness, options?: { random?: RandomBytes; analytics?: boolean }): Promise<KillableStore>;
  /** One more location for this test, cleaned up after it. */
  another(): Promise<StoreHarness>;
}
