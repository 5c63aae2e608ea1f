import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HOUR_MS } from '../../src/crdt/series.js';
import type { PageName } from '../../src/ids.js';
import { openMemoryStore } from '../../src/store/memory-store.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import type { PageCount, Store } from '../../src/store/store.js';
import { compareUtf8 } from '../../src/utf8.js';
import { TempDirs } from '../helpers/temp-dir.js';

const dirs = new TempDirs();
afterEach(() => dirs.removeAll());

/** A small seeded PRNG (mulberry32), so a failure replays. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The top list by brute force: every page's hour buckets of the range summed, sorted. */
function bruteTop(store: Store, pages: readonly PageName[], fromHour: number, toHour: number, limit: number): PageCount[] {
  const counts = pages
    .map((page) => ({ page, count: store.series({ page, step: 'hour', from: fromHour, to: toHour }).reduce((s, p) => s + p.views, 0) }))
    .filter((p) => p.count > 0);
  counts.sort((a, b) => b.count - a.count || compareUtf8(a.page, b.page));
  return counts.slice(0, limit);
}

describe('top pages over a range', () => {
  it('equals the brute-force list for any range and limit, when pages with the largest totals have few views in it', async () => {
    const dir = await dirs.create('series-top-');
    const start = Date.UTC(2026, 10, 1, 5);
    let clock = start;
    const now = () => clock;
    const stores = [await openSqliteStore({ path: join(dir, 'counters.db'), now, pruneIntervalMs: 0 }), await openMemoryStore(undefined, { now })];
    const random = seeded(16);
    const pages = Array.from({ length: 40 }, (_, i) => `p${String(i).padStart(2, '0')}` as PageName);
    const hours = 80;
    try {
      for (let h = 0; h < hours; h++) {
        clock = start + h * HOUR_MS;
        const increments = pages.flatMap((page, i) => {
          // The first pages take many views early only; the rest a few at random, ties likely.
          const by = i < 5 ? (h < 20 ? 50 : 0) : random() < 0.3 ? 1 + Math.floor(random() * 3) : 0;
          return by === 0 ? [] : [{ page, by }];
        });
        for (const store of stores) await store.increment(increments);
      }
      const first = Math.floor(start / HOUR_MS);
      for (let trial = 0; trial < 60; trial++) {
        const fromHour = first - 3 + Math.floor(random() * (hours + 3));
        const toHour = fromHour + 1 + Math.floor(random() * (hours + 3));
        const limit = [1, 3, 10, 100][trial % 4] as number;
        for (const store of stores) expect(store.top({ fromHour, toHour, limit }), `${fromHour}..${toHour} limit ${limit}`).toEqual(bruteTop(store, pages, fromHour, toHour, limit));
      }
    } finally {
      for (const store of stores) await store.close();
    }
  });
});
