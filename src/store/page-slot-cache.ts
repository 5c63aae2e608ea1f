/**
 * The slots of recently read pages, kept equal to the database by the store, so that the answer
 * to a count request (its `Counter-Session` token carries the page's slots) reads no SQL. Issue
 * 19: `pageSlots` after every POST was a join and a sort per request (~10% of a node's CPU at
 * 1,000 increments/s).
 *
 * Invariant: an entry holds exactly the page's committed slots, sorted by replica id. The store
 * fills an entry from a read, updates it only after the transaction that wrote a slot commits
 * (`written`), drops it when the page's slots were replaced wholesale (a reset: `dropPage`), and
 * empties the cache after a failed transaction. Bounded by PAGE_SLOT_CACHE_SLOTS, each page
 * costing one more than its slots; the least recently used go first. A page without slots (a
 * name nobody counted: a scanner's guess, a name the admission refuses) is not held, so a flood
 * of such reads costs an indexed lookup each and never evicts the pages being counted.
 */
import type { Slot } from '../crdt/g-counter.js';
import type { PageName } from '../ids.js';

/** Slots held at most, plus one per page held (a page has one slot per replica that counted it). */
export const PAGE_SLOT_CACHE_SLOTS = 16_384;

export class PageSlotCache {
  private readonly pages = new Map<PageName, Slot[]>();
  private slots = 0;

  constructor(private readonly capacitySlots = PAGE_SLOT_CACHE_SLOTS) {}

  /** A copy of the page's slots, or undefined when the page is not held. */
  get(page: PageName): Slot[] | undefined {
    const held = this.pages.get(page);
    if (held === undefined) return undefined;
    // Most recently used last (a Map iterates in insertion order): eviction takes the first.
    this.pages.delete(page);
    this.pages.set(page, held);
    return held.slice();
  }

  /** Holds what a read of the page returned (sorted by replica id). */
  fill(page: PageName, slots: readonly Slot[]): void {
    const cost = slots.length + 1;
    this.dropPage(page);
    if (slots.length === 0 || cost > this.capacitySlots) return;
    while (this.slots + cost > this.capacitySlots) {
      const oldest = this.pages.keys().next();
      if (oldest.done === true) break;
      this.dropPage(oldest.value);
    }
    this.pages.set(page, slots.slice());
    this.slots += cost;
  }

  /** A committed slot write: replaces the replica's slot of a held page (or adds it, in order). */
  written(slot: Slot): void {
    // Only a page's total slots are held: a series slot (bucket, register) of the same replica
    // shares its seq but is another counter (series.ts), and must not take the total's place.
    if (slot.kind !== undefined) return;
    const held = this.pages.get(slot.page);
    if (held === undefined) return;
    let i = 0;
    while (i < held.length && (held[i] as Slot).replica < slot.replica) i++;
    if (i < held.length && (held[i] as Slot).replica === slot.replica) {
      held[i] = slot;
      return;
    }
    held.splice(i, 0, slot);
    this.slots++;
    if (this.slots > this.capacitySlots) this.dropPage(slot.page);
  }

  dropPage(page: PageName): void {
    const held = this.pages.get(page);
    if (held === undefined) return;
    this.pages.delete(page);
    this.slots -= held.length + 1;
  }

  clear(): void {
    this.pages.clear();
    this.slots = 0;
  }
}
