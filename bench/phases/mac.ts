/**
 * The `mac` phase: what per-frame authentication (PROTOCOL.md §3a) costs one replicated increment,
 * measured before and after in the same process and run. One live delta of one slot (the frame an
 * increment becomes) goes through the work both ends do for it: sender `encodeMessage`, receiver
 * `decodeFrame` — "before" — and with the sender's seal and the receiver's MAC check added —
 * "after". Interleaved frame by frame, so load on the machine hits both alike. The end-to-end
 * replication latency (commit, frame, WebSocket, remote merge and commit) of the latency phase is
 * measured with authentication on; its MAC-free equivalent is that minus the difference here.
 */
import { randomBytes } from 'node:crypto';
import { newReplicaId, type PageName } from '../../src/ids.js';
import { decodeFrame, encodeMessage } from '../../src/protocol/codec.js';
import type { Message } from '../../src/protocol/messages.js';
import { FrameOpener, FrameSealer, sessionKey } from '../../src/protocol/session-mac.js';
import { round, summarize, type Summary } from '../stats.js';

export interface MacResult {
  readonly frames: number;
  /** Microseconds per frame, both ends' work. */
  readonly withoutMacUs: Summary;
  readonly withMacUs: Summary;
  readonly bytesPerIncrementWithout: number;
  readonly bytesPerIncrementWith: number;
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
  for (let i = 1; i <= frames; i++) {
    const message: Message = { type: 'delta', range: { replica: a, after: i - 1, upTo: i }, slots: [{ page: '/blog/post-42' as PageName, count: i, seq: i }] };
    let started = performance.now();
    const plain = encodeMessage(message);
    decodeFrame(plain);
    without.push((performance.now() - started) * 1000);
    started = performance.now();
    const sealed = sealer.seal(encodeMessage(message));
    decodeFrame(opener.open(sealed));
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
