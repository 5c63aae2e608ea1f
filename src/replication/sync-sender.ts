/**
 * What this node sends its peers' way: sync answers to their version vectors (`slots` chunks,
 * then `covered`; see sync-answer.ts for why a range is claimed only at the end) and, after each
 * local commit, the commit's delta to every open session at once. A session whose send buffer is
 * over its bound is skipped: it falls behind with a gap, and the next anti-entropy round fills it.
 */
import { keyOf } from '../crdt/series.js';
import { valueOf } from '../crdt/g-counter.js';
import { advance, type SeqRange, type VersionVector } from '../crdt/version-vector.js';
import type { ReplicaId } from '../ids.js';
import type { LatencyProbe } from '../latency-probe.js';
import type { Log } from '../log.js';
import { encodeMessage } from '../protocol/codec.js';
import type { Message } from '../protocol/messages.js';
import type { Delta, Store } from '../store/store.js';
import type { Timers } from '../timers.js';
import type { PeerSession } from './peer-session.js';
import type { ReplicationMetrics } from './replication-metrics.js';
import { planSyncAnswer } from './sync-answer.js';

/** Past this many bytes queued to a peer, live deltas to it are skipped (anti-entropy catches up). */
export const MAX_SEND_BUFFER_BYTES = 8 * 1024 * 1024;
/** Sync chunks sent before letting the event loop run other work. */
export const SYNC_CHUNKS_PER_TURN = 4;
/**
 * How often a sync answer waiting for a full send buffer looks again. An answer writes its next
 * chunk only while the peer's buffer is under the bound, so a peer that stops reading holds at
 * most the bound plus one chunk of ours, however much it asks for.
 */
export const DRAIN_POLL_MS = 20;
/**
 * Slots no vector covers (sync-answer.ts) go to a session once per replica, and again no sooner
 * than this, and only when this node's state changed meanwhile: a gap nobody can fill costs a
 * resend per half minute at most, and none in a quiet cluster.
 */
export const SPREAD_INTERVAL_MS = 30_000;

export interface SyncSenderOptions {
  readonly store: Store;
  readonly timers: Timers;
  readonly log: Log;
  readonly metrics: Pick<ReplicationMetrics, 'syncRound' | 'deltaSkipped'>;
  readonly maxSendBufferBytes: number;
  readonly syncChunkSlots: number;
  /** Stamps `encoded` and `written` for the sampled pages of a delta (bench diagnostics); undefined: off. */
  readonly probe?: LatencyProbe;
}

export class SyncSender {
  /** Sessions with a sync answer being written, and the newest vv that arrived meanwhile. */
  private readonly answering = new Map<PeerSession, VersionVector | undefined>();
  /** Per session, per replica: when its uncovered slots were last sent, and our digest then. */
  private readonly spreadTo = new Map<PeerSession, Map<ReplicaId, { readonly at: number; readonly digest: string }>>();

  constructor(private readonly options: SyncSenderOptions) {}

  /** True while a sync answer is still being written. */
  busy(): boolean {
    return this.answering.size > 0;
  }

  /** The session closed: a pending answer stops at its next chunk. */
  forget(session: PeerSession): void {
    this.answering.delete(session);
    this.spreadTo.delete(session);
  }

  /**
   * Writes a sync answer for `peerVv`; a vv arriving meanwhile is answered right after, minus
   * what the answer in flight covered: that vector was sent before the peer had read our answer
   * (one ordered stream), so without this a peer catching up on a large state while its
   * anti-entropy timer fires would be sent all of it again, once per round, and live deltas to it
   * would be skipped behind the full send buffer all the while. Only the one queued vector is
   * raised, by ranges this session sent in full: the vector after it is answered as it comes, so
   * anything the peer did not merge is still sent a round later.
   */
  answer(session: PeerSession, peerVv: VersionVector): void {
    if (this.answering.has(session)) {
      this.answering.set(session, peerVv);
      return;
    }
    this.answering.set(session, undefined);
    let covered: readonly SeqRange[] = [];
    void this.writeAnswer(session, peerVv)
      .then((ranges) => {
        covered = ranges;
      })
      .catch((error: unknown) => {
        this.options.log.error({ err: error, peer: session.peer?.name }, 'sync answer failed');
        session.close('sync answer failed');
      })
      .finally(() => {
        const next = this.answering.get(session);
        this.answering.delete(session);
        if (next !== undefined && session.phase === 'open') this.answer(session, raisedOver(next, covered));
      });
  }

  /** Sends the answer; resolves with the ranges it covered (none when the session closed first). */
  private async writeAnswer(session: PeerSession, peerVv: VersionVector): Promise<readonly SeqRange[]> {
    const { store, timers } = this.options;
    const now = timers.now();
    const digest = store.digest();
    const spread = this.spreadTo.get(session) ?? new Map<ReplicaId, { at: number; digest: string }>();
    const plan = planSyncAnswer(store, peerVv, this.options.syncChunkSlots, (replica) => {
      const last = spread.get(replica);
      return last === undefined || (now - last.at >= SPREAD_INTERVAL_MS && last.digest !== digest);
    });
    if (plan.spread.length > 0) {
      for (const replica of plan.spread) spread.set(replica, { at: now, digest });
      this.spreadTo.set(session, spread);
    }
    const round = session.newRound();
    let index = 0;
    for (const chunk of plan.chunks) {
      if (!(await this.drained(session))) return [];
      session.send({ type: 'slots', round, index: index++, slots: chunk });
      if (index % SYNC_CHUNKS_PER_TURN === 0) await this.options.timers.yield();
    }
    if (!(await this.drained(session))) return [];
    session.send({ type: 'covered', round, chunks: index, ranges: plan.ranges });
    for (const range of plan.ranges) session.peerHolds(range);
    this.options.metrics.syncRound('sent');
    return plan.ranges;
  }

  /** Waits until the session's send buffer is under the bound; false when the session closed meanwhile. */
  private async drained(session: PeerSession): Promise<boolean> {
    while (session.phase === 'open' && session.connection.bufferedBytes() > this.options.maxSendBufferBytes) {
      await new Promise<void>((resolve) => this.options.timers.setTimeout(resolve, DRAIN_POLL_MS));
    }
    return session.phase === 'open';
  }

  /** Slots a live delta carries at most; a bigger commit goes as a sync round. */
  get maxDeltaSlots(): number {
    return this.options.syncChunkSlots;
  }

  /** Pushes a local commit to every open session, encoded once. */
  push(delta: Delta, sessions: readonly PeerSession[]): void {
    if (sessions.length === 0) return;
    if (delta.slots.length > this.options.syncChunkSlots) {
      // Too big for one frame: send it as a sync round instead, which is chunked.
      for (const session of sessions) this.pushAsRound(session, delta);
      return;
    }
    const frame = encodeMessage(deltaMessage(delta));
    const probe = this.options.probe;
    probe?.markAll('encoded', delta.slots);
    for (const session of sessions) {
      if (this.overBound(session)) continue;
      session.sendFrame(frame, 'delta');
      probe?.markAll('written', delta.slots, session.peer?.name);
      session.peerHolds(delta.range);
    }
  }

  private pushAsRound(session: PeerSession, delta: Delta): void {
    if (this.overBound(session)) return;
    const chunkSlots = this.options.syncChunkSlots;
    const round = session.newRound();
    let index = 0;
    for (let i = 0; i < delta.slots.length; i += chunkSlots) {
      session.send({ type: 'slots', round, index: index++, slots: delta.slots.slice(i, i + chunkSlots) });
    }
    session.send({ type: 'covered', round, chunks: index, ranges: [delta.range] });
    session.peerHolds(delta.range);
  }

  /** True (and counted) when the session's send buffer is past its bound: its delta is skipped. */
  private overBound(session: PeerSession): boolean {
    if (session.connection.bufferedBytes() <= this.options.maxSendBufferBytes) return false;
    this.options.metrics.deltaSkipped();
    return true;
  }
}

/** A local commit as a live delta: its range and the slots it raised, named by the range's replica. */
export function deltaMessage(delta: Delta): Extract<Message, { type: 'delta' }> {
  return { type: 'delta', range: delta.range, slots: delta.slots.map((slot) => ({ page: slot.page, ...valueOf(slot), ...keyOf(slot) })) };
}

/** `vv` with every entry a range continues moved to the range's end (a range past a gap moves nothing). */
function raisedOver(vv: VersionVector, ranges: readonly SeqRange[]): VersionVector {
  if (ranges.length === 0) return vv;
  const raised = new Map(vv);
  for (const range of ranges) advance(raised, range);
  return raised;
}
