import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VirtualTimers } from '../src/virtual-timers.js';

describe('VirtualTimers', () => {
  it('fires timers in due order, ties in the order set, and skips cleared ones', () => {
    const timers = new VirtualTimers();
    const fired: string[] = [];
    timers.setTimeout(() => fired.push('b'), 20);
    timers.setTimeout(() => fired.push('a'), 10);
    const cleared = timers.setTimeout(() => fired.push('never'), 15);
    timers.setTimeout(() => fired.push('c'), 20);
    timers.clearTimeout(cleared);
    expect(timers.pending()).toBe(3);
    while (timers.runDue(100));
    expect(fired).toEqual(['a', 'b', 'c']);
    expect(timers.now()).toBe(100);
    expect(timers.pending()).toBe(0);
  });

  it('fires a timer set for the current instant by a callback in the same instant', () => {
    const timers = new VirtualTimers();
    const fired: number[] = [];
    timers.setTimeout(() => {
      fired.push(timers.now());
      timers.setTimeout(() => fired.push(timers.now()), 0);
    }, 5);
    expect(timers.runDue(10)).toBe(true);
    expect(fired).toEqual([5, 5]);
    expect(timers.runDue(10)).toBe(false);
    expect(timers.now()).toBe(10);
  });

  it('matches a sorted reference for any schedule of sets and clears', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.boolean()), { maxLength: 200 }), (plan) => {
        const timers = new VirtualTimers();
        const fired: number[] = [];
        const expected: Array<{ at: number; order: number }> = [];
        plan.forEach(([delay, clear], order) => {
          const handle = timers.setTimeout(() => fired.push(order), delay);
          if (clear) timers.clearTimeout(handle);
          else expected.push({ at: delay, order });
        });
        while (timers.runDue(1_000));
        expected.sort((a, b) => a.at - b.at || a.order - b.order);
        expect(fired).toEqual(expected.map((e) => e.order));
      }),
    );
  });
});
