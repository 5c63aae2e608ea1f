/** Group merge: one transaction per turn, or at once for a small item arriving alone on an idle queue. */
import { describe, expect, it } from 'vitest';
import type { Slot } from '../../src/crdt/g-counter.js';
import type { PageName, ReplicaId } from '../../src/ids.js';
import { noLog } from '../../src/log.js';
import { MergeQueue, type MergeQueueOptions } from '../../src/replication/merge-queue.js';
import { realTimers } from '../../src/timers.js';

const replica = 'a1'.padStart(32, '0') as ReplicaId;
const slot = (page: string, count: number): Slot => ({ page: page as PageName, replica, count, seq: count });
const source = { close: () => {} };

/** A queue over a stub store that records the size of each merge; `writesHeld` stands for a spread commit. */
function queue(options: Partial<MergeQueueOptions> = {}, writesHeld?: () => Promise<void> | undefined): { merges: MergeQueue; calls: number[]; now: { t: number } } {
  const calls: number[] = [];
  const now = { t: 0 };
  const merges = new MergeQueue({
    store: {
      merge: (slots) => {
        calls.push(slots.length);
        return { changed: [], advanced: [] };
      },
      writeBlocked: () => undefined,
      ...(writesHeld === undefined ? {} : { writesHeld }),
    },
    timers: { ...realTimers, now: () => now.t },
    log: noLog,
    metrics: { merged: () => {}, pageSaturated: () => {}, mergeDropped: () => {} },
    identityChanged: () => {},
    ...options,
  });
  return { merges, calls, now };
}

describe('MergeQueue', () => {
  it('merges what arrives in one turn in one transaction, on the next turn', async () => {
    const { merges, calls } = queue();
    merges.enqueue(source, [slot('a', 1)], []);
    merges.enqueue(source, [slot('b', 1)], []);
    expect(calls).toEqual([]);
    await realTimers.yield();
    await realTimers.yield();
    expect(calls).toEqual([2]);
  });

  it('with atOnceAfterIdleMs: merges a lone item at once, groups what follows within the idle time, and goes at once again after it', async () => {
    const { merges, calls, now } = queue({ atOnceAfterIdleMs: 1 });
    const applied: string[] = [];
    merges.enqueue(source, [slot('a', 1)], [], () => applied.push('a'));
    expect(calls).toEqual([1]);
    expect(applied).toEqual(['a']);
    merges.enqueue(source, [slot('b', 1)], []);
    merges.enqueue(source, [slot('c', 1)], []);
    expect(calls).toEqual([1]);
    await realTimers.yield();
    await realTimers.yield();
    expect(calls).toEqual([1, 2]);
    now.t = 5;
    merges.enqueue(source, [slot('d', 1)], []);
    expect(calls).toEqual([1, 2, 1]);
  });

  it('with atOnceAfterIdleMs: an item over one transaction still goes in bounded turns', async () => {
    const { merges, calls } = queue({ atOnceAfterIdleMs: 1, maxBatchSlots: 2 });
    merges.enqueue(source, [slot('a', 1), slot('b', 1), slot('c', 1)], []);
    expect(calls).toEqual([]);
    for (let i = 0; i < 4; i++) await realTimers.yield();
    expect(calls).toEqual([2, 1]);
  });

  it('stop() while the store holds writes drops what waits: nothing is merged after it (the store is closing)', async () => {
    let release = (): void => undefined;
    let held: Promise<void> | undefined = new Promise<void>((resolve) => (release = resolve));
    const { merges, calls } = queue({ timers: realTimers }, () => held);
    merges.enqueue(source, [slot('a', 1)], []);
    for (let i = 0; i < 3; i++) await realTimers.yield();
    expect(calls).toEqual([]);
    merges.stop();
    held = undefined;
    release();
    for (let i = 0; i < 4; i++) await realTimers.yield();
    expect(calls).toEqual([]);
  });
});
