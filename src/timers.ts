/**
 * Time as a dependency: the replicator and the live feed read the clock and schedule through this,
 * so tests can drive every loop by hand (a manual clock) instead of sleeping.
 */
export type TimerHandle = { readonly __timer: true };

export interface Timers {
  now(): number;
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /** Lets other work run (I/O, other peers) in the middle of a long job. */
  yield(): Promise<void>;
}

export const realTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms) as unknown as TimerHandle,
  clearTimeout: (handle) => clearTimeout(handle as unknown as NodeJS.Timeout),
  yield: () => new Promise((resolve) => setImmediate(resolve)),
};
