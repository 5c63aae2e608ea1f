/**
 * Group merge: what peers sent is merged in bounded transactions, as group commit does for local
 * increments (and, with `atOnceAfterIdleMs`, a small item that arrives alone on an idle queue is
 * merged at once). Everything that arrived during one turn of the event loop shares a transaction, up
 * to MAX_MERGE_BATCH_SLOTS slots; a bigger backlog (one huge frame, or many) is split into several
 * transactions, one per turn, so HTTP requests and other peers run in between. Order is kept: a
 * queued item's ranges advance the vector only in the transaction that merges its last slot, and
 * its `applied` callback runs after that transaction committed.
 *
 * Per source, queued slots are bounded: past MAX_QUEUED_SLOTS_PER_SOURCE the source is told to
 * stop reading (`pause`), and to read again (`resume`) once half of it is merged.
 */
import { MAX_TOTAL, type Slot } from '../crdt/g-counter.js';
import type { SeqRange } from '../crdt/version-vector.js';
import type { Log } from '../log.js';
import type { IdentityInfo, MergeResult, Store } from '../store/store.js';
import type { WriteBlock } from '../store/write-health.js';
import type { Timers } from '../timers.js';
import type { ReplicationMetrics } from './replication-metrics.js';

/** Largest merge transaction, in slots (about 2 ms on this machine; see the bench's merge phase). */
export const MAX_MERGE_BATCH_SLOTS = 1_000;
/** Slots one source may have waiting to be merged before it is paused. */
export const MAX_QUEUED_SLOTS_PER_SOURCE = 100_000;

/** Who sent a merge: closed when the merge fails, so its next session resyncs what was lost. */
export interface MergeSource {
  close(reason: string): void;
  /** Stop / start reading this source's frames (backpressure); optional for sources without a socket. */
  pause?(): void;
  resume?(): void;
}

interface QueuedMerge {
  readonly source: MergeSource;
  readonly slots: readonly Slot[];
  /** Slots of this item already merged (the item was split across transactions). */
  done: number;
  readonly ranges: readonly SeqRange[];
  readonly applied: (() => void) | undefined;
}

export interface MergeQueueOptions {
  readonly store: Pick<Store, 'merge' | 'writeBlocked' | 'writesHeld'>;
  readonly timers: Timers;
  readonly log: Log;
  readonly metrics: Pick<ReplicationMetrics, 'merged' | 'pageSaturated' | 'mergeDropped'>;
  /** The store minted a new replica id during a merge (a peer proved this one went back in time). */
  readonly identityChanged: (info: IdentityInfo) => void;
  readonly maxBatchSlots?: number;
  readonly maxQueuedSlotsPerSource?: number;
  /**
   * When set: what arrives to an empty queue with no merge for this many ms is merged at once,
   * inside enqueue(), instead of on the next turn (as group commit's AT_ONCE_AFTER_IDLE_MS).
   * Undefined: everything waits for the turn.
   */
  readonly atOnceAfterIdleMs?: number;
}

export class MergeQueue {
  private readonly queue: QueuedMerge[] = [];
  private readonly queuedBySource = new Map<MergeSource, number>();
  private readonly paused = new Set<MergeSource>();
  private scheduled = false;
  /** Set while the store holds writes (a spread commit, Store.writesHeld): merging resumes when it ends. */
  private waiting = false;
  /** Set by stop(): nothing more is merged. */
  private stopped = false;
  /** The write block merges are being dropped for (logged once when it starts, once when it ends). */
  private droppingFor: WriteBlock['code'] | undefined;
  private readonly maxBatch: number;
  private readonly maxPerSource: number;
  /** timers.now() at the end of the last merge transaction. */
  private lastMergeAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: MergeQueueOptions) {
    this.maxBatch = options.maxBatchSlots ?? MAX_MERGE_BATCH_SLOTS;
    this.maxPerSource = options.maxQueuedSlotsPerSource ?? MAX_QUEUED_SLOTS_PER_SOURCE;
  }

  /** True while received frames wait to be merged. */
  busy(): boolean {
    return this.queue.length > 0;
  }

  /**
   * Queues slots and ranges from `source`; merged at the end of this turn (a bigger backlog over
   * the next turns). `applied` runs after the transaction that holds the last of them committed.
   */
  enqueue(source: MergeSource, slots: readonly Slot[], ranges: readonly SeqRange[], applied?: () => void): void {
    if (this.dropWhileBlocked(slots.length)) return;
    const atOnce = this.queue.length === 0 && !this.scheduled && !this.waiting && this.options.atOnceAfterIdleMs !== undefined && this.options.timers.now() - this.lastMergeAt >= this.options.atOnceAfterIdleMs;
    this.queue.push({ source, slots, done: 0, ranges, applied });
    const queued = (this.queuedBySource.get(source) ?? 0) + slots.length;
    this.queuedBySource.set(source, queued);
    if (queued > this.maxPerSource && !this.paused.has(source)) {
      this.paused.add(source);
      source.pause?.();
    }
    if (atOnce && slots.length <= this.maxBatch) {
      // Alone and small: one transaction now (a bigger item still goes in bounded turns).
      this.mergeBatch();
      return;
    }
    this.schedule();
  }

  /** Drops what `source` queued and has not been merged (its session closed before the merge). */
  forget(source: MergeSource): void {
    this.paused.delete(source);
    this.queuedBySource.delete(source);
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i]!.source === source) this.queue.splice(i, 1);
  }

  /** Merges everything queued now, in as many bounded transactions as it takes. */
  flush(): void {
    // What a held store cannot take now stays unmerged: nothing advanced the vector for it.
    while (this.queue.length > 0 && this.options.store.writesHeld?.() === undefined) this.mergeBatch();
  }

  /**
   * At a stop, before the store closes: merges what it can now (flush), then drops the rest and
   * merges nothing more (a merge waiting for a spread commit, or a turn, would find the store
   * closed). What is dropped advanced no vector: peers send it again next time.
   */
  stop(): void {
    this.flush();
    this.stopped = true;
    this.queue.length = 0;
    this.queuedBySource.clear();
  }

  private schedule(): void {
    if (this.scheduled || this.waiting || this.stopped) return;
    this.scheduled = true;
    void this.options.timers.yield().then(() => {
      this.scheduled = false;
      if (this.stopped) return;
      try {
        this.mergeBatch();
      } finally {
        if (this.queue.length > 0) this.schedule();
      }
    });
  }

  /** One transaction of at most `maxBatch` slots from the head of the queue. */
  private mergeBatch(): void {
    const held = this.options.store.writesHeld?.();
    if (held !== undefined) {
      // A spread local commit holds the writer: merge right after it (before the next one starts).
      if (!this.waiting) {
        this.waiting = true;
        void held.then(() => {
          this.waiting = false;
          if (this.queue.length > 0) this.schedule();
        });
      }
      return;
    }
    const slots: Slot[] = [];
    const ranges: SeqRange[] = [];
    const finished: QueuedMerge[] = [];
    const sources = new Set<MergeSource>();
    while (this.queue.length > 0) {
      const item = this.queue[0]!;
      const room = this.maxBatch - slots.length;
      if (room <= 0 && item.slots.length > item.done) break;
      const take = Math.min(room, item.slots.length - item.done);
      for (let i = item.done; i < item.done + take; i++) slots.push(item.slots[i]!);
      item.done += take;
      sources.add(item.source);
      this.settle(item.source, take);
      if (item.done < item.slots.length) break;
      this.queue.shift();
      for (const range of item.ranges) ranges.push(range);
      finished.push(item);
    }
    if (slots.length === 0 && ranges.length === 0 && finished.length === 0) return;
    if (this.dropWhileBlocked(slots.length)) return;
    let result: MergeResult;
    const started = performance.now();
    try {
      result = this.options.store.merge(slots, ranges);
    } catch (error) {
      this.lastMergeAt = this.options.timers.now();
      // A store failure is not the peers' fault, but what they sent is not applied: drop them so
      // the next session resyncs it from their version vectors.
      this.options.log.error({ err: error, slots: slots.length }, 'merge failed');
      for (const source of sources) {
        this.forget(source);
        source.close('merge failed on the receiving node');
      }
      return;
    }
    this.lastMergeAt = this.options.timers.now();
    this.options.metrics.merged(slots.length, (performance.now() - started) / 1000);
    for (const { page, count } of result.changed) {
      if (count !== MAX_TOTAL) continue;
      // Converges all the same (the cap is a function of the slots, g-counter.ts MAX_TOTAL).
      this.options.metrics.pageSaturated();
      this.options.log.warn({ page }, 'merged slots took a page total to 2^53-1: it stays there and refuses increments until the page is reset');
    }
    if (result.identityChanged !== undefined) this.options.identityChanged(result.identityChanged);
    for (const item of finished) item.applied?.();
  }

  /**
   * While the store refuses writes (its file deleted or replaced, or the disk full), what peers
   * send is dropped rather than merged, and their sessions stay open: closing them would only
   * make them redial and send it again, a loop for as long as the block lasts. Dropping is safe:
   * nothing advanced our vector, so the first anti-entropy round after the block lifts asks for
   * it again. Meanwhile peers keep getting this node's state (reads still work). True when dropped.
   */
  private dropWhileBlocked(slots: number): boolean {
    const block = this.options.store.writeBlocked();
    if (block === undefined) {
      if (this.droppingFor !== undefined) this.options.log.warn({ was: this.droppingFor }, 'writes accepted again: merging what peers send');
      this.droppingFor = undefined;
      return false;
    }
    if (this.droppingFor !== block.code) {
      this.droppingFor = block.code;
      this.options.log.error({ code: block.code }, `merges from peers paused (${block.code}): what they send is dropped, sessions stay open, and anti-entropy brings it again once writes work`);
    }
    this.options.metrics.mergeDropped(slots);
    return true;
  }

  private settle(source: MergeSource, merged: number): void {
    const left = (this.queuedBySource.get(source) ?? 0) - merged;
    if (left > 0) this.queuedBySource.set(source, left);
    else this.queuedBySource.delete(source);
    if (this.paused.has(source) && left <= this.maxPerSource / 2) {
      this.paused.delete(source);
      source.resume?.();
    }
  }
}
