/**
 * A manual clock for the replicator's `Timers`: nothing fires until the test advances time, so
 * heartbeats, anti-entropy and reconnect backoff run exactly when a test says so.
 */
import type { TimerHandle, Timers } from '../../src/timers.js';

interface Scheduled {
  readonly at: number;
  readonly order: number;
  readonly callback: () => void;
}

export class ManualTimers implements Timers {
  private time: number;
  private order = 0;
  private readonly scheduled = new Map<TimerHandle, Scheduled>();

  constructor(start = 1_700_000_000_000) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  /** The manual clock doubles as the wall clock (it starts at a realistic epoch time). */
  wallTime(monotonic: number): number {
    return monotonic;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const handle = { __timer: true } as TimerHandle;
    this.scheduled.set(handle, { at: this.time + Math.max(0, ms), order: this.order++, callback });
    return handle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.scheduled.delete(handle);
  }

  /** Long jobs yield through a resolved promise: the test's own awaits let them continue. */
  yield(): Promise<void> {
    return Promise.resolve();
  }

  /** Moves time forward by `ms`, firing every timer due on the way, in order. */
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      let next: [TimerHandle, Scheduled] | undefined;
      for (const entry of this.scheduled) {
        if (entry[1].at > until) continue;
        if (next === undefined || entry[1].at < next[1].at || (entry[1].at === next[1].at && entry[1].order < next[1].order)) next = entry;
      }
      if (next === undefined) break;
      this.scheduled.delete(next[0]);
      this.time = Math.max(this.time, next[1].at);
      next[1].callback();
    }
    this.time = until;
  }

  pending(): number {
    return this.scheduled.size;
  }
}
