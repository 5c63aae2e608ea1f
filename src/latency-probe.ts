/**
 * The latency probe (issue 19, `npm run bench`'s breakdown): timestamps of a few sampled
 * increments at each step of their way — request arrived, parsed, queued, committed, delta
 * encoded, frame written to a peer's socket, response written; at a peer: frame received, merged
 * and committed, sent on the live feed — plus event-loop delay (1-s windows) and GC pauses.
 *
 * Off unless LATENCY_TRACE_DIR is set. Every call site holds `probe: LatencyProbe | undefined` and
 * calls `probe?.mark(…)`: optional chaining evaluates no argument when it is undefined, so an
 * unset probe costs one check and allocates nothing on the hot path. When on, it notes only pages
 * whose name starts with LATENCY_TRACE_PAGES (the bench's sample pages: ~50 increments/s), and
 * at most MAX_PROBE_EVENTS of them; the snapshot is written to a file when the node stops.
 *
 * Clock: `clock()` is CLOCK_MONOTONIC in milliseconds (main.ts passes process.hrtime), which every
 * process on one host shares, so a stamp taken in one node and one taken in another (or in the
 * bench's generator) subtract to a true one-way time. GC entries and event-loop windows are
 * moved onto the same clock by the offset between it and performance.now() taken at start.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants, monitorEventLoopDelay, PerformanceObserver, type IntervalHistogram } from 'node:perf_hooks';

export type ProbeStage = 'arrived' | 'parsed' | 'queued' | 'committed' | 'encoded' | 'written' | 'acked' | 'received' | 'merged' | 'feed';

export interface ProbeEvent {
  readonly stage: ProbeStage;
  readonly page: string;
  /** CLOCK_MONOTONIC, ms. */
  readonly t: number;
  /** The peer a frame was written to (its node name or address). */
  readonly peer?: string;
}

/**
 * One window of event-loop delay, ms: how late the monitor's 10-ms timer ran (monitorEventLoopDelay
 * records the whole interval between its runs; the resolution is subtracted here), reset after
 * each window.
 */
export interface LoopWindow {
  /** End of the window (CLOCK_MONOTONIC, ms). */
  readonly t: number;
  readonly mean: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export interface GcPause {
  /** Start of the pause (CLOCK_MONOTONIC, ms). */
  readonly t: number;
  readonly ms: number;
  readonly kind: 'minor' | 'major' | 'incremental' | 'weak' | 'other';
}

export interface ProbeSnapshot {
  readonly name: string;
  readonly events: readonly ProbeEvent[];
  readonly loop: readonly LoopWindow[];
  readonly gc: readonly GcPause[];
  /** Events not kept because the bound was reached. */
  readonly dropped: number;
}

/** Stamps kept at most (~100 bytes each): a bench run takes some 10,000 per node. */
export const MAX_PROBE_EVENTS = 200_000;
/** Event-loop windows and GC pauses kept at most. */
export const MAX_PROBE_SERIES = 100_000;
/** Length of one event-loop delay window. */
export const LOOP_WINDOW_MS = 1_000;
/** Sampling period of monitorEventLoopDelay (its default): finer would add a timer per ms to the node measured. */
const LOOP_RESOLUTION_MS = 10;

const GC_KINDS: Record<number, GcPause['kind']> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak',
};

export interface LatencyProbeOptions {
  /** Names the snapshot (the node's name). */
  readonly name: string;
  /** Only pages whose name starts with this are stamped. */
  readonly pagePrefix: string;
  /** CLOCK_MONOTONIC in ms. */
  readonly clock: () => number;
  readonly maxEvents?: number;
}

export class LatencyProbe {
  private readonly events: ProbeEvent[] = [];
  private readonly loop: LoopWindow[] = [];
  private readonly gc: GcPause[] = [];
  private dropped = 0;
  private readonly maxEvents: number;
  /** clock() − performance.now(), both monotonic. */
  private readonly offset: number;
  private histogram: IntervalHistogram | undefined;
  private observer: PerformanceObserver | undefined;
  private window: NodeJS.Timeout | undefined;
  private readonly encodedPrefix: string;

  constructor(private readonly options: LatencyProbeOptions) {
    this.maxEvents = options.maxEvents ?? MAX_PROBE_EVENTS;
    this.offset = options.clock() - performance.now();
    this.encodedPrefix = encodeURIComponent(options.pagePrefix);
  }

  /** Whether `page` is one the probe stamps. */
  traces(page: string): boolean {
    return page.startsWith(this.options.pagePrefix);
  }

  /** Stamps `stage` for `page` (if traced). */
  mark(stage: ProbeStage, page: string, peer?: string): void {
    if (!this.traces(page)) return;
    this.push(peer === undefined ? { stage, page, t: this.options.clock() } : { stage, page, t: this.options.clock(), peer });
  }

  /** Stamps `stage` for every traced page among `items` (slots, changed pages), at one time. */
  markAll(stage: ProbeStage, items: readonly { readonly page: string; readonly kind?: number }[], peer?: string, at?: number): void {
    let t: number | undefined = at;
    for (const { page, kind } of items) {
      // A page's series slots (buckets, registers) ride with its total: one stamp per page.
      if (kind !== undefined || !this.traces(page)) continue;
      t ??= this.options.clock();
      this.push(peer === undefined ? { stage, page, t } : { stage, page, t, peer });
    }
  }

  /** The probe's clock now (to stamp a frame on arrival, before it is decoded). */
  now(): number {
    return this.options.clock();
  }

  /**
   * An HTTP request arrived: stamps `arrived` now and, for a traced count request, `acked` when
   * its response has been handed to the socket. `url` is the raw request target.
   */
  request(url: string | undefined, response: { once(event: 'finish', listener: () => void): unknown }): void {
    // Cheap test first: a traced page's (ASCII) prefix appears as such in the encoded path.
    if (url === undefined || !url.includes(this.encodedPrefix)) return;
    const match = /^\/api\/pages\/([^/?]+)\/views/.exec(url);
    if (match === null) return;
    let page: string;
    try {
      page = decodeURIComponent(match[1] as string);
    } catch {
      return;
    }
    if (!this.traces(page)) return;
    this.push({ stage: 'arrived', page, t: this.options.clock() });
    response.once('finish', () => this.push({ stage: 'acked', page, t: this.options.clock() }));
  }

  /** Starts the event-loop and GC monitors. */
  start(): void {
    if (this.histogram !== undefined) return;
    const histogram = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    histogram.enable();
    this.histogram = histogram;
    const ms = (ns: number): number => Math.max(0, Math.round(ns / 1e3) / 1e3 - LOOP_RESOLUTION_MS);
    this.window = setInterval(() => {
      if (histogram.count > 0 && this.loop.length < MAX_PROBE_SERIES) {
        this.loop.push({ t: this.options.clock(), mean: round3(ms(histogram.mean)), p50: round3(ms(histogram.percentile(50))), p99: round3(ms(histogram.percentile(99))), max: round3(ms(histogram.max)) });
      }
      histogram.reset();
    }, LOOP_WINDOW_MS);
    this.window.unref();
    this.observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        if (this.gc.length >= MAX_PROBE_SERIES) return;
        const kind = ((entry as unknown as { detail?: { kind?: number } }).detail)?.kind;
        this.gc.push({ t: entry.startTime + this.offset, ms: Math.round(entry.duration * 1e3) / 1e3, kind: (kind === undefined ? undefined : GC_KINDS[kind]) ?? 'other' });
      }
    });
    this.observer.observe({ entryTypes: ['gc'] });
  }

  /** Stops the monitors (idempotent); what was collected stays. */
  stop(): void {
    if (this.window !== undefined) clearInterval(this.window);
    this.window = undefined;
    this.histogram?.disable();
    this.histogram = undefined;
    this.observer?.disconnect();
    this.observer = undefined;
  }

  snapshot(): ProbeSnapshot {
    return { name: this.options.name, events: this.events, loop: this.loop, gc: this.gc, dropped: this.dropped };
  }

  /** Writes the snapshot to `<dir>/<name>.json`; returns the path. */
  writeTo(dir: string): string {
    const path = join(dir, `${this.options.name}.json`);
    writeFileSync(path, JSON.stringify(this.snapshot()));
    return path;
  }

  private push(event: ProbeEvent): void {
    if (this.events.length >= this.maxEvents) this.dropped++;
    else this.events.push(event);
  }
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}
