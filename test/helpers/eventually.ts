/**
 * Waiting for a condition instead of sleeping: `fn` is retried until it returns without throwing
 * (assertions inside it are fine), and its value is returned. Past the deadline the last error is
 * thrown, so the failure says what was still wrong.
 *
 *   await eventually(async () => expect(await count()).toBe(3), { timeoutMs: 5000 });
 */
export interface EventuallyOptions {
  /** Give up after this long. Default 10 s. */
  readonly timeoutMs?: number;
  /** Pause between attempts. Default 20 ms. */
  readonly intervalMs?: number;
}

export const EVENTUALLY_TIMEOUT_MS = 10_000;
export const EVENTUALLY_INTERVAL_MS = 20;

export async function eventually<T>(fn: () => T | Promise<T>, options: EventuallyOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? EVENTUALLY_TIMEOUT_MS;
  const intervalMs = options.intervalMs ?? EVENTUALLY_INTERVAL_MS;
  const deadline = Date.now() + timeoutMs;
  let attempts = 0;
  for (;;) {
    attempts++;
    try {
      return await fn();
    } catch (error) {
      if (Date.now() >= deadline) {
        const wrapped = new Error(`condition still failing after ${timeoutMs} ms (${attempts} attempts): ${(error as Error)?.message ?? String(error)}`, {
          cause: error,
        });
        throw wrapped;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
