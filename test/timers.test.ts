/** The Timers seam: a monotonic now() for intervals, and wallTime() to show one of its readings. */
import { describe, expect, it } from 'vitest';
import { realTimers } from '../src/timers.js';

describe('realTimers', () => {
  it('reads the monotonic clock (performance.now), not the wall clock a step can move', () => {
    const before = performance.now();
    const now = realTimers.now();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(performance.now());
  });

  it('turns a monotonic reading into the wall time it stands for', () => {
    const reading = realTimers.now();
    const wallBefore = Date.now();
    const shown = realTimers.wallTime(reading);
    // The reading was taken before wallBefore, so it shows a wall time no later than now.
    expect(shown).toBeLessThanOrEqual(Date.now() + 1);
    expect(wallBefore - shown).toBeLessThan(1_000);
  });
});
