/** The group-commit queue's bounds: refused past its cap, and flushed in commits of bounded size. */
import { describe, expect, it } from 'vitest';
import { isAppError } from '../../src/errors.js';
import type { PageName } from '../../src/ids.js';
import { GroupCommit, MAX_FLUSH_INCREMENTS, type PendingUnit } from '../../src/store/group-commit.js';
import type { Increment } from '../../src/store/store.js';

function views(n: number): Increment[] {
  return Array.from({ length: n }, (_, i) => ({ page: `p${i}` as PageName, by: 1 }));
}

/** A queue whose flush records the size of each commit and answers every unit. */
function recordingQueue(maxQueuedIncrements: number): { queue: GroupCommit; commits: number[] } {
  const commits: number[] = [];
  const queue = new GroupCommit(
    (units: PendingUnit[]) => {
      commits.push(units.reduce((sum, unit) => sum + unit.increments.length, 0));
      for (const unit of units) unit.resolve([]);
    },
    { maxQueuedIncrements },
  );
  return { queue, commits };
}

describe('GroupCommit bounds', () => {
  it('refuses a unit with overloaded past the queue cap, and takes units again once the queue drains', async () => {
    const { queue, commits } = recordingQueue(1_000);
    const accepted = [queue.enqueue(views(600)), queue.enqueue(views(400))];
    const refused = await queue.enqueue(views(1)).catch((error: unknown) => error);
    expect(isAppError(refused) && refused.code).toBe('overloaded');
    expect(isAppError(refused) && refused.status).toBe(503);
    await Promise.all(accepted);
    expect(commits).toEqual([1_000]);
    await queue.enqueue(views(1));
    expect(commits).toEqual([1_000, 1]);
  });

  it('takes one unit larger than the cap when the queue is empty (it could never fit otherwise)', async () => {
    const { queue, commits } = recordingQueue(10);
    await queue.enqueue(views(50));
    expect(commits).toEqual([50]);
  });

  it(`commits at most ${MAX_FLUSH_INCREMENTS} increments per transaction (whole units), the rest on the next turns`, async () => {
    const { queue, commits } = recordingQueue(1_000_000);
    const unit = 7_000;
    await Promise.all(Array.from({ length: 10 }, () => queue.enqueue(views(unit))));
    const perCommit = Math.floor(MAX_FLUSH_INCREMENTS / unit) * unit;
    expect(commits.reduce((a, b) => a + b, 0)).toBe(10 * unit);
    for (const size of commits) expect(size).toBeLessThanOrEqual(MAX_FLUSH_INCREMENTS);
    expect(commits[0]).toBe(perCommit);
  });

  it('flushNow commits everything queued, in bounded commits', () => {
    const { queue, commits } = recordingQueue(1_000_000);
    for (let i = 0; i < 5; i++) void queue.enqueue(views(MAX_FLUSH_INCREMENTS));
    queue.flushNow();
    expect(commits).toEqual(Array.from({ length: 5 }, () => MAX_FLUSH_INCREMENTS));
    expect(queue.pending).toBe(0);
  });
});

describe('GroupCommit with a flush spread over turns (a promise)', () => {
  it('starts no other flush, at once or on a turn, until the spread one settles; then commits what queued', async () => {
    const commits: number[] = [];
    let finish = (): void => undefined;
    const queue = new GroupCommit(
      (units: PendingUnit[], mode) => {
        commits.push(units.reduce((sum, unit) => sum + unit.increments.length, 0));
        if (commits.length === 1) {
          expect(mode).toBe('spread');
          return new Promise<void>((resolve) => {
            finish = () => {
              for (const unit of units) unit.resolve([]);
              resolve();
            };
          });
        }
        for (const unit of units) unit.resolve([]);
        return undefined;
      },
      { atOnceAfterIdleMs: 0 },
    );
    const first = queue.enqueue(views(100));
    expect(commits).toEqual([100]);
    const later = [queue.enqueue(views(1)), queue.enqueue(views(2))];
    for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    expect(commits).toEqual([100]);
    expect(() => queue.flushNow()).toThrow(/spread/);
    finish();
    await queue.idle();
    await Promise.all([first, ...later]);
    expect(commits).toEqual([100, 3]);
  });
});

describe('GroupCommit at once when idle (atOnceAfterIdleMs)', () => {
  function atOnceQueue(atOnceAfterIdleMs: number): { queue: GroupCommit; commits: number[] } {
    const commits: number[] = [];
    const queue = new GroupCommit(
      (units: PendingUnit[]) => {
        commits.push(units.reduce((sum, unit) => sum + unit.increments.length, 0));
        for (const unit of units) unit.resolve([]);
      },
      { atOnceAfterIdleMs },
    );
    return { queue, commits };
  }

  it('commits a unit that arrives alone inside enqueue(), and groups what arrives while commits are recent', async () => {
    // An idle time no test reaches: only the first unit (no commit before it) goes at once.
    const { queue, commits } = atOnceQueue(1e9);
    const first = queue.enqueue(views(1));
    expect(commits).toEqual([1]);
    const grouped = [queue.enqueue(views(2)), queue.enqueue(views(3))];
    expect(commits).toEqual([1]);
    await Promise.all([first, ...grouped]);
    expect(commits).toEqual([1, 5]);
  });

  it('with no idle time asked, every unit that finds the queue empty commits at once', async () => {
    const { queue, commits } = atOnceQueue(0);
    await queue.enqueue(views(1));
    await queue.enqueue(views(1));
    expect(commits).toEqual([1, 1]);
    // Two in one tick: the first at once; the second finds the queue empty too, but a turn takes
    // one commit at once: it waits for the next turn.
    const both = [queue.enqueue(views(2)), queue.enqueue(views(3))];
    expect(commits).toEqual([1, 1, 2]);
    await Promise.all(both);
    expect(commits).toEqual([1, 1, 2, 3]);
  });

  it('commits at once at most once per loop turn, however many units complete in it one after the other', async () => {
    // One I/O phase that completes many request bodies: each enqueue finds the queue empty again.
    const { queue, commits } = atOnceQueue(0);
    const units: Promise<unknown>[] = [];
    for (let i = 0; i < 5; i++) {
      units.push(queue.enqueue(views(1)));
      if (i === 0) expect(commits).toEqual([1]);
    }
    expect(commits).toEqual([1]);
    await Promise.all(units);
    expect(commits.reduce((a, b) => a + b, 0)).toBe(5);
  });

  it('without the option, every unit waits for the turn (the contract: one tick, one commit)', async () => {
    const { queue, commits } = recordingQueue(1_000);
    const pending = [queue.enqueue(views(1)), queue.enqueue(views(1))];
    expect(commits).toEqual([]);
    await Promise.all(pending);
    expect(commits).toEqual([2]);
  });
});
