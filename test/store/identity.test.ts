import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ReplicaId } from '../../src/ids.js';
import { decideIdentity, identityFilePath, parseIdentity, readIdentityFile, writeIdentityFile } from '../../src/store/identity.js';
import { MemoryDisk, MemoryStore } from '../../src/store/memory-store.js';

const A = 'a'.repeat(32) as ReplicaId;
const B = 'b'.repeat(32) as ReplicaId;

describe('decideIdentity', () => {
  it('creates on a new database, whatever the file says', () => {
    expect(decideIdentity(undefined, undefined)).toEqual({ action: 'create', epoch: 1 });
    expect(decideIdentity(undefined, { replicaId: A, epoch: 7 })).toEqual({ action: 'create', epoch: 8 });
    expect(decideIdentity(undefined, { unreadable: 'not JSON' })).toEqual({ action: 'create', epoch: 1 });
  });

  it('keeps when the file matches, or lags by a crash between the two writes', () => {
    expect(decideIdentity({ replicaId: A, epoch: 3 }, { replicaId: A, epoch: 3 })).toEqual({ action: 'keep', epoch: 4 });
    expect(decideIdentity({ replicaId: A, epoch: 4 }, { replicaId: A, epoch: 3 })).toEqual({ action: 'keep', epoch: 5 });
  });

  it('mints when the file is missing, unreadable, names another id, or is ahead of the database', () => {
    expect(decideIdentity({ replicaId: A, epoch: 3 }, undefined)).toMatchObject({ action: 'mint', epoch: 4, reason: 'identity file missing' });
    expect(decideIdentity({ replicaId: A, epoch: 3 }, { unreadable: 'not JSON' })).toMatchObject({ action: 'mint', reason: expect.stringMatching(/unreadable: not JSON/) });
    expect(decideIdentity({ replicaId: A, epoch: 3 }, { replicaId: B, epoch: 9 })).toMatchObject({ action: 'mint', epoch: 10, reason: expect.stringMatching(/holds replica b+/) });
    expect(decideIdentity({ replicaId: A, epoch: 3 }, { replicaId: A, epoch: 5 })).toMatchObject({ action: 'mint', epoch: 6, reason: expect.stringMatching(/epoch 3 is behind/) });
  });
});

describe('identity file', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'identity-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('sits beside the database and round-trips, leaving no temporary file', () => {
    const path = identityFilePath(join(dir, 'counters.db'));
    expect(path).toBe(join(dir, 'counters.db-identity.json'));
    expect(readIdentityFile(path)).toBeUndefined();
    writeIdentityFile(path, { replicaId: A, epoch: 1 });
    writeIdentityFile(path, { replicaId: A, epoch: 2 });
    expect(readIdentityFile(path)).toEqual({ replicaId: A, epoch: 2 });
    expect(readdirSync(dir)).toEqual(['counters.db-identity.json']);
  });

  it('reports a damaged file as unreadable', () => {
    const path = join(dir, 'x-identity.json');
    writeFileSync(path, '{"replicaId": "aa');
    expect(readIdentityFile(path)).toEqual({ unreadable: 'not JSON' });
    expect(parseIdentity('{"replicaId": "xyz", "epoch": 1}')).toEqual({ unreadable: 'replicaId is not 32 hex characters' });
    expect(parseIdentity(`{"replicaId": "${A}", "epoch": -1}`)).toEqual({ unreadable: 'epoch is not a non-negative integer' });
    expect(parseIdentity('null')).toEqual({ unreadable: 'not an object' });
    expect(existsSync(path)).toBe(true);
  });

  it('makes a store mint when it is damaged', async () => {
    const disk = new MemoryDisk();
    const first = MemoryStore.open(disk);
    await first.close();
    disk.identityFile = { unreadable: 'not JSON' };
    const second = MemoryStore.open(disk);
    expect(second.identity).toMatchObject({ outcome: 'minted', previous: first.replicaId });
    await second.close();
  });
});
