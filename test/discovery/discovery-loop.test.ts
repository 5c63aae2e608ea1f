import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { CombinedDiscovery } from '../../src/discovery/combined-discovery.js';
import { DiscoveryLoop, EMPTY_ANSWER, type Discovery } from '../../src/discovery/discovery.js';
import { MemoryDiscovery } from '../../src/discovery/memory-discovery.js';
import { StaticDiscovery } from '../../src/discovery/static-discovery.js';
import type { TimerHandle, Timers } from '../../src/timers.js';
import { recordingLog } from './log-recorder.js';

/** Timers a test fires by hand, on a clock that reads 42. */
function manualTimers(): Timers & { pending: Map<TimerHandle, { callback: () => void; ms: number }>; fireAll(): void } {
  const pending = new Map<TimerHandle, { callback: () => void; ms: number }>();
  return {
    pending,
    now: () => 42,
    wallTime: (monotonic) => monotonic,
    yield: () => Promise.resolve(),
    setTimeout(callback, ms) {
      const handle = { __timer: true } as TimerHandle;
      pending.set(handle, { callback, ms });
      return handle;
    },
    clearTimeout(handle) {
      pending.delete(handle);
    },
    fireAll() {
      const due = [...pending.values()];
      pending.clear();
      for (const timer of due) timer.callback();
    },
  };
}

async function eventually(check: () => void, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

const loops: DiscoveryLoop[] = [];
afterEach(async () => {
  await Promise.all(loops.splice(0).map((loop) => loop.stop()));
});

function makeLoop(discovery: Discovery, intervalMs = 0, timers = manualTimers()) {
  const calls: string[][] = [];
  const log = recordingLog();
  const loop = new DiscoveryLoop({ discovery, intervalMs, onPeers: (peers) => void calls.push(peers), log, timers });
  loops.push(loop);
  return { loop, calls, log, timers };
}

describe('DiscoveryLoop', () => {
  it('reports the first answer, even empty, then only changes', async () => {
    const discovery = new MemoryDiscovery([]);
    const { loop, calls } = makeLoop(discovery);
    await loop.tick();
    expect(calls).toEqual([[]]);
    await loop.tick();
    expect(calls).toEqual([[]]);
    discovery.set(['b:1', 'a:1']);
    await loop.tick();
    await loop.tick();
    expect(calls).toEqual([[], ['a:1', 'b:1']]);
    discovery.set(['a:1']);
    await loop.tick();
    expect(calls).toEqual([[], ['a:1', 'b:1'], ['a:1']]);
    expect(loop.status()).toEqual({ peers: ['a:1'], lastError: undefined, lastSuccessAt: 42, lastLookupAt: 42 });
  });

  it('with warnWhenEmpty, warns once when the answer holds no peer and shows it in the status until peers appear', async () => {
    const discovery = new MemoryDiscovery([]);
    const log = recordingLog();
    const loop = new DiscoveryLoop({ discovery, intervalMs: 0, onPeers: () => undefined, log, warnWhenEmpty: true, timers: manualTimers() });
    await loop.tick();
    await loop.tick();
    expect(log.warnings().map((entry) => entry.message)).toEqual(['peer discovery found no peers: the name resolves to no address']);
    expect(loop.status()).toMatchObject({ peers: [], lastError: EMPTY_ANSWER, lastLookupAt: 42 });
    discovery.set(['a:1']);
    await loop.tick();
    expect(loop.status()).toMatchObject({ peers: ['a:1'], lastError: undefined });
  });

  it('deduplicates and sorts whatever the discovery returns', async () => {
    const unsorted: Discovery = { resolve: () => Promise.resolve(['c:1', 'a:1', 'c:1', 'b:2']) };
    const { loop, calls } = makeLoop(unsorted);
    await loop.tick();
    expect(calls).toEqual([['a:1', 'b:2', 'c:1']]);
  });

  it('keeps the previous list on failure and warns once per distinct error', async () => {
    const discovery = new MemoryDiscovery(['a:1']);
    const { loop, calls, log } = makeLoop(discovery);
    await loop.tick();
    discovery.fail(Object.assign(new Error('queryA ETIMEOUT app'), { code: 'ETIMEOUT' }));
    for (let i = 0; i < 5; i += 1) await loop.tick();
    expect(calls).toEqual([['a:1']]);
    expect(log.warnings()).toHaveLength(1);
    expect(log.warnings()[0]?.fields).toMatchObject({ kept: 1 });
    expect(loop.status().peers).toEqual(['a:1']);
    expect(loop.status().lastError).toBe('ETIMEOUT: queryA ETIMEOUT app');

    discovery.fail(Object.assign(new Error('queryA ESERVFAIL app'), { code: 'ESERVFAIL' }));
    await loop.tick();
    await loop.tick();
    expect(log.warnings()).toHaveLength(2);

    discovery.set(['a:1', 'b:1']);
    await loop.tick();
    expect(calls).toEqual([['a:1'], ['a:1', 'b:1']]);
    expect(log.entries.at(-1)).toMatchObject({ level: 'info', message: 'peer discovery recovered' });
    expect(loop.status().lastError).toBeUndefined();

    // The same failure after a recovery is news again.
    discovery.fail(Object.assign(new Error('queryA ESERVFAIL app'), { code: 'ESERVFAIL' }));
    await loop.tick();
    expect(log.warnings()).toHaveLength(3);
  });

  it('a failure before any success reports nothing and keeps status empty', async () => {
    const discovery = new MemoryDiscovery();
    discovery.fail(new Error('down'));
    const { loop, calls, log } = makeLoop(discovery);
    await loop.tick();
    expect(calls).toEqual([]);
    expect(loop.status().peers).toBeUndefined();
    expect(log.warnings()).toHaveLength(1);
  });

  it('a tick asked for during another joins it', async () => {
    let release: (peers: string[]) => void = () => undefined;
    let resolutions = 0;
    const slow: Discovery = {
      resolve: () => {
        resolutions += 1;
        return new Promise((resolve) => (release = resolve));
      },
    };
    const { loop, calls } = makeLoop(slow);
    const first = loop.tick();
    const second = loop.tick();
    expect(second).toBe(first);
    release(['a:1']);
    await Promise.all([first, second]);
    expect(resolutions).toBe(1);
    expect(calls).toEqual([['a:1']]);
  });

  it('logs a failing onPeers and keeps going', async () => {
    const discovery = new MemoryDiscovery(['a:1']);
    const log = recordingLog();
    let calls = 0;
    const loop = new DiscoveryLoop({
      discovery,
      intervalMs: 0,
      log,
      onPeers: () => {
        calls += 1;
        throw new Error('boom');
      },
    });
    loops.push(loop);
    await loop.tick();
    discovery.set(['b:1']);
    await loop.tick();
    expect(calls).toBe(2);
    expect(log.warnings().map((entry) => entry.message)).toEqual(['handling discovered peers failed', 'handling discovered peers failed']);
  });

  it('start resolves at once, then again intervalMs after each resolution; stop clears the timer', async () => {
    const discovery = new MemoryDiscovery(['a:1']);
    const { loop, calls, timers } = makeLoop(discovery, 1_000);
    loop.start();
    loop.start();
    await eventually(() => expect(timers.pending.size).toBe(1));
    expect(discovery.resolutions).toBe(1);
    expect([...timers.pending.values()][0]?.ms).toBe(1_000);
    expect(calls).toEqual([['a:1']]);

    discovery.set(['a:1', 'b:1']);
    timers.fireAll();
    await eventually(() => expect(timers.pending.size).toBe(1));
    expect(discovery.resolutions).toBe(2);
    expect(calls).toEqual([['a:1'], ['a:1', 'b:1']]);

    await loop.stop();
    expect(timers.pending.size).toBe(0);
    await loop.stop();
    await loop.tick();
    expect(discovery.resolutions).toBe(2);
  });

  it('with intervalMs 0, start resolves once and schedules nothing', async () => {
    const discovery = new MemoryDiscovery(['a:1']);
    const { loop, calls, timers } = makeLoop(discovery, 0);
    loop.start();
    await eventually(() => expect(calls).toEqual([['a:1']]));
    expect(timers.pending.size).toBe(0);
  });

  it('stop abandons a resolution in flight and reports nothing after it', async () => {
    let seenSignal: AbortSignal | undefined;
    const hanging: Discovery = {
      resolve: ({ signal } = {}) =>
        new Promise((_resolve, reject) => {
          seenSignal = signal;
          signal?.addEventListener('abort', () => reject(new Error('aborted')));
        }),
    };
    const { loop, calls, log } = makeLoop(hanging);
    const tick = loop.tick();
    await loop.stop();
    await tick;
    expect(seenSignal?.aborted).toBe(true);
    expect(calls).toEqual([]);
    expect(log.warnings()).toEqual([]);
  });

  it('accepts a pino logger as its log', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const discovery = new MemoryDiscovery();
    discovery.fail(Object.assign(new Error('queryA ECONNREFUSED app'), { code: 'ECONNREFUSED' }));
    const loop = new DiscoveryLoop({ discovery, intervalMs: 0, onPeers: () => undefined, log: pino(sink) });
    loops.push(loop);
    await loop.tick();
    await loop.tick();
    await eventually(() => expect(lines).toHaveLength(1));
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({ level: 40, msg: 'peer discovery failed; keeping the previous peer list' });
  });

  it('refuses a negative or fractional interval', () => {
    const discovery = new MemoryDiscovery();
    expect(() => new DiscoveryLoop({ discovery, intervalMs: -1, onPeers: () => undefined, log: recordingLog() })).toThrow(RangeError);
    expect(() => new DiscoveryLoop({ discovery, intervalMs: 1.5, onPeers: () => undefined, log: recordingLog() })).toThrow(RangeError);
  });
});

describe('CombinedDiscovery', () => {
  it('returns the union of its parts', async () => {
    const dynamic = new MemoryDiscovery(['b:1', 'c:1']);
    const combined = new CombinedDiscovery([new StaticDiscovery(['a:1', 'b:1']), dynamic]);
    expect(await combined.resolve()).toEqual(['a:1', 'b:1', 'c:1']);
  });

  it('fails when a part fails, so the loop keeps the whole previous list', async () => {
    const dynamic = new MemoryDiscovery(['c:1']);
    const { loop, calls } = makeLoop(new CombinedDiscovery([new StaticDiscovery(['a:1']), dynamic]));
    await loop.tick();
    dynamic.fail(new Error('dns down'));
    await loop.tick();
    expect(calls).toEqual([['a:1', 'c:1']]);
    expect(loop.status().peers).toEqual(['a:1', 'c:1']);
  });
});
