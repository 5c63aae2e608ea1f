/**
 * The default collectors' running parts (a GC observer, an event-loop delay histogram) end with
 * `stop()`: a process that starts and stops nodes must not keep one of each per node.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { createMetrics, type Metrics } from '../src/metrics.js';
import { eventually } from './helpers/eventually.js';

/** A full, synchronous GC (as warm-up.ts collects one: `gc` only exists in contexts made with --expose-gc). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  try {
    (runInNewContext('gc') as () => void)();
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

/** The sum of a metric's samples (every label set) in the registry's exposition. */
async function sample(metrics: Metrics, name: string): Promise<number> {
  const text = await metrics.render();
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^(\S+?)(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (match?.[1] === name) sum += Number(match[2]);
  }
  return sum;
}

describe('metrics stop()', () => {
  it('ends the default collectors: no more GCs observed, no more event-loop delay sampled', async () => {
    const stopped = createMetrics({ defaultMetrics: true });
    const running = createMetrics({ defaultMetrics: true });
    try {
      stopped.stop();
      stopped.stop();
      const gcs = 'dsqlite_nodejs_gc_duration_seconds_count';
      const before = await sample(stopped, gcs);
      const runningBefore = await sample(running, gcs);
      collectGarbage();
      // The GC reached the registry still running: it would have reached the stopped one by now.
      await eventually(async () => expect(await sample(running, gcs)).toBeGreaterThan(runningBefore));
      expect(await sample(stopped, gcs)).toBe(before);

      // A render resets the delay histogram; one still sampling has a minimum again soon, a
      // disabled one keeps the empty histogram's (2^63 ns).
      const lagMin = 'dsqlite_nodejs_eventloop_lag_min_seconds';
      await sample(stopped, lagMin);
      await eventually(async () => expect(await sample(running, lagMin)).toBeLessThan(1));
      expect(await sample(stopped, lagMin)).toBeGreaterThan(1e9);
    } finally {
      running.stop();
    }
  });
});
