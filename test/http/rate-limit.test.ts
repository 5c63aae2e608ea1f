import { describe, expect, it } from 'vitest';
import { ClientRateLimiter, SHARED_KEY } from '../../src/http/rate-limit.js';

/** Records the library holds, read through its public dump(). */
function records(limiter: ClientRateLimiter): string[] {
  const inner = (limiter as unknown as { limiter: { dump(): { storage: Array<{ key: string }> } } }).limiter;
  return inner.dump().storage.map((r) => r.key);
}

describe('ClientRateLimiter', () => {
  it('allows a burst per client, then refuses with the seconds to wait', async () => {
    const limiter = new ClientRateLimiter({ perSecond: 2, burst: 4 });
    for (let i = 0; i < 4; i++) expect(await limiter.take('a')).toEqual({ allowed: true });
    const refused = await limiter.take('a');
    expect(refused.allowed).toBe(false);
    // The window is burst / perSecond = 2 s.
    expect(refused.allowed === false && refused.retryAfterS).toBeGreaterThanOrEqual(1);
    expect(refused.allowed === false && refused.retryAfterS).toBeLessThanOrEqual(2);
    // Another client has its own allowance.
    expect(await limiter.take('b')).toEqual({ allowed: true });
  });

  it('tracks at most maxTrackedClients: clients past the cap share one allowance', async () => {
    const limiter = new ClientRateLimiter({ perSecond: 1, burst: 5, maxTrackedClients: 100 });
    let allowed = 0;
    for (let i = 0; i < 1_000; i++) if ((await limiter.take(`10.0.${i >> 8}.${i & 255}`)).allowed) allowed++;
    // 100 tracked clients with a view each, then the shared key's burst of 5.
    expect(allowed).toBe(105);
    expect(limiter.tracked()).toBe(100);
    const held = records(limiter);
    expect(held.length).toBe(101);
    expect(held).toContain(SHARED_KEY);
    // A tracked client keeps its own allowance.
    expect(await limiter.take('10.0.0.7')).toEqual({ allowed: true });
  });

  it('frees the cap once the flood’s records are older than a window', async () => {
    let now = 0;
    const limiter = new ClientRateLimiter({ perSecond: 10, burst: 10, maxTrackedClients: 10, now: () => now });
    for (let i = 0; i < 10; i++) await limiter.take(`a${i}`);
    expect(limiter.tracked()).toBe(10);
    now += 1_000; // one window (10 / 10 per s): the first window's records may still live
    expect(limiter.tracked()).toBe(10);
    now += 1_000; // two windows: they have all expired
    expect(limiter.tracked()).toBe(0);
  });
});
