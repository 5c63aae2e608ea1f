/** warmUp (src/warm-up.ts): a full GC and the first-use work, before a node says `listening`. */
import { connect } from 'node:net';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { WARM_UP_PATHS, warmUp } from '../src/warm-up.js';

/** Major GCs that started while `run` ran, as perf_hooks reports them. */
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
  return entries.filter((e) => (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR && e.startTime >= from && e.startTime <= to);
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('warmUp', () => {
  it('renders the metrics once and runs a major GC, leaving no gc() behind', async () => {
    let renders = 0;
    let ms = Number.NaN;
    const gcs = await majorGcsDuring(async () => {
      ({ ms } = await warmUp({ render: () => Promise.resolve(`rendered ${++renders}`) }));
    });
    expect(renders).toBe(1);
    expect(gcs.length).toBeGreaterThanOrEqual(1);
    expect(ms).toBeGreaterThanOrEqual(0);
    // --expose-gc was turned on only to make one context: nothing made since sees it.
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
    expect(runInNewContext('typeof gc')).toBe('undefined');
  });

  it('serves the warm-up paths once through the copy of the app, then closes its port', async () => {
    const seen: string[] = [];
    let port = 0;
    const warmed = await warmUp({
      render: () => Promise.resolve(''),
      app: (req, res) => {
        seen.push(req.url ?? '');
        port = req.socket.localPort ?? 0;
        res.end('{}');
      },
    });
    expect(seen).toEqual([...WARM_UP_PATHS]);
    expect(warmed.requestsSkipped).toBeUndefined();
    expect(port).toBeGreaterThan(0);
    expect(await refused(port)).toBe(true);
  });

  it('goes on without the requests when the copy of the app fails them, and says why', async () => {
    const gcs = await majorGcsDuring(async () => {
      const warmed = await warmUp({ render: () => Promise.resolve(''), app: (req) => req.socket.destroy() });
      expect(warmed.requestsSkipped).toMatch(/socket hang up/);
    });
    expect(gcs.length).toBeGreaterThanOrEqual(1);
  });

  it('fails the start when the render fails', async () => {
    await expect(warmUp({ render: () => Promise.reject(new Error('registry broke')) })).rejects.toThrow(/registry broke/);
  });
});
