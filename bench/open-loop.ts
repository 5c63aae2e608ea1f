/**
 * The open-loop load generator. Increment i is due at `start + i / rate`: sends are scheduled by
 * the clock and never wait for earlier responses, so a slow server cannot slow the load down
 * (coordinated omission). Latencies are taken from the *intended* send time as well as from the
 * acknowledgement, so time spent queued in the generator or the server is not hidden.
 *
 * Every `sampleEvery`-th increment is a sample: a single POST on a sample page, whose expected
 * count is known in advance (sample pages are written only by samples, one at a time). A wait is
 * registered on every other node's live feed before the POST leaves; replication latency is the
 * time from the writer's acknowledgement to the moment each other feed reports that count.
 */
import type { SampleRecord } from './breakdown.js';
import type { HttpTarget } from './http-client.js';
import type { LiveFeedClient } from './live-feed-client.js';
import { roundSummary, summarize, type Summary } from './stats.js';
import { addTo, type Tally } from './tally.js';

/** After the last send, how long samples may take to show up on every feed. */
export const SETTLE_TIMEOUT_MS = 15_000;
/** The generator gives up scheduling this long after the planned end (a stalled event loop). */
export const OVERRUN_GRACE_MS = 5_000;
/** Smallest timer step of the single-request mode. */
const MIN_TICK_MS = 1;

export interface OpenLoopOptions {
  readonly rate: number;
  readonly durationMs: number;
  /** One HTTP target per cluster node. */
  readonly targets: readonly HttpTarget[];
  /** Indices of the nodes that take writes (all, or all but a partitioned one). */
  readonly writers: readonly number[];
  /** Per node, its feed subscribed to `samplePages` (undefined: that node is not observed). */
  readonly feeds: ReadonlyArray<LiveFeedClient | undefined>;
  readonly loadPages: readonly string[];
  readonly samplePages: readonly string[];
  /** Every n-th increment is a sample; 0 disables samples. */
  readonly sampleEvery: number;
  readonly batch: boolean;
  readonly batchIntervalMs: number;
  readonly maxInFlight: number;
  readonly random: () => number;
  /** Acknowledged increments per page, added to as responses arrive. */
  readonly acked: Tally;
  /** Requests whose outcome is unknown (network error/timeout): their increments may or may not count. */
  readonly unknown: Tally;
  /** Set `stopped` to end the schedule early (what is left is counted as shed). */
  readonly stopSignal?: { stopped: boolean };
  /** When given, every sample's own times are appended here (for the latency breakdown). */
  readonly record?: SampleRecord[];
}

export interface OpenLoopResult {
  readonly rate: number;
  readonly durationMs: number;
  readonly scheduled: number;
  readonly sent: number;
  readonly acked: number;
  readonly failed: number;
  readonly unknownOutcome: number;
  readonly shed: number;
  readonly requests: number;
  /** Achieved acknowledged increments per second over the send window. */
  readonly achievedRate: number;
  /** ms from an increment's intended send time to its acknowledgement (per request, earliest increment). */
  readonly ack: Summary;
  /** ms from the writer's acknowledgement to each other node's feed reporting the sample. */
  readonly replication: Summary;
  /** ms from a sample's intended send time to each other node's feed reporting it. */
  readonly endToEnd: Summary;
  readonly samples: number;
  readonly sampleObservations: number;
  /** Sample × node pairs never reported within SETTLE_TIMEOUT_MS. */
  readonly samplesMissing: number;
  /**
   * Of the missing ones, how many the node did hold when asked afterwards (GET /api/pages/:page):
   * those are the feed's misses; the rest never replicated within the settle time.
   */
  readonly missingButStored: number;
  /** Feeds that closed during the run (their later frames are lost to the measurement). */
  readonly feedsClosed: number;
  /** Observations that arrived before the writer's acknowledgement (counted as 0 ms). */
  readonly observedBeforeAck: number;
  readonly ackCountMismatches: number;
  /** The most the generator fell behind its schedule, ms. */
  readonly maxScheduleLagMs: number;
}

interface Sample {
  readonly writer: number;
  readonly page: string;
  readonly expected: number;
  readonly intendedAt: number;
  sentAt: number | undefined;
  ackAt: number | undefined;
  ok: boolean;
  readonly seen: Array<number | undefined>;
  pending: number;
}

export async function runOpenLoop(o: OpenLoopOptions): Promise<OpenLoopResult> {
  const total = Math.floor((o.rate * o.durationMs) / 1000);
  const interval = 1000 / o.rate;
  const ackLatencies: number[] = [];
  const samples: Sample[] = [];
  const sampleTargets = new Map<string, number>();
  let sent = 0;
  let acked = 0;
  let failed = 0;
  let unknownOutcome = 0;
  let shed = 0;
  let requests = 0;
  let inFlight = 0;
  let ackCountMismatches = 0;
  let maxScheduleLagMs = 0;
  const pending = new Set<Promise<void>>();

  const track = (promise: Promise<void>): void => {
    pending.add(promise);
    void promise.finally(() => pending.delete(promise));
  };

  const sendSingle = (node: number, page: string, intendedAt: number, sample: Sample | undefined, expected: number): void => {
    if (inFlight >= o.maxInFlight) {
      shed++;
      if (sample !== undefined) sample.ok = false;
      return;
    }
    inFlight++;
    sent++;
    requests++;
    const target = o.targets[node] as HttpTarget;
    if (sample !== undefined) sample.sentAt = performance.now();
    track(
      target.send('POST', `/api/pages/${encodeURIComponent(page)}/views`).then(
        (res) => {
          inFlight--;
          const now = performance.now();
          if (res.status === 200) {
            acked++;
            addTo(o.acked, page, 1);
            ackLatencies.push(now - intendedAt);
            if (sample !== undefined) {
              sample.ackAt = now;
              const count = (JSON.parse(res.body) as { count?: unknown }).count;
              if (count !== expected) ackCountMismatches++;
            }
          } else {
            failed++;
            if (sample !== undefined) sample.ok = false;
          }
        },
        () => {
          inFlight--;
          unknownOutcome++;
          addTo(o.unknown, page, 1);
          if (sample !== undefined) sample.ok = false;
        },
      ),
    );
  };

  const sendBatch = (node: number, pages: string[], intendedAt: number): void => {
    if (inFlight >= o.maxInFlight) {
      shed += pages.length;
      return;
    }
    inFlight++;
    sent += pages.length;
    requests++;
    const counts = new Map<string, number>();
    for (const page of pages) addTo(counts, page, 1);
    const body = JSON.stringify({ views: [...counts].map(([page, by]) => ({ page, by })) });
    const target = o.targets[node] as HttpTarget;
    track(
      target.send('POST', '/api/views', body).then(
        (res) => {
          inFlight--;
          const now = performance.now();
          if (res.status === 200) {
            acked += pages.length;
            for (const [page, by] of counts) addTo(o.acked, page, by);
            ackLatencies.push(now - intendedAt);
          } else failed += pages.length;
        },
        () => {
          inFlight--;
          unknownOutcome += pages.length;
          for (const [page, by] of counts) addTo(o.unknown, page, by);
        },
      ),
    );
  };

  const startSample = (writer: number, intendedAt: number, sampleIndex: number): { page: string; sample: Sample; expected: number } => {
    const page = o.samplePages[sampleIndex % o.samplePages.length] as string;
    const expected = (sampleTargets.get(page) ?? 0) + 1;
    sampleTargets.set(page, expected);
    const sample: Sample = { writer, page, expected, intendedAt, sentAt: undefined, ackAt: undefined, ok: true, seen: o.feeds.map(() => undefined), pending: 0 };
    o.feeds.forEach((feed, node) => {
      if (feed === undefined || node === writer) return;
      sample.pending++;
      feed.whenCount(page, expected, (at) => {
        sample.seen[node] = at;
        sample.pending--;
      });
    });
    samples.push(sample);
    return { page, sample, expected };
  };

  const start = performance.now();
  let next = 0;
  let sampleIndex = 0;
  const batches = new Map<number, { pages: string[]; intendedAt: number }>();

  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - start) * o.rate) / 1000) + 1);
      if (next < due) maxScheduleLagMs = Math.max(maxScheduleLagMs, now - (start + next * interval));
      for (; next < due; next++) {
        const intendedAt = start + next * interval;
        const writer = o.writers[next % o.writers.length] as number;
        if (o.sampleEvery > 0 && next % o.sampleEvery === 0) {
          const { page, sample, expected } = startSample(writer, intendedAt, sampleIndex++);
          sendSingle(writer, page, intendedAt, sample, expected);
          continue;
        }
        const page = o.loadPages[Math.floor(o.random() * o.loadPages.length)] as string;
        if (!o.batch) {
          sendSingle(writer, page, intendedAt, undefined, 0);
          continue;
        }
        let batch = batches.get(writer);
        if (batch === undefined) batches.set(writer, (batch = { pages: [], intendedAt }));
        batch.pages.push(page);
      }
      for (const [writer, batch] of batches) sendBatch(writer, batch.pages, batch.intendedAt);
      batches.clear();
      const overran = now > start + o.durationMs + OVERRUN_GRACE_MS;
      if (next >= total || overran || o.stopSignal?.stopped === true) {
        shed += total - next;
        resolve();
        return;
      }
      const wait = o.batch ? o.batchIntervalMs : Math.max(MIN_TICK_MS, start + next * interval - performance.now());
      setTimeout(tick, wait);
    };
    tick();
  });
  const sendWindowMs = performance.now() - start;
  await Promise.all([...pending]);

  // Samples: wait until every other feed reported each acknowledged sample, or the deadline.
  const deadline = performance.now() + SETTLE_TIMEOUT_MS;
  while (samples.some((s) => s.ok && s.pending > 0) && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }

  if (o.record !== undefined) {
    for (const s of samples) if (s.ok) o.record.push({ page: s.page, writer: s.writer, intendedAt: s.intendedAt, sentAt: s.sentAt, ackAt: s.ackAt, seen: [...s.seen] });
  }
  const replication: number[] = [];
  const endToEnd: number[] = [];
  let samplesMissing = 0;
  let missingButStored = 0;
  const missing: Array<{ node: number; page: string; expected: number }> = [];
  let observedBeforeAck = 0;
  let okSamples = 0;
  for (const sample of samples) {
    if (!sample.ok || sample.ackAt === undefined) continue;
    okSamples++;
    o.feeds.forEach((feed, node) => {
      if (feed === undefined || node === sample.writer) return;
      const at = sample.seen[node];
      if (at === undefined) {
        samplesMissing++;
        missing.push({ node, page: sample.page, expected: sample.expected });
        return;
      }
      const afterAck = at - (sample.ackAt as number);
      if (afterAck < 0) observedBeforeAck++;
      replication.push(Math.max(0, afterAck));
      endToEnd.push(at - sample.intendedAt);
    });
  }

  for (const m of missing) {
    try {
      const body = await (o.targets[m.node] as HttpTarget).json<{ count: number }>(`/api/pages/${encodeURIComponent(m.page)}`);
      if (body.count >= m.expected) missingButStored++;
    } catch {
      // Unreachable node: counted as not stored.
    }
  }

  return {
    rate: o.rate,
    durationMs: o.durationMs,
    scheduled: total,
    sent,
    acked,
    failed,
    unknownOutcome,
    shed,
    requests,
    achievedRate: Math.round((acked / sendWindowMs) * 1000),
    ack: roundSummary(summarize(ackLatencies)),
    replication: roundSummary(summarize(replication)),
    endToEnd: roundSummary(summarize(endToEnd)),
    samples: okSamples,
    sampleObservations: replication.length,
    samplesMissing,
    missingButStored,
    feedsClosed: o.feeds.filter((f) => f?.closed === true).length,
    observedBeforeAck,
    ackCountMismatches,
    maxScheduleLagMs: Math.round(maxScheduleLagMs * 1000) / 1000,
  };
}
