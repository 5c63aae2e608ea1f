import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { estimate, HLL_MAX_RANK, HLL_REGISTERS, mergeRegisters, registerOf } from '../../src/crdt/hyperloglog.js';

function visitorHash(i: number): Buffer {
  return createHash('sha256').update(`visitor ${i}`).digest();
}

/** 64 well-mixed bits per visitor (splitmix-like, on two 32-bit halves): cheaper than SHA-256 a million times. */
function mixedHash(i: number, out: Uint8Array): Uint8Array {
  const view = new DataView(out.buffer);
  let a = Math.imul(i ^ 0x9e3779b9, 0x85ebca6b);
  a = Math.imul(a ^ (a >>> 13), 0xc2b2ae35) ^ (a >>> 16);
  let b = Math.imul((i + 0x632be59b) ^ (a >>> 7), 0x27d4eb2f);
  b = Math.imul(b ^ (b >>> 15), 0x165667b1) ^ (b >>> 13);
  a = Math.imul(a ^ (b >>> 11), 0x9e3779b1) ^ (a >>> 15);
  view.setUint32(0, a >>> 0);
  view.setUint32(4, b >>> 0);
  return out;
}

describe('HyperLogLog', () => {
  it('picks a register and a rank in range from any hash', () => {
    expect(registerOf(new Uint8Array(8))).toEqual({ index: 0, rank: HLL_MAX_RANK });
    expect(registerOf(new Uint8Array(8).fill(0xff))).toEqual({ index: HLL_REGISTERS - 1, rank: 1 });
  });

  it('estimates 1,000,000 visitors split over 5 replicas within 2%, merged in any order; merging again changes nothing', () => {
    const replicas = Array.from({ length: 5 }, () => new Map<number, number>());
    const total = 1_000_000;
    const bytes = new Uint8Array(8);
    for (let i = 0; i < total; i++) {
      const { index, rank } = registerOf(mixedHash(i, bytes));
      const sketch = replicas[i % 5] as Map<number, number>;
      if (rank > (sketch.get(index) ?? 0)) sketch.set(index, rank);
    }
    const orders = [
      [0, 1, 2, 3, 4],
      [4, 3, 2, 1, 0],
      [2, 0, 4, 1, 3],
    ];
    const results = orders.map((order) => {
      const merged = new Map<number, number>();
      for (const r of order) mergeRegisters(merged, replicas[r] as Map<number, number>);
      return merged;
    });
    const value = estimate(results[0] as Map<number, number>);
    expect(Math.abs(value - total) / total).toBeLessThan(0.02);
    for (const merged of results) expect([...merged].sort(([a], [b]) => a - b)).toEqual([...(results[0] as Map<number, number>)].sort(([a], [b]) => a - b));
    const again = new Map(results[0]);
    for (const sketch of replicas) expect(mergeRegisters(again, sketch)).toBe(0);
    expect(estimate(again)).toBe(value);
  });

  it('counts small sets nearly exactly (linear counting)', () => {
    const sketch = new Map<number, number>();
    for (let i = 0; i < 100; i++) {
      const { index, rank } = registerOf(visitorHash(i));
      if (rank > (sketch.get(index) ?? 0)) sketch.set(index, rank);
    }
    expect(Math.abs(estimate(sketch) - 100)).toBeLessThanOrEqual(1);
  });
});
