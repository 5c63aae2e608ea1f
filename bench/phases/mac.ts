/**
 * The `mac` phase: what per-frame authentication (PROTOCOL.md §3a) costs one replicated increment,
 * measured before and after in the same process and run. One live delta of one slot (the frame an
 * increment becomes) goes through the work both ends do for it: sender `encodeMessage`, receiver
 * `decodeFrame` — "before" — and with the sender's seal and the receiver's MAC check added —
 * "after". Interleaved frame by frame, so load on the machine hits both alike. The end-to-end
 * replication latency (commit, frame, WebSocket, remote merge and commit) of the latency phase is
 * measured with authentication on; its MAC-free equivalent is that minus the difference here.
 *
 * End to end (`runMacEndToEnd`): two real 2-node clusters in the same run, one of `npm start`'s
 * nodes and one of bench/bench-node.ts with BENCH_NODE_UNSEALED=1 (the same node with the MAC off, a bench-only knob),
 * alternated sealed/unsealed/sealed/unsealed at 1,000 increments/s: replication p50/p99 and the
 * peer bytes per increment of each, side by side.
 */
import { randomBytes } from 'node:crypto';
import { newReplicaId, type PageName } from '../../src/ids.js';
import { decodeFrame, encodeMessage } from '../../src/protocol/codec.js';
import { PageTableIn, PageTableOut } from '../../src/protocol/page-table.js';
import type { Message } from '../../src/protocol/messages.js';
import { FrameOpener, FrameSealer, sessionKey } from '../../src/protocol/session-mac.js';
import { BENCH_NODE_MAIN, Cluster } from '../cluster.js';
import type { Knobs } from '../knobs.js';
import type { ProcessSet } from '../processes.js';
import { log } from '../progress.js';
import { round, summarize, type Summary } from '../stats.js';
import { runRates } from './latency.js';

export interface MacResult {
  readonly frames: number;
  /** Microseconds per frame, both ends' work. */
  readonly withoutMacUs: Summary;
  readonly withMacUs: Summary;
  readonly bytesPerIncrementWithout: number;
  readonly bytesPerIncrementWith: number;
  /** The end-to-end comparison (runMacEndToEnd), when it ran. */
  readonly endToEnd?: MacEndToEnd;
}

export function runMacBench(frames: number): MacResult {
  const a = newReplicaId();
  const b = newReplicaId();
  const input = { cluster: 'bench', sender: a, senderNonce: randomBytes(16), receiver: b, receiverNonce: randomBytes(16) };
  const secret = randomBytes(32).toString('base64');
  const sealer = new FrameSealer(sessionKey(secret, input));
  const opener = new FrameOpener(sessionKey(secret, input));
  const without: number[] = [];
  const withMac: number[] = [];
  let bytesWithout = 0;
  let bytesWith = 0;
  // Each side's page tables, as a session holds them (PROTOCOL.md §4b): the page is named once.
  const plainTables = { out: new PageTableOut(), in: new PageTableIn() };
  const sealedTables = { out: new PageTableOut(), in: new PageTableIn() };
  for (let i = 1; i <= frames; i++) {
    const message: Message = { type: 'delta', range: { replica: a, after: i - 1, upTo: i }, slots: [{ page: '/blog/post-42' as PageName, count: i, seq: i }] };
    let started = performance.now();
    // As a session sends a live delta: its own replica left out, its page by the table.
    const plain = encodeMessage(message, { sender: a, pagesOut: plainTables.out });
    decodeFrame(plain, { sender: a, pagesIn: plainTables.in });
    without.push((performance.now() - started) * 1000);
    started = performance.now();
    const sealed = sealer.seal(encodeMessage(message, { sender: a, pagesOut: sealedTables.out }));
    decodeFrame(opener.open(sealed), { sender: a, pagesIn: sealedTables.in });
    withMac.push((performance.now() - started) * 1000);
    bytesWithout = plain.byteLength;
    bytesWith = sealed.byteLength;
  }
  const rounded = (s: Summary): Summary => ({ count: s.count, p50: round(s.p50), p95: round(s.p95), p99: round(s.p99), max: round(s.max), mean: round(s.mean) });
  return {
    frames,
    withoutMacUs: rounded(summarize(without)),
    withMacUs: rounded(summarize(withMac)),
    bytesPerIncrementWithout: bytesWithout,
    bytesPerIncrementWith: bytesWith,
  };
}

/** Rate of the end-to-end comparison (the budget: p50 at 1,000/s under 0.3 ms of MAC cost). */
export const MAC_E2E_RATE = 1_000;
/** Sealed and unsealed runs each, alternated so load on the machine hits both alike. */
export const MAC_E2E_ROUNDS = 2;

export interface MacEndToEnd {
  readonly rate: number;
  readonly runs: ReadonlyArray<{ readonly mac: boolean; readonly p50Ms: number; readonly p99Ms: number; readonly bytesPerIncrement: number; readonly acked: number }>;
  /** Medians over the runs of each kind. */
  readonly withMac: { readonly p50Ms: number; readonly p99Ms: number; readonly bytesPerIncrement: number };
  readonly withoutMac: { readonly p50Ms: number; readonly p99Ms: number; readonly bytesPerIncrement: number };
}

export async function runMacEndToEnd(knobs: Knobs, processes: ProcessSet, dir: string): Promise<MacEndToEnd> {
  const runs: Array<MacEndToEnd['runs'][number]> = [];
  for (let i = 0; i < MAC_E2E_ROUNDS * 2; i++) {
    const mac = i % 2 === 0;
    const label = `mac-${mac ? 'on' : 'off'}-${i}`;
    log(`mac: 2 nodes, per-frame MAC ${mac ? 'on' : 'off'}, ${MAC_E2E_RATE}/s`);
    const cluster = await Cluster.start({ kind: 'ours', nodes: 2, processes, dir, label, ...(mac ? {} : { script: BENCH_NODE_MAIN, env: { BENCH_NODE_UNSEALED: '1' } }) });
    try {
      const [result] = await runRates(cluster, { ...knobs, rates: [MAC_E2E_RATE] }, label, new Map(), new Map());
      if (result !== undefined) runs.push({ mac, p50Ms: result.replication.p50, p99Ms: result.replication.p99, bytesPerIncrement: result.bytesPerIncrement, acked: result.acked });
    } finally {
      await cluster.stop();
    }
  }
  const median = (values: number[]): number => round(summarize(values).p50);
  const of = (mac: boolean) => {
    const mine = runs.filter((run) => run.mac === mac);
    return { p50Ms: median(mine.map((r) => r.p50Ms)), p99Ms: median(mine.map((r) => r.p99Ms)), bytesPerIncrement: median(mine.map((r) => r.bytesPerIncrement)) };
  };
  return { rate: MAC_E2E_RATE, runs, withMac: of(true), withoutMac: of(false) };
}
