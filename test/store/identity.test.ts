import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ReplicaId } from '../../src/ids.js';
import { decideIdentity, IDENTITY_SPARE_BYTES, identityFilePath, identitySparePath, parseIdentity, readIdentityFile, writeIdentityFile } from '../../src/store/identity.js';
import { MemoryDisk, MemoryStore } from '../../src/store/memory-store.js';

const A = 'a'.repeat(32) as ReplicaId;
const B = 'b'.repeat(32) as ReplicaId;

describe('decideIdentity', () => {
  const db = (epoch: number, localSeq: number, replicaId: ReplicaId = A) => ({ replicaId, epoch, localSeq });

  it('creates on a new database, whatever the file says', () => {
    expect(decideIdentity(undefined, undefined)).toEqual({ action: 'create', epoch: 1 });
    expect(decideIdentity(undefined, { replicaId: A, epoch: 7 })).toEqual({ action: 'create', epoch: 8 });
    expect(decideIdentity(undefined, { replicaId: A, epoch: 7, stoppedAtSeq: 3 })).toEqual({ action: 'create', epoch: 8 });
    expect(decideIdentity(undefined, { unreadable: 'not JSON' })).toEqual({ action: 'create', epoch: 1 });
  });

  it('keeps after a clean stop at the database seq, or a crash between the two writes at the next start', () => {
    expect(decideIdentity(db(3, 5), { replicaId: A, epoch: 3, stoppedAtSeq: 5 })).toEqual({ action: 'keep', epoch: 4 });
    expect(decideIdentity(db(3, 0), { replicaId: A, epoch: 3, stoppedAtSeq: 0 })).toEqual({ action: 'keep', epoch: 4 });
    // The database's epoch committed, the file still holds the previous run's stop record.
    expect(decideIdentity(db(4, 5), { replicaId: A, epoch: 3, stoppedAtSeq: 5 })).toEqual({ action: 'keep', epoch: 5 });
  });

  it('mints when the file is missing, unreadable, names another id, or is ahead of the database', () => {
    expect(decideIdentity(db(3, 5), undefined)).toMatchObject({ action: 'mint', epoch: 4, reason: 'identity file missing' });
    expect(decideIdentity(db(3, 5), { unreadable: 'not JSON' })).toMatchObject({ action: 'mint', reason: expect.stringMatching(/unreadable: not JSON/) });
    expect(decideIdentity(db(3, 5), { replicaId: B, epoch: 9, stoppedAtSeq: 5 })).toMatchObject({
      action: 'mint',
      epoch: 10,
      reason: expect.stringMatching(/holds replica b+/),
    });
    expect(decideIdentity(db(3, 5), { replicaId: A, epoch: 5, stoppedAtSeq: 5 })).toMatchObject({ action: 'mint', epoch: 6, reason: expect.stringMatching(/epoch 3 is behind/) });
  });

  it('mints when the node did not stop cleanly, even with matching epochs', () => {
    const decision = decideIdentity(db(3, 5), { replicaId: A, epoch: 3 });
    expect(decision).toEqual({
      action: 'mint',
      epoch: 4,
      reason: 'the node did not stop cleanly (no clean-stop record): its last commits may not be durable',
    });
    expect(decideIdentity(db(4, 5), { replicaId: A, epoch: 3 })).toMatchObject({ action: 'mint', epoch: 5 });
  });

  it('mints when the database seq is not where the node stopped: a copy from the same run, or lost commits', () => {
    // Behind: a copy taken mid-run, or commits lost to a power loss.
    expect(decideIdentity(db(3, 4), { replicaId: A, epoch: 3, stoppedAtSeq: 9 })).toMatchObject({
      action: 'mint',
      epoch: 4,
      reason: expect.stringMatching(/^database is at seq 4 but the node stopped at seq 9: the database is another copy/),
    });
    // Ahead is no better: it is not the database that stopped here.
    expect(decideIdentity(db(3, 10), { replicaId: A, epoch: 3, stoppedAtSeq: 9 })).toMatchObject({ action: 'mint', reason: expect.stringMatching(/at seq 10 but .* seq 9/) });
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

  it('sits beside the database and round-trips, leaving one pre-filled spare for the next write', () => {
    const path = identityFilePath(join(dir, 'counters.db'));
    expect(path).toBe(join(dir, 'counters.db-identity.json'));
    expect(readIdentityFile(path)).toBeUndefined();
    writeIdentityFile(path, { replicaId: A, epoch: 1 });
    writeIdentityFile(path, { replicaId: A, epoch: 2 });
    expect(readIdentityFile(path)).toEqual({ replicaId: A, epoch: 2 });
    writeIdentityFile(path, { replicaId: A, epoch: 2, stoppedAtSeq: 17 });
    expect(readIdentityFile(path)).toEqual({ replicaId: A, epoch: 2, stoppedAtSeq: 17 });
    // Back to running: the stop record is gone, not left behind as undefined or stale.
    writeIdentityFile(path, { replicaId: A, epoch: 3 });
    expect(readFileSync(path, 'utf8')).toBe(`{"replicaId":"${A}","epoch":3}\n`);
    expect(readdirSync(dir).sort()).toEqual(['counters.db-identity.json', 'counters.db-identity.json.spare']);
    expect(statSync(identitySparePath(path)).size).toBe(IDENTITY_SPARE_BYTES);
  });

  it('reports a damaged file as unreadable', () => {
    const path = join(dir, 'x-identity.json');
    writeFileSync(path, '{"replicaId": "aa');
    expect(readIdentityFile(path)).toEqual({ unreadable: 'not JSON' });
    expect(parseIdentity('{"replicaId": "xyz", "epoch": 1}')).toEqual({ unreadable: 'replicaId is not 32 hex characters' });
    expect(parseIdentity(`{"replicaId": "${A}", "epoch": -1}`)).toEqual({ unreadable: 'epoch is not a non-negative integer' });
    expect(parseIdentity('null')).toEqual({ unreadable: 'not an object' });
    expect(parseIdentity(`{"replicaId": "${A}", "epoch": 1, "stoppedAtSeq": "5"}`)).toEqual({ unreadable: 'stoppedAtSeq is not a non-negative integer' });
    expect(parseIdentity(`{"replicaId": "${A}", "epoch": 1, "stoppedAtSeq": 1.5}`)).toEqual({ unreadable: 'stoppedAtSeq is not a non-negative integer' });
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
