/**
 * Group merge: everything peers sent during one turn of the event loop is merged in one
 * transaction (at most MAX_MERGE_BATCH_SLOTS slots), as group commit does for local increments.
 * Order is kept: all slots of the batch are merged before any of its ranges advance the vector,
 * and a range always comes after the slots that cover it.
 */
import type { Slot } from '../crdt/g-counter.js';
import type { SeqRange } from '../crdt/version-vector.js';
import type { Log } from '../log.js';
import type { IdentityInfo, MergeResult, Store } from '../store/store.js';
import type { Timers } from '../timers.js';
import type { ReplicationMetrics } from './replication-metrics.js';

/** Largest group merge: a bigger batch is split, so one transaction never holds the loop long. */
export const MAX_MERGE_BATCH_SLOTS = 4_000;

/** Who sent a merge: closed when the merge fails, so its next session resyncs what was lost. */
export interface MergeSource {
  close(reason: string): void;
}

interface QueuedMerge {
  readonly source: MergeSource;
  readonly slots: readonly Slot[];
  readonly ranges: readonly SeqRange[];
  readonly applied: (() => void) | undefined;
}

export interface MergeQueueOptions {
  readonly store: Pick<Store, 'merge'>;
  readonly timers: Timers;
  readonly log: Log;
  readonly metrics: Pick<ReplicationMetrics, 'merged'>;
  /** The store minted a new replica id during a merge (a peer proved this one went back in time). */
  readonly identityChanged: (info: IdentityInfo) => void;
}

export class MergeQueue {
  private readonly queue: QueuedMerge[] = [];
  private queuedSlots = 0;
  private scheduled = false;

  constructor(private readonly options: MergeQueueOptions) {}

  /** True while received frames wait to be merged. */
  busy(): boolean {
    return this.queue.length > 0;
  }

  /**
   * Queues slots and ranges from `source`; merged at the end of this turn, or at once when the
   * batch is full. `applied` runs after the transaction that holds them committed.
   */
  enqueue(source: MergeSource, slots: readonly Slot[], ranges: readonly SeqRange[], applied?: () => void): void {
    this.queue.push({ source, slots, ranges, applied });
    this.queuedSlots += slots.length;
    if (this.queuedSlots >= MAX_MERGE_BATCH_SLOTS) {
      this.flush();
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    void this.options.timers.yield().then(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  /** Merges everything queued in one transaction. */
  flush(): void {
    const batch = this.queue.splice(0);
    this.queuedSlots = 0;
    if (batch.length === 0) return;
    const slots = batch.length === 1 ? batch[0]!.slots : batch.flatMap((item) => item.slots);
    const ranges = batch.flatMap((item) => item.ranges);
    let result: MergeResult;
    const started = performance.now();
    try {
      result = this.options.store.merge(slots, ranges);
    } catch (error) {
      // A store failure is not the peers' fault, but what they sent is not applied: drop them so
      // the next session resyncs it from their version vectors.
      this.options.log.error({ err: error, slots: slots.length }, 'merge failed');
      for (const source of new Set(batch.map((item) => item.source))) source.close('merge failed on the receiving node');
      return;
    }
    this.options.metrics.merged(slots.length, (performance.now() - started) / 1000);
    if (result.identityChanged !== undefined) this.options.identityChanged(result.identityChanged);
    for (const item of batch) item.applied?.();
  }
}
