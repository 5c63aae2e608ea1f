/**
 * When another writer of a backup path counts as gone (check-writer-command.ts): five sync
 * intervals of silence, never less than a minute (Litestream shows `end` in whole seconds). The
 * real processes are in test/deploy/backup-writer.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { staleAfterMs, syncIntervalMs, WRITER_STALE_MIN_MS } from '../../src/recovery/check-writer-command.js';

describe('a writer taken for gone', () => {
  it('reads LITESTREAM_SYNC_INTERVAL as run.sh accepts it, 10s when unset', () => {
    expect(syncIntervalMs('100ms')).toBe(100);
    expect(syncIntervalMs('10s')).toBe(10_000);
    expect(syncIntervalMs('2m')).toBe(120_000);
    expect(syncIntervalMs('1h')).toBe(3_600_000);
    expect(syncIntervalMs(undefined)).toBe(10_000);
  });

  it('is silent for five sync intervals, and at least a minute', () => {
    expect(staleAfterMs(100)).toBe(WRITER_STALE_MIN_MS);
    expect(staleAfterMs(10_000)).toBe(60_000);
    expect(staleAfterMs(60_000)).toBe(300_000);
  });
});
