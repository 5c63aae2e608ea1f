/**
 * What this node sends its peers' way: sync answers to their version vectors (`slots` chunks,
 * then `covered`; see sync-answer.ts for why a range is claimed only at the end) and, after each
 * local commit, the commit's delta to every open session. A session whose send buffer is over its
 * bound is skipped: it falls behind with a gap, and the next anti-entropy round fills it.
 *
 * Coalescing (full mesh): a delta goes to a session at once when the session's send buffer is
 * empty (at most `coalesceAboveBytes`) and nothing waits for it, so an idle link adds no latency.
 * Otherwise it waits in the session's outbox, where contiguous deltas merge into one
 * (coalesced-delta.ts), and goes when the buffer drained (looked at on the next loop turn, then
 * after OUTBOX_POLL_MS, backing off to OUTBOX_POLL_MAX_MS: see scheduleFlush): on a busy link the
 * frames per second stop growing with the commit rate. The outbox holds at most MAX_OUTBOX_BYTES
 * (estimated wire bytes); a delta past it is skipped like one over the send-buffer bound. Full
 * mesh only: the broadcast tree identifies deltas by their range, and a range merged differently
 * on each link would defeat its duplicate suppression (PROTOCOL.md §5 names the two cases where a
 * merged delta still reaches a tree: harmless). `coalesceAboveBytes: Infinity` turns it off.
 *
 * Over 300 lines as one class: sync answers and live deltas share each session's outbox and
 * send-buffer bound, and which of them goes first is decided in one place.
 */
import { keyOf } from '../crdt/series.js';
import { valueOf } from '../crdt/g-counter.js';
import { advance, type SeqRange, type VersionVector } from '../crdt/version-vector.js';
import type { ReplicaId } from '../ids.js';
import type { LatencyProbe } from '../latency-probe.js';
import type { Log } from '../log.js';
import type { Message } from '../protocol/messages.js';
import type { Delta, Store } from '../store/store.js';
import type { TimerHandle, Timers } from '../timers.js';
import type { PeerSession } from './peer-session.js';
import type { ReplicationMetrics } from './replication-metrics.js';
import { CoalescedDelta, deltaBytes } from './coalesced-delta.js';
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

/** A delta waits in its session's outbox while the session's send buffer holds more than this. */
export const COALESCE_ABOVE_BYTES = 0;
/**
 * Encoded bytes of deltas one session's outbox holds at most, as deltaBytes estimates them (the
 * wire size, about: 48 bytes a delta plus the page name and 32 a slot), not the heap they take.
 */
export const MAX_OUTBOX_BYTES = 1024 * 1024;
/** How soon a session's non-empty outbox looks at its send buffer again, first. */
export const OUTBOX_POLL_MS = 1;
/**
 * The longest wait between two looks: each look finding the send buffer no smaller than the last
 * doubles the wait up to this, so a peer that stops reading costs a few wakeups a second, not a
 * thousand (and one past the send-buffer bound drops the outbox: no timer at all).
 */
export const OUTBOX_POLL_MAX_MS = 250;

interface Outbox {
  readonly deltas: CoalescedDelta[];
  bytes: number;
  timer: TimerHandle | undefined;
  /** The wait before the next look (OUTBOX_POLL_MS, doubled while the buffer does not shrink). */
  pollMs: number;
  /** The send buffer at the last look. */
  lastBuffered: number;
}

export interface SyncSenderOptions {
  readonly store: Store;
  readonly timers: Timers;
  readonly log: Log;
  readonly metrics: Pick<ReplicationMetrics, 'syncRound' | 'deltaSkipped'>;
  readonly maxSendBufferBytes: number;
  readonly syncChunkSlots: number;
  /** Stamps `encoded` and `written` for the sampled pages of a delta (bench diagnostics); undefined: off. */
  readonly probe?: LatencyProbe;
  /** Default COALESCE_ABOVE_BYTES; Infinity: never coalesce (every delta at once, as before). */
  readonly coalesceAboveBytes?: number;
  /**
   * Bench only (NodeOptions.coalesceWindowMs): a delta for a session that was sent a delta frame
   * less than this many ms ago waits in its outbox until this many ms have passed since that
   * frame, so a link carries at most one delta frame per window — fewer frames and bytes per
   * increment for up to this much more latency. 0 (the default): no window, a delta goes as soon
   * as the link is idle.
   */
  readonly coalesceWindowMs?: number;
}

export class SyncSender {
  /** Sessions with a sync answer being written, and the newest vv that arrived meanwhile. */
  private readonly answering = new Map<PeerSession, VersionVector | undefined>();
  /** Per session, per replica: when its uncovered slots were last sent, and our digest then. */
  private readonly spreadTo = new Map<PeerSession, Map<ReplicaId, { readonly at: number; readonly digest: string }>>();
  /** Per session, the deltas waiting for its send buffer to drain, oldest first. */
  private readonly outboxes = new Map<PeerSession, Outbox>();
  /** Per session, when a delta frame last went to it (only with a coalesceWindowMs). */
  private readonly lastDeltaAt = new WeakMap<PeerSession, number>();
  /** Deltas merged into one waiting in an outbox (bench, tests). */
  readonly counts = { coalesced: 0 };

  constructor(private readonly options: SyncSenderOptions) {}

  /** True while a sync answer is still being written. */
  busy(): boolean {
    return this.answering.size > 0;
  }

  /** The session closed: a pending answer stops at its next chunk, its outbox is dropped. */
  forget(session: PeerSession): void {
    this.answering.delete(session);
    this.spreadTo.delete(session);
    this.dropOutbox(session);
  }

  /** Drops every outbox and its timer (the replicator's stop). */
  stop(): void {
    for (const session of [...this.outboxes.keys()]) this.dropOutbox(session);
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

  /**
   * Pushes a local commit to every open session: at once (encoded per session) where the send
   * buffer is empty and no delta waits, else into the session's outbox.
   */
  push(delta: Delta, sessions: readonly PeerSession[]): void {
    if (sessions.length === 0) return;
    if (delta.slots.length > this.options.syncChunkSlots) {
      // Too big for one frame: send it as a sync round instead, which is chunked.
      for (const session of sessions) this.pushAsRound(session, delta);
      return;
    }
    let message: ReturnType<typeof deltaMessage> | undefined;
    const probe = this.options.probe;
    probe?.markAll('encoded', delta.slots);
    const above = this.options.coalesceAboveBytes ?? COALESCE_ABOVE_BYTES;
    const window = this.options.coalesceWindowMs ?? 0;
    const now = window > 0 ? this.options.timers.now() : 0;
    for (const session of sessions) {
      if (this.overBound(session)) continue;
      if (this.outboxes.has(session) || session.connection.bufferedBytes() > above) {
        this.queue(session, delta);
        continue;
      }
      if (window > 0) {
        const wait = (this.lastDeltaAt.get(session) ?? Number.NEGATIVE_INFINITY) + window - now;
        if (wait > 0) {
          this.queue(session, delta, wait);
          continue;
        }
        this.lastDeltaAt.set(session, now);
      }
      // Encoded per session: each has its own page table, and our replica is left out where the
      // session's hello named it (all, unless the replica rotated since a session opened).
      message ??= deltaMessage(delta);
      session.sendDelta(message);
      probe?.markAll('written', delta.slots, session.peer?.name);
      session.peerHolds(delta.range);
    }
  }

  /** Puts `delta` in the session's outbox, merged into the last one when it continues it; a new outbox is first looked at after `waitMs` (a coalescing window), else on the next loop turn. */
  private queue(session: PeerSession, delta: Delta, waitMs = 0): void {
    let outbox = this.outboxes.get(session);
    if (outbox === undefined) {
      outbox = { deltas: [], bytes: 0, timer: undefined, pollMs: waitMs > 0 ? waitMs : OUTBOX_POLL_MS, lastBuffered: Number.POSITIVE_INFINITY };
      this.outboxes.set(session, outbox);
      this.scheduleFlush(session, outbox, waitMs <= 0);
    }
    const last = outbox.deltas.at(-1);
    const before = last?.bytes ?? 0;
    const merges = last !== undefined && last.continuedBy(delta) && last.slotsWith(delta) <= this.options.syncChunkSlots;
    // deltaBytes(delta) bounds what a merge adds too (a counter already held adds nothing).
    if (outbox.bytes + deltaBytes(delta) > MAX_OUTBOX_BYTES) {
      // As a full send buffer: skipped, the next anti-entropy round fills the gap.
      this.options.metrics.deltaSkipped();
      return;
    }
    if (merges) {
      last.add(delta);
      outbox.bytes += last.bytes - before;
      this.counts.coalesced += 1;
    } else {
      const entry = new CoalescedDelta(delta);
      outbox.deltas.push(entry);
      outbox.bytes += entry.bytes;
    }
  }

  /**
   * Looks at the session's send buffer on the next loop turn (a socket write finishing in this
   * one leaves it empty there: the outbox goes at once), then after OUTBOX_POLL_MS, a wait doubled
   * up to OUTBOX_POLL_MAX_MS while the buffer does not shrink, until it drained. A buffer past the
   * send-buffer bound (a peer that stopped reading) drops the outbox, counted as skipped deltas
   * like those pushed meanwhile: anti-entropy fills them, and no timer lives on for the session.
   */
  private scheduleFlush(session: PeerSession, outbox: Outbox, nextTurn = true): void {
    const check = (): void => {
      outbox.timer = undefined;
      if (this.outboxes.get(session) !== outbox) return;
      if (session.phase !== 'open') {
        this.dropOutbox(session);
        return;
      }
      const buffered = session.connection.bufferedBytes();
      if (buffered > this.options.maxSendBufferBytes) {
        for (let i = 0; i < outbox.deltas.length; i++) this.options.metrics.deltaSkipped();
        this.dropOutbox(session);
        return;
      }
      if (buffered <= (this.options.coalesceAboveBytes ?? COALESCE_ABOVE_BYTES)) {
        this.flush(session);
        return;
      }
      outbox.pollMs = buffered < outbox.lastBuffered ? OUTBOX_POLL_MS : Math.min(outbox.pollMs * 2, OUTBOX_POLL_MAX_MS);
      outbox.lastBuffered = buffered;
      this.scheduleFlush(session, outbox, false);
    };
    if (nextTurn) void this.options.timers.yield().then(check);
    else outbox.timer = this.options.timers.setTimeout(check, outbox.pollMs);
  }

  /** Sends what waits in the session's outbox, in order, and empties it. */
  private flush(session: PeerSession): void {
    const outbox = this.outboxes.get(session);
    if (outbox === undefined) return;
    this.dropOutbox(session);
    if ((this.options.coalesceWindowMs ?? 0) > 0) this.lastDeltaAt.set(session, this.options.timers.now());
    const probe = this.options.probe;
    for (const entry of outbox.deltas) {
      const delta = entry.delta();
      session.sendDelta(deltaMessage(delta));
      probe?.markAll('written', delta.slots, session.peer?.name);
      session.peerHolds(delta.range);
    }
  }

  private dropOutbox(session: PeerSession): void {
    const outbox = this.outboxes.get(session);
    if (outbox === undefined) return;
    if (outbox.timer !== undefined) this.options.timers.clearTimeout(outbox.timer);
    this.outboxes.delete(session);
  }

  private pushAsRound(session: PeerSession, delta: Delta): void {
    if (this.overBound(session)) return;
    // What waits goes first: the round's range continues it.
    this.flush(session);
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
