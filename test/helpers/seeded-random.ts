/**
 * A seeded pseudo-random source, so a simulated run — replica ids, nonces, backoff jitter —
 * replays exactly from the seed fast-check reports. The generator is the benchmark's mulberry32
 * (one implementation, tested in test/bench).
 */
import { seededRandom as mulberry32 } from '../../bench/stats.js';

export interface SeededRandom {
  /** A float in [0, 1). */
  next(): number;
  bytes(size: number): Uint8Array;
}

export function seededRandom(seed: number): SeededRandom {
  const next = mulberry32(seed);
  return {
    next,
    bytes(size) {
      const out = new Uint8Array(size);
      for (let i = 0; i < size; i++) out[i] = Math.floor(next() * 256);
      return out;
    },
  };
}
