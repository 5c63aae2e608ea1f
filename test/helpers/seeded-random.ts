/**
 * A seeded pseudo-random source (mulberry32), so a simulated run — replica ids, nonces, backoff
 * jitter — replays exactly from the seed fast-check reports.
 */
export interface SeededRandom {
  /** A float in [0, 1). */
  next(): number;
  bytes(size: number): Uint8Array;
}

export function seededRandom(seed: number): SeededRandom {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    bytes(size) {
      const out = new Uint8Array(size);
      for (let i = 0; i < size; i++) out[i] = Math.floor(next() * 256);
      return out;
    },
  };
}
