import { describe, expect, it } from 'vitest';
import { percentile, seededRandom, summarize } from '../../bench/stats.js';
import { KnobError, parseKnobs } from '../../bench/knobs.js';

describe('bench statistics', () => {
  it('takes nearest-rank percentiles of measured values', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 99)).toBe(99);
    expect(percentile(values, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
    expect(Number.isNaN(percentile([], 50))).toBe(true);
  });

  it('summarises unsorted input without changing it', () => {
    const input = [5, 1, 4, 2, 3];
    const summary = summarize(input);
    expect(summary).toMatchObject({ count: 5, p50: 3, max: 5, mean: 3 });
    expect(input).toEqual([5, 1, 4, 2, 3]);
  });

  it('repeats the same sequence for the same seed', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const first = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(first);
    for (const x of first) expect(x >= 0 && x < 1).toBe(true);
    expect(seededRandom(43)()).not.toBe(first[0]);
  });
});

describe('bench knobs', () => {
  it('uses quick defaults, lets flags beat the environment', () => {
    const knobs = parseKnobs(['--quick', '--nodes', '5', '--rates=100,200'], { BENCH_NODES: '4', BENCH_PAGES: '10' });
    expect(knobs.quick).toBe(true);
    expect(knobs.nodes).toBe(5);
    expect(knobs.rates).toEqual([100, 200]);
    expect(knobs.pages).toBe(10);
    expect(knobs.rateDurationMs).toBeLessThan(parseKnobs([], {}).rateDurationMs);
  });

  it('warms up by default, shorter with --quick, and can measure from cold', () => {
    expect(parseKnobs([], {}).warmupMs).toBe(5000);
    expect(parseKnobs(['--quick'], {}).warmupMs).toBe(1000);
    expect(parseKnobs(['--warmup-ms', '0'], {}).warmupMs).toBe(0);
    expect(parseKnobs([], { BENCH_WARMUP_MS: '250' }).warmupMs).toBe(250);
    expect(() => parseKnobs(['--warmup-ms', '-1'], {})).toThrow(/--warmup-ms/);
  });

  it('refuses unknown flags, bad numbers and unknown phases', () => {
    expect(() => parseKnobs(['--nope'], {})).toThrow(KnobError);
    expect(() => parseKnobs(['--nodes', '1'], {})).toThrow(/--nodes/);
    expect(() => parseKnobs(['--phases', 'latency,warp'], {})).toThrow(/warp/);
    expect(() => parseKnobs(['--rates'], {})).toThrow(/needs a value/);
  });
});
