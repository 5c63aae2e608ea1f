/**
 * Time as a dependency: the replicator, the live feed and discovery read the clock and schedule
 * through this, so tests can drive every loop by hand (a manual clock) instead of sleeping.
 *
 * `now()` is monotonic (performance.now): every interval, timeout, backoff and coalescing decision
 * uses it, so a wall clock stepped back an hour no longer stops live feeds or heartbeats for an
 * hour (issue 14). Wall time is only for what people read: `wallTime(t)` turns a `now()` reading
 * into milliseconds since the epoch for a timestamp shown in /api/cluster or a feed message.
 */
export type TimerHandle = { readonly __timer: true };

export interface Timers {
  /** Monotonic milliseconds (arbitrary origin): for intervals and deadlines only. */
  now(): number;
  /** The wall-clock time (ms since the epoch) of the `now()` reading `monotonic`, for display. */
  wallTime(monotonic: number): number;
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /** Lets other work run (I/O, other peers) in the middle of a long job. */
  yield(): Promise<void>;
}

export const realTimers: Timers = {
  now: () => performance.now(),
  // The process's start on the wall clock plus the monotonic reading: stable for a given reading.
  wallTime: (monotonic) => performance.timeOrigin + monotonic,
  setTimeout: (callback, ms) => setTimeout(callback, ms) as unknown as TimerHandle,
  clearTimeout: (handle) => clearTimeout(handle as unknown as NodeJS.Timeout),
  yield: () => new Promise((resolve) => setImmediate(resolve)),
};
