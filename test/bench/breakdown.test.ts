import { describe, expect, it } from 'vitest';
import { buildBreakdown, type RateSamples } from '../../bench/breakdown.js';
import { LatencyProbe, type ProbeSnapshot } from '../../src/latency-probe.js';

describe('latency probe', () => {
  it('stamps only pages with its prefix, on the clock it is given', () => {
    let now = 100;
    const probe = new LatencyProbe({ name: 'n', pagePrefix: 's-', clock: () => now });
    probe.mark('parsed', 'load-1');
    probe.mark('parsed', 's-1');
    now = 105;
    probe.markAll('committed', [{ page: 'load-2' }, { page: 's-1' }, { page: 's-2' }]);
    probe.markAll('received', [{ page: 's-3' }], 'peer', 42);
    const finished: Array<() => void> = [];
    probe.request('/api/pages/s-4/views', { once: (_event, listener) => finished.push(listener) });
    probe.request('/api/pages/load-3/views', { once: (_event, listener) => finished.push(listener) });
    probe.request('/api/pages/s-5', { once: (_event, listener) => finished.push(listener) });
    now = 107;
    for (const f of finished) f();
    expect(probe.snapshot().events).toEqual([
      { stage: 'parsed', page: 's-1', t: 100 },
      { stage: 'committed', page: 's-1', t: 105 },
      { stage: 'committed', page: 's-2', t: 105 },
      { stage: 'received', page: 's-3', t: 42, peer: 'peer' },
      { stage: 'arrived', page: 's-4', t: 105 },
      { stage: 'acked', page: 's-4', t: 107 },
    ]);
  });

  it('keeps at most maxEvents stamps and counts the rest as dropped', () => {
    const probe = new LatencyProbe({ name: 'n', pagePrefix: '', clock: () => 1, maxEvents: 2 });
    for (let i = 0; i < 5; i++) probe.mark('queued', `p${i}`);
    expect(probe.snapshot().events).toHaveLength(2);
    expect(probe.snapshot().dropped).toBe(3);
  });
});

describe('latency breakdown', () => {
  const snapshot = (name: string, events: ProbeSnapshot['events']): ProbeSnapshot => ({ name, events, loop: [{ t: 1500, mean: 0.2, p50: 0.1, p99: 3, max: 4 }], gc: [{ t: 1100, ms: 1.5, kind: 'minor' }], dropped: 0 });

  it('joins each sample with the stamps of its page inside its window, writer and peers apart', () => {
    // Generator clock = monotonic − 1000. Sample 1 of page s at 0 (mono 1000), sample 2 at 500 (mono 1500).
    const rates: RateSamples[] = [
      {
        rate: 1000,
        from: 0,
        to: 1000,
        samples: [
          { page: 's', writer: 0, intendedAt: 0, sentAt: 1, ackAt: 9, seen: [undefined, 12] },
          { page: 's', writer: 1, intendedAt: 500, sentAt: 500, ackAt: 510, seen: [520, undefined] },
        ],
      },
    ];
    const writer = snapshot('n-0', [
      { stage: 'arrived', page: 's', t: 1002 },
      { stage: 'parsed', page: 's', t: 1003 },
      { stage: 'queued', page: 's', t: 1003 },
      { stage: 'committed', page: 's', t: 1005 },
      { stage: 'encoded', page: 's', t: 1005.5 },
      { stage: 'written', page: 's', t: 1006, peer: 'n-1' },
      { stage: 'acked', page: 's', t: 1007 },
      // Sample 2 reaches node 0 as a peer.
      { stage: 'received', page: 's', t: 1512 },
      { stage: 'merged', page: 's', t: 1514 },
      { stage: 'feed', page: 's', t: 1515 },
    ]);
    const peer = snapshot('n-1', [
      { stage: 'received', page: 's', t: 1008 },
      { stage: 'merged', page: 's', t: 1010 },
      { stage: 'feed', page: 's', t: 1011 },
      // Sample 2's writer stamps: outside sample 1's window.
      { stage: 'arrived', page: 's', t: 1501 },
      { stage: 'committed', page: 's', t: 1504 },
      { stage: 'written', page: 's', t: 1506, peer: '127.0.0.2:9000' },
    ]);
    const result = buildBreakdown(rates, [writer, peer], ['n-0', 'n-1'], 1000);
    const stage = (name: string) => result.rates[0]?.stages.find((s) => s.stage === name);
    expect(result.rates[0]?.samples).toBe(2);
    expect(stage('sent→arrived')).toMatchObject({ count: 2, p50: 1, max: 1 });
    expect(stage('queued→committed')).toMatchObject({ count: 1, p50: 2 });
    expect(stage('written→received')).toMatchObject({ count: 2, p50: 2, max: 6 });
    expect(stage('received→merged')).toMatchObject({ count: 2, p50: 2 });
    expect(stage('feed→seen')).toMatchObject({ count: 2, p50: 1, max: 5 });
    expect(stage('committed→acked')).toMatchObject({ count: 1, p50: 2 });
    expect(stage('acked→ack')).toMatchObject({ count: 1, p50: 2 });
    expect(stage('ack→seen (repl)')).toMatchObject({ count: 2, p50: 3, max: 10 });
    expect(result.rates[0]?.nodes[0]).toMatchObject({ node: 'n-0', loopP99: 3, loopMax: 4, gcCount: 1, gcTotalMs: 1.5, gcMajor: 0 });
  });
});
