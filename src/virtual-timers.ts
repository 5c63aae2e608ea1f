/**
 * Virtual time for simulations (the bench's scale phase, property tests at scale): `Timers` whose
 * clock moves only when the driver says so. Timers wait in a binary heap keyed by (due time,
 * order set), so scheduling and firing cost O(log n) however many are pending — a 1,000-node
 * simulation keeps tens of thousands. Two timers due at the same instant fire in the order they
 * were set; a cleared timer is skipped when it reaches the top (lazy deletion).
 *
 * `yield()` is a resolved promise: long jobs continue in the microtasks the driver lets run
 * between instants (see `runDue`).
 */
import type { TimerHandle, Timers } from './timers.js';

interface Entry {
  readonly at: number;
  readonly order: number;
  readonly callback: () => void;
  cancelled: boolean;
}

/** The wall clock a virtual reading of 0 stands for (display only). */
const VIRTUAL_EPOCH_MS = 1_700_000_000_000;

export class VirtualTimers implements Timers {
  private time: number;
  private order = 0;
  private readonly heap: Entry[] = [];
  private live = 0;

  constructor(start = 0) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  wallTime(monotonic: number): number {
    return VIRTUAL_EPOCH_MS + monotonic;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const entry: Entry = { at: this.time + Math.max(0, Number.isFinite(ms) ? ms : 0), order: this.order++, callback, cancelled: false };
    this.push(entry);
    this.live += 1;
    return entry as unknown as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    const entry = handle as unknown as Entry;
    if (entry.cancelled) return;
    entry.cancelled = true;
    this.live -= 1;
  }

  yield(): Promise<void> {
    return Promise.resolve();
  }

  /** Timers set and not yet fired or cleared. */
  pending(): number {
    return this.live;
  }

  /** When the next timer is due; undefined when none is pending. */
  nextAt(): number | undefined {
    this.dropCancelled();
    return this.heap[0]?.at;
  }

  /**
   * Moves the clock to the next due instant, if it is at or before `until`, and fires every timer
   * due then — also those the callbacks set for the same instant. Returns false (and moves the
   * clock to `until`) when nothing is due by then. The caller lets microtasks and immediates run
   * between calls, so work a timer starts settles before the next instant.
   */
  runDue(until: number): boolean {
    const at = this.nextAt();
    if (at === undefined || at > until) {
      this.time = Math.max(this.time, until);
      return false;
    }
    this.time = Math.max(this.time, at);
    for (;;) {
      this.dropCancelled();
      const top = this.heap[0];
      if (top === undefined || top.at > this.time) break;
      this.pop();
      top.cancelled = true;
      this.live -= 1;
      top.callback();
    }
    return true;
  }

  private dropCancelled(): void {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.pop();
  }

  private before(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.order < b.order);
  }

  private push(entry: Entry): void {
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < heap.length && this.before(heap[left]!, heap[smallest]!)) smallest = left;
      if (right < heap.length && this.before(heap[right]!, heap[smallest]!)) smallest = right;
      if (smallest === i) break;
      [heap[i], heap[smallest]] = [heap[smallest]!, heap[i]!];
      i = smallest;
    }
  }
}
