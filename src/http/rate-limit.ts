/**
 * Anonymous views per client address, on rate-limiter-flexible's in-memory limiter: a client
 * may count `burst` views per window of `burst / perSecond` seconds, the window starting at its
 * first view (the library's fixed window). Over a long run that is `perSecond` views/s; within
 * any `t` seconds at most `burst × (1 + ⌈t / window⌉)`.
 *
 * Memory: the library keeps one record (and one timer) per client seen within a window and never
 * evicts early, so a flood of distinct addresses would grow it without bound. Here at most
 * `maxTrackedClients` records live at once: every record lives one window, so the records alive
 * are at most the ones created in the current and the previous window. Past the cap, a client
 * not tracked yet is limited under one shared key instead of its own: tracked clients keep their
 * own limits, new ones share one until the flood's records expire.
 */
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';

/** Clients tracked at once per node (each record is a few hundred bytes with its timer). */
export const MAX_TRACKED_CLIENTS = 50_000;
/** The key untracked clients share once MAX_TRACKED_CLIENTS is reached. */
export const SHARED_KEY = '(untracked clients)';

export type RateDecision = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterS: number };

const ALLOWED: RateDecision = Object.freeze({ allowed: true });

export interface RateLimitOptions {
  readonly perSecond: number;
  readonly burst: number;
  readonly maxTrackedClients?: number;
  /** Milliseconds, for the window accounting; the library's own clock is Date.now. */
  readonly now?: () => number;
}

export class ClientRateLimiter {
  private readonly limiter: RateLimiterMemory;
  private readonly windowMs: number;
  private readonly maxTracked: number;
  private readonly now: () => number;
  private windowStart: number;
  private createdNow = 0;
  private createdBefore = 0;

  constructor(options: RateLimitOptions) {
    if (!(options.perSecond > 0) || !(options.burst >= 1)) throw new RangeError('perSecond must be > 0 and burst ≥ 1');
    this.windowMs = (options.burst / options.perSecond) * 1000;
    this.limiter = new RateLimiterMemory({ points: options.burst, duration: this.windowMs / 1000, keyPrefix: 'views' });
    this.maxTracked = options.maxTrackedClients ?? MAX_TRACKED_CLIENTS;
    this.now = options.now ?? Date.now;
    this.windowStart = this.now();
  }

  /** Takes one view from `key`'s allowance. */
  async take(key: string): Promise<RateDecision> {
    let res: RateLimiterRes;
    try {
      res = await this.limiter.consume(key);
    } catch (error) {
      return refusal(error);
    }
    // A new record (a client not seen within its window): within the cap, or moved to the shared key.
    if (res.isFirstInDuration && !this.track()) {
      await this.limiter.delete(key);
      try {
        await this.limiter.consume(SHARED_KEY);
      } catch (error) {
        return refusal(error);
      }
    }
    return ALLOWED;
  }

  /** At least the number of client records alive now (what the memory bound is about). */
  tracked(): number {
    this.rotate();
    return this.createdNow + this.createdBefore;
  }

  private track(): boolean {
    if (this.tracked() >= this.maxTracked) return false;
    this.createdNow++;
    return true;
  }

  private rotate(): void {
    const now = this.now();
    const elapsed = now - this.windowStart;
    if (elapsed < this.windowMs) return;
    // Records of the window before the previous one are older than one window: expired.
    this.createdBefore = elapsed < 2 * this.windowMs ? this.createdNow : 0;
    this.createdNow = 0;
    this.windowStart = now;
  }
}

function refusal(error: unknown): RateDecision {
  if (!(error instanceof RateLimiterRes)) throw error;
  return { allowed: false, retryAfterS: Math.max(1, Math.ceil(error.msBeforeNext / 1000)) };
}
