/**
 * Capped exponential backoff with "equal jitter": the delay for attempt n is drawn from
 * [d/2, d] where d = min(maxMs, baseMs · 2^n). Half the delay is guaranteed, so a flapping peer
 * is not hammered, and the random half spreads the redials of a whole cluster that lost the same
 * node at the same moment.
 */
export const RECONNECT_BASE_MS = 100;
export const RECONNECT_MAX_MS = 10_000;

export interface BackoffOptions {
  readonly baseMs: number;
  readonly maxMs: number;
}

/** `random` returns a float in [0, 1). */
export function backoffDelayMs(attempt: number, options: BackoffOptions, random: () => number): number {
  const exponent = Math.min(Math.max(attempt, 0), 30);
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** exponent);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
