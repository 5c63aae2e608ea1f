/** warmUp (src/warm-up.ts): a full GC and the first-use loads, before a node says `listening`. */
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { warmUp } from '../src/warm-up.js';

/** Major GCs that started within [from, to] (performance.now() times), as perf_hooks reports them. */
async function majorGcsDuring(run: () => Promise<void>): Promise<PerformanceEntry[]> {
  const entries: PerformanceEntry[] = [];
  const observer = new PerformanceObserver((list) => entries.push(...list.getEntries()));
  observer.observe({ entryTypes: ['gc'] });
  const from = performance.now();
  await run();
  const to = performance.now();
  // Entries are delivered after the GC, on a later turn.
  await new Promise((resolve) => setTimeout(resolve, 50));
  observer.disconnect();
  return entries.filter((e) => ((e as PerformanceEntry & { detail?: { kind?: number } }).detail)?.kind === constants.NODE_PERFORMANCE_GC_MAJOR && e.startTime >= from && e.startTime <= to);
}

describe('warmUp', () => {
  it('renders the metrics once and runs a major GC, leaving no gc() behind', async () => {
    let renders = 0;
    let ms = Number.NaN;
    const gcs = await majorGcsDuring(async () => {
      ms = await warmUp({ render: () => Promise.resolve(`rendered ${++renders}`) });
    });
    expect(renders).toBe(1);
    expect(gcs.length).toBeGreaterThanOrEqual(1);
    expect(ms).toBeGreaterThanOrEqual(0);
    // --expose-gc was turned on only to make one context: nothing new sees it.
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
    const { runInNewContext } = await import('node:vm');
    expect(runInNewContext('typeof gc')).toBe('undefined');
  });

  it('fails the start when the render fails', async () => {
    await expect(warmUp({ render: () => Promise.reject(new Error('registry broke')) })).rejects.toThrow(/registry broke/);
  });
});
