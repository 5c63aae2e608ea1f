/**
 * The latency breakdown (issue 19): where a sampled increment's time goes, stage by stage, from
 * the generator's send to each other node's live-feed frame; and each node's event-loop delay and
 * GC pauses during each rate.
 *
 * The nodes stamp sampled pages with src/latency-probe.ts (LATENCY_TRACE_DIR, one JSON file per
 * node written when it stops); the generator keeps its own times of the same samples (SampleRecord).
 * Every stamp is CLOCK_MONOTONIC, shared by all processes of the host, so a stage that crosses
 * processes (generator → node, writer → peer, peer → generator) is a true one-way difference.
 *
 * Joining: a sample page is written only by samples, one at a time and over a second apart, so the
 * stamps of page P at node X between a sample's intended send time and the next sample of P belong
 * to that sample: the first one of each stage in that window is taken.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GcPause, LoopWindow, ProbeEvent, ProbeSnapshot, ProbeStage } from '../src/latency-probe.js';
import { round, roundSummary, summarize, type Summary } from './stats.js';

/** One sample as the generator saw it, in its performance.now() milliseconds. */
export interface SampleRecord {
  readonly page: string;
  readonly writer: number;
  readonly intendedAt: number;
  sentAt: number | undefined;
  ackAt: number | undefined;
  /** Per node, when its feed reported the sample. */
  readonly seen: Array<number | undefined>;
}

/** The samples of one rate and its send window (performance.now() ms of the generator). */
export interface RateSamples {
  readonly rate: number;
  readonly from: number;
  readonly to: number;
  readonly samples: readonly SampleRecord[];
}

export interface StageFigure extends Summary {
  readonly stage: string;
}

export interface NodeLoad {
  readonly node: string;
  /** Event-loop delay over the rate's 1-s windows, ms: the mean of window medians, the worst window p99, the worst delay. */
  readonly loopP50: number;
  readonly loopP99: number;
  readonly loopMax: number;
  readonly gcCount: number;
  readonly gcTotalMs: number;
  readonly gcMaxMs: number;
  /** Of which major (mark-compact) collections. */
  readonly gcMajor: number;
}

export interface RateBreakdown {
  readonly rate: number;
  readonly samples: number;
  readonly stages: StageFigure[];
  readonly nodes: NodeLoad[];
}

export interface Breakdown {
  /** How the stamps were taken, for whoever reads the JSON. */
  readonly clock: string;
  readonly rates: RateBreakdown[];
  /** Stamps a node dropped at its bound (0 normally). */
  readonly droppedEvents: number;
}

/** The stages in path order; a system shows those it has (the naive node has no queue). */
export const STAGE_ORDER = [
  'intended→sent',
  'sent→arrived',
  'arrived→parsed',
  'parsed→queued',
  'queued→committed',
  'parsed→committed',
  'committed→encoded',
  'encoded→written',
  'written→received',
  'received→merged',
  'merged→feed',
  'feed→seen',
  'committed→acked',
  'acked→ack',
  'committed→merged (core)',
  'ack→seen (repl)',
] as const;

const WRITER_CHAIN: readonly ProbeStage[] = ['arrived', 'parsed', 'queued', 'committed', 'encoded'];

/** CLOCK_MONOTONIC ms minus performance.now() ms in this process. */
export function monotonicOffset(): number {
  return Number(process.hrtime.bigint()) / 1e6 - performance.now();
}

/** Each node's probe snapshot from `dir` (`<name>.json`), undefined where a node wrote none. */
export function readSnapshots(dir: string, names: readonly string[]): Array<ProbeSnapshot | undefined> {
  return names.map((name) => {
    const path = join(dir, `${name}.json`);
    if (!existsSync(path)) return undefined;
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as ProbeSnapshot;
    } catch {
      return undefined;
    }
  });
}

/** The node a `written` stamp names: our nodes give the peer's NODE_NAME, the naive node its address `127.0.0.(2+i):port`. */
function peerIndex(peer: string | undefined, names: readonly string[]): number {
  if (peer === undefined) return -1;
  const byName = names.indexOf(peer);
  if (byName !== -1) return byName;
  const host = /^127\.0\.0\.(\d+):/.exec(peer);
  return host === null ? -1 : Number(host[1]) - 2;
}

/** Per page, a node's stamps in time order. */
function indexEvents(snapshot: ProbeSnapshot | undefined): Map<string, ProbeEvent[]> {
  const byPage = new Map<string, ProbeEvent[]>();
  for (const event of snapshot?.events ?? []) {
    let list = byPage.get(event.page);
    if (list === undefined) byPage.set(event.page, (list = []));
    list.push(event);
  }
  for (const list of byPage.values()) list.sort((a, b) => a.t - b.t);
  return byPage;
}

function first(events: readonly ProbeEvent[] | undefined, stage: ProbeStage, from: number, to: number, test: (e: ProbeEvent) => boolean = () => true): number | undefined {
  for (const e of events ?? []) {
    if (e.t < from) continue;
    if (e.t >= to) return undefined;
    if (e.stage === stage && test(e)) return e.t;
  }
  return undefined;
}

/**
 * The breakdown of every rate. `offset` turns the generator's performance.now() readings into
 * CLOCK_MONOTONIC (monotonicOffset() of the generator process).
 */
export function buildBreakdown(rates: readonly RateSamples[], snapshots: ReadonlyArray<ProbeSnapshot | undefined>, names: readonly string[], offset: number): Breakdown {
  const events = snapshots.map(indexEvents);
  const result: RateBreakdown[] = [];
  for (const rate of rates) {
    const stages = new Map<string, number[]>();
    const add = (stage: string, a: number | undefined, b: number | undefined): void => {
      if (a === undefined || b === undefined) return;
      let list = stages.get(stage);
      if (list === undefined) stages.set(stage, (list = []));
      list.push(b - a);
    };
    // Each sample's window ends where the next sample of its page begins.
    const byPage = new Map<string, SampleRecord[]>();
    for (const s of rate.samples) {
      let list = byPage.get(s.page);
      if (list === undefined) byPage.set(s.page, (list = []));
      list.push(s);
    }
    let counted = 0;
    for (const list of byPage.values()) {
      list.sort((a, b) => a.intendedAt - b.intendedAt);
      list.forEach((s, i) => {
        if (s.ackAt === undefined) return;
        counted++;
        const from = s.intendedAt + offset;
        const next = list[i + 1];
        const to = next === undefined ? Number.POSITIVE_INFINITY : next.intendedAt + offset;
        const w = events[s.writer]?.get(s.page);
        const intended = from;
        const sent = s.sentAt === undefined ? undefined : s.sentAt + offset;
        const ack = s.ackAt + offset;
        add('intended→sent', intended, sent);
        // The writer's chain: consecutive stamps it has.
        let previous: { stage: string; t: number } | undefined = sent === undefined ? undefined : { stage: 'sent', t: sent };
        const at = new Map<ProbeStage, number>();
        for (const stage of WRITER_CHAIN) {
          const t = first(w, stage, from, to);
          if (t === undefined) continue;
          at.set(stage, t);
          if (previous !== undefined) add(`${previous.stage}→${stage}`, previous.t, t);
          previous = { stage, t };
        }
        const committed = at.get('committed');
        const acked = committed === undefined ? undefined : first(w, 'acked', committed, to);
        add('committed→acked', committed, acked);
        add('acked→ack', acked, ack);
        s.seen.forEach((seenAt, node) => {
          if (node === s.writer || seenAt === undefined) return;
          const p = events[node]?.get(s.page);
          const written = first(w, 'written', from, to, (e) => peerIndex(e.peer, names) === node);
          add('encoded→written', at.get('encoded') ?? committed, written);
          const received = first(p, 'received', from, to);
          add('written→received', written, received);
          const merged = first(p, 'merged', from, to);
          add('received→merged', received, merged);
          const feed = merged === undefined ? undefined : first(p, 'feed', merged, to);
          add('merged→feed', merged, feed);
          add('feed→seen', feed, seenAt + offset);
          add('committed→merged (core)', committed, merged);
          add('ack→seen (repl)', ack, Math.max(ack, seenAt + offset));
        });
      });
    }
    const figures: StageFigure[] = [];
    for (const stage of STAGE_ORDER) {
      const values = stages.get(stage);
      if (values !== undefined && values.length > 0) figures.push({ stage, ...roundSummary(summarize(values)) });
    }
    result.push({ rate: rate.rate, samples: counted, stages: figures, nodes: snapshots.map((snap, i) => nodeLoad(names[i] ?? String(i), snap, rate.from + offset, rate.to + offset)) });
  }
  const droppedEvents = snapshots.reduce((sum, s) => sum + (s?.dropped ?? 0), 0);
  return { clock: 'CLOCK_MONOTONIC (process.hrtime), shared by every process on the host: cross-process stages are one-way differences', rates: result, droppedEvents };
}

/** A node's event-loop windows ending inside [from, to + 1 s] and its GC pauses starting inside [from, to]. */
function nodeLoad(node: string, snapshot: ProbeSnapshot | undefined, from: number, to: number): NodeLoad {
  const windows: LoopWindow[] = (snapshot?.loop ?? []).filter((w) => w.t > from && w.t <= to + 1000);
  const pauses: GcPause[] = (snapshot?.gc ?? []).filter((g) => g.t >= from && g.t <= to);
  const mean = (values: number[]): number => (values.length === 0 ? Number.NaN : values.reduce((a, b) => a + b, 0) / values.length);
  return {
    node,
    loopP50: round(mean(windows.map((w) => w.p50))),
    loopP99: round(windows.length === 0 ? Number.NaN : Math.max(...windows.map((w) => w.p99))),
    loopMax: round(windows.length === 0 ? Number.NaN : Math.max(...windows.map((w) => w.max))),
    gcCount: pauses.length,
    gcTotalMs: round(pauses.reduce((sum, g) => sum + g.ms, 0)),
    gcMaxMs: round(pauses.length === 0 ? 0 : Math.max(...pauses.map((g) => g.ms))),
    gcMajor: pauses.filter((g) => g.kind === 'major').length,
  };
}
