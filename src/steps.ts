/**
 * Work in steps: a generator that yields between small pieces of work (each tens of µs at most)
 * and returns its result. A synchronous caller drains it in one piece (`runSteps`); a caller that
 * must not hold the event loop (a spread commit, a large request body) lets the loop turn between
 * slices of it. The pieces and their order are the same either way: one body of code for both.
 */
export type Steps<T> = Generator<void, T, void>;

/** Runs every step at once and returns the result. */
export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const next = steps.next();
    if (next.done === true) return next.value;
  }
}
