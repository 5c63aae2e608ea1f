import { describe, expect, it } from 'vitest';
import type { Slot } from '../../src/crdt/g-counter.js';
import type { PageName, ReplicaId } from '../../src/ids.js';
import { PageSlotCache } from '../../src/store/page-slot-cache.js';

const slot = (page: string, replica: string, count: number, seq = 1): Slot => ({ page: page as PageName, replica: replica.padEnd(32, '0') as ReplicaId, count, seq });

describe('PageSlotCache', () => {
  it('holds only pages it was given, and hands out copies', () => {
    const cache = new PageSlotCache();
    expect(cache.get('p' as PageName)).toBeUndefined();
    cache.written(slot('p', 'a', 1));
    expect(cache.get('p' as PageName)).toBeUndefined();
    cache.fill('p' as PageName, [slot('p', 'a', 1)]);
    const copy = cache.get('p' as PageName);
    copy?.pop();
    expect(cache.get('p' as PageName)).toEqual([slot('p', 'a', 1)]);
  });

  it('replaces a replica slot in place and inserts a new one in replica order', () => {
    const cache = new PageSlotCache();
    cache.fill('p' as PageName, [slot('p', 'b', 1)]);
    cache.written(slot('p', 'b', 5, 2));
    cache.written(slot('p', 'c', 2));
    cache.written(slot('p', 'a', 3));
    expect(cache.get('p' as PageName)).toEqual([slot('p', 'a', 3), slot('p', 'b', 5, 2), slot('p', 'c', 2)]);
  });

  it('stays within its bound, dropping the least recently used pages first', () => {
    const cache = new PageSlotCache(7);
    cache.fill('p' as PageName, [slot('p', 'a', 1), slot('p', 'b', 1)]);
    cache.fill('q' as PageName, [slot('q', 'a', 1)]);
    cache.fill('r' as PageName, [slot('r', 'a', 1)]);
    expect(cache.get('p' as PageName)).toHaveLength(2); // p is now the most recently used
    cache.fill('s' as PageName, [slot('s', 'a', 1)]);
    expect(cache.get('q' as PageName)).toBeUndefined();
    expect(cache.get('p' as PageName)).toHaveLength(2);
    cache.dropPage('s' as PageName);
    // A page that outgrows the bound by a write is dropped rather than held past it.
    cache.written(slot('r', 'b', 1));
    cache.written(slot('r', 'c', 1));
    cache.written(slot('r', 'd', 1));
    expect(cache.get('r' as PageName)).toBeUndefined();
    cache.fill('big' as PageName, Array.from({ length: 7 }, (_, i) => slot('big', String(i), 1)));
    expect(cache.get('big' as PageName)).toBeUndefined();
  });

  it('holds no page without slots: reads of names nobody counted never evict counted pages', () => {
    const cache = new PageSlotCache(4);
    cache.fill('hot' as PageName, [slot('hot', 'a', 9), slot('hot', 'b', 9)]);
    for (let i = 0; i < 1_000; i++) cache.fill(`scan-${i}` as PageName, []);
    expect(cache.get('hot' as PageName)).toHaveLength(2);
    expect(cache.get('scan-0' as PageName)).toBeUndefined();
    // A held page read empty (its slots replaced by a reset elsewhere) is dropped, not held empty.
    cache.fill('hot' as PageName, []);
    expect(cache.get('hot' as PageName)).toBeUndefined();
  });

  it('forgets a dropped page and everything on clear', () => {
    const cache = new PageSlotCache();
    cache.fill('p' as PageName, [slot('p', 'a', 1)]);
    cache.fill('q' as PageName, [slot('q', 'a', 1)]);
    cache.dropPage('p' as PageName);
    expect(cache.get('p' as PageName)).toBeUndefined();
    cache.clear();
    expect(cache.get('q' as PageName)).toBeUndefined();
  });
});
