/**
 * The memory twin's series slots (src/crdt/series.ts) over `MemoryDatabase.series`, with the
 * same rules as SqliteStore's SeriesTables; the site-wide figures are computed by scanning (the
 * twin serves tests, not dashboards).
 */
import { epochOf, saturatingTotal, supersedes, type Slot } from '../crdt/g-counter.js';
import { SlotKeyCache } from '../crdt/digest.js';
import { estimate } from '../crdt/hyperloglog.js';
import { expired, registerDay, registerIndex, registerT, SERIES_DAY, SERIES_HOUR, SERIES_REGISTER, seriesKey } from '../crdt/series.js';
import type { PageName, ReplicaId } from '../ids.js';
import { compareUtf8 } from '../utf8.js';
import type { SeriesState } from './memory-disk.js';
import { compareCursorOrder, splitHours, topViews } from './series-rules.js';
import type { PageCount, SeriesPoint, SeriesRange, SlotCursor, TopRange } from './store.js';

export class MemorySeries {
  /** replica → series key with page → slot, for `after`. */
  private readonly byReplica = new Map<ReplicaId, Map<string, Slot>>();

  constructor(
    private readonly state: SeriesState,
    private readonly slotKeys: SlotKeyCache,
  ) {
    for (const slots of state.values()) for (const slot of slots.values()) this.index(slot);
  }

  digestTerms(): bigint {
    let sum = 0n;
    for (const slots of this.state.values()) for (const slot of slots.values()) sum += BigInt(slot.count) * this.slotKeys.anyKey(slot);
    return sum;
  }

  addLocal(page: PageName, replica: ReplicaId, epoch: number, seq: number, by: number, now: { hour: number; day: number }, registers: ReadonlyMap<number, number> | undefined, raised: Slot[]): bigint {
    const epochPart = epoch === 0 ? {} : { epoch };
    let change = 0n;
    for (const [kind, t] of [
      [SERIES_HOUR, now.hour],
      [SERIES_DAY, now.day],
    ] as const) {
      const own = this.get(page, replica, kind, t);
      const count = (own !== undefined && epochOf(own) === epoch ? own.count : 0) + by;
      const slot: Slot = { page, replica, count, seq, ...epochPart, kind, t };
      this.set(slot);
      raised.push(slot);
      change += this.slotKeys.slotChangeAny(slot, own);
    }
    for (const [index, rank] of registers ?? []) {
      const t = registerT(now.day, index);
      if (rank <= this.mergedRegister(page, t)) continue;
      const own = this.get(page, replica, SERIES_REGISTER, t);
      const slot: Slot = { page, replica, count: rank, seq, ...epochPart, kind: SERIES_REGISTER, t };
      this.set(slot);
      raised.push(slot);
      change += this.slotKeys.slotChangeAny(slot, own);
    }
    return change;
  }

  /** Merges a series slot of the page's epoch (the caller checked it). */
  merge(slot: Slot): bigint {
    const current = this.get(slot.page, slot.replica, slot.kind ?? 0, slot.t ?? 0);
    if (!supersedes(slot, current)) return 0n;
    this.set(slot);
    return this.slotKeys.slotChangeAny(slot, current);
  }

  dropBelow(page: PageName, epoch: number): bigint {
    const slots = this.state.get(page);
    if (slots === undefined) return 0n;
    let change = 0n;
    for (const [key, slot] of slots) {
      if (epochOf(slot) >= epoch) continue;
      slots.delete(key);
      this.byReplica.get(slot.replica)?.delete(indexKey(slot));
      change -= BigInt(slot.count) * this.slotKeys.anyKey(slot);
    }
    return change;
  }

  prune(cutoffHour: number): number {
    let removed = 0;
    for (const slots of this.state.values()) {
      for (const [key, slot] of slots) {
        if (!expired(slot, cutoffHour)) continue;
        slots.delete(key);
        this.byReplica.get(slot.replica)?.delete(indexKey(slot));
        removed++;
      }
    }
    return removed;
  }

  /** The highest seq of a series slot of `replica` (0 without one). */
  highestSeq(replica: ReplicaId): number {
    let highest = 0;
    for (const slot of this.byReplica.get(replica)?.values() ?? []) if (slot.seq > highest) highest = slot.seq;
    return highest;
  }

  /** Replicas holding series slots. */
  replicas(): Iterable<ReplicaId> {
    return this.byReplica.keys();
  }

  after(replica: ReplicaId, cursor: SlotCursor, limit: number): Slot[] {
    const out: Slot[] = [];
    const at = { page: cursor.page ?? ('' as PageName), replica, count: 0, seq: cursor.seq, kind: cursor.kind, t: cursor.t } as Slot;
    for (const slot of this.byReplica.get(replica)?.values() ?? []) {
      if (cursor.page === undefined ? slot.seq > cursor.seq : compareCursorOrder(slot, at) > 0) out.push(slot);
    }
    out.sort(compareCursorOrder);
    return out.slice(0, Math.max(0, Math.floor(limit)));
  }

  points(range: SeriesRange): SeriesPoint[] {
    const kind = range.step === 'hour' ? SERIES_HOUR : SERIES_DAY;
    const views = new Map<number, number>();
    const sketches = new Map<number, Map<number, number>>();
    const pages = range.page === undefined ? [...this.state.values()] : [this.state.get(range.page) ?? new Map<string, Slot>()];
    for (const slots of pages) {
      for (const slot of slots.values()) {
        const t = slot.t ?? 0;
        // Saturating, as SqliteStore's sums (sqlite-series.ts MAX).
        if (slot.kind === kind && t >= range.from && t < range.to) views.set(t, saturatingTotal([views.get(t) ?? 0, slot.count]));
        if (range.step === 'day' && slot.kind === SERIES_REGISTER) {
          const day = registerDay(t);
          if (day < range.from || day >= range.to) continue;
          let registers = sketches.get(day);
          if (registers === undefined) sketches.set(day, (registers = new Map()));
          const index = registerIndex(t);
          if (slot.count > (registers.get(index) ?? 0)) registers.set(index, slot.count);
        }
      }
    }
    const out: SeriesPoint[] = [];
    for (let t = range.from; t < range.to; t++) {
      const registers = sketches.get(t);
      out.push(range.step === 'day' ? { t, views: views.get(t) ?? 0, visitors: registers === undefined ? 0 : estimate(registers) } : { t, views: views.get(t) ?? 0 });
    }
    return out;
  }

  /** `totalOf`: the page's total, undefined for a page not listed (no total yet). */
  top(range: TopRange, totalOf: (page: PageName) => number | undefined): PageCount[] {
    const { days, hours } = splitHours(range.fromHour, range.toHour);
    const inside = (slot: Slot): boolean => {
      const t = slot.t ?? 0;
      if (slot.kind === SERIES_DAY) return t >= days[0] && t < days[1];
      if (slot.kind === SERIES_HOUR) return (t >= hours[0][0] && t < hours[0][1]) || (t >= hours[1][0] && t < hours[1][1]);
      return false;
    };
    const out: PageCount[] = [];
    for (const [page, slots] of this.state) {
      const total = totalOf(page);
      if (total === undefined) continue;
      const count = topViews(saturatingTotal([...slots.values()].filter(inside).map((slot) => slot.count)), total);
      if (count > 0) out.push({ page, count });
    }
    out.sort((a, b) => b.count - a.count || compareUtf8(a.page, b.page));
    return out.slice(0, range.limit);
  }

  private mergedRegister(page: PageName, t: number): number {
    let max = 0;
    for (const slot of this.state.get(page)?.values() ?? []) if (slot.kind === SERIES_REGISTER && slot.t === t && slot.count > max) max = slot.count;
    return max;
  }

  private get(page: PageName, replica: ReplicaId, kind: number, t: number): Slot | undefined {
    return this.state.get(page)?.get(seriesKey(replica, kind, t));
  }

  private set(slot: Slot): void {
    let slots = this.state.get(slot.page);
    if (slots === undefined) this.state.set(slot.page, (slots = new Map()));
    const value: Slot = { page: slot.page, replica: slot.replica, count: slot.count, seq: slot.seq, ...(epochOf(slot) === 0 ? {} : { epoch: epochOf(slot) }), kind: slot.kind as 1 | 2 | 3, t: slot.t ?? 0 };
    slots.set(seriesKey(slot.replica, slot.kind ?? 0, slot.t ?? 0), value);
    this.index(value);
  }

  private index(slot: Slot): void {
    let slots = this.byReplica.get(slot.replica);
    if (slots === undefined) this.byReplica.set(slot.replica, (slots = new Map()));
    slots.set(indexKey(slot), slot);
  }
}

function indexKey(slot: Slot): string {
  return `${slot.kind ?? 0}:${slot.t ?? 0}:${slot.page}`;
}
