/**
 * Which pages an anonymous view may create. A page that exists (a count above zero at this node,
 * replicated pages included) always counts; a new one only while the cluster holds fewer than
 * MAX_PAGES pages and, with PAGE_PATTERN set, when its name matches. Write-token holders are not
 * asked. The store's page count is read at most once per PAGE_COUNT_REFRESH_MS, and only when a
 * new page asks: between two reads every page admitted here is added to it, so local creation
 * cannot overshoot; pages arriving from peers in that second can (at most one second of theirs).
 */
import type { PageName } from '../ids.js';
import type { Slot } from '../crdt/g-counter.js';

/** How old the store's page count may be when a new page asks to be created. */
export const PAGE_COUNT_REFRESH_MS = 1_000;

/** What admission reads from the store. */
export interface AdmissionStore {
  /** The page's slots, all of its current reset epoch (a reset drops the older ones). */
  pageSlots(page: PageName): readonly Pick<Slot, 'count'>[];
  stats(): { readonly pages: number };
}

export type Refusal = 'too_many_pages' | 'page_not_allowed';

export interface PageAdmissionOptions {
  readonly store: AdmissionStore;
  readonly maxPages: number;
  readonly pattern: RegExp | undefined;
  readonly now?: () => number;
}

export class PageAdmission {
  private readonly store: AdmissionStore;
  private readonly maxPages: number;
  private readonly pattern: RegExp | undefined;
  private readonly now: () => number;
  private counted = 0;
  private countedAt = Number.NEGATIVE_INFINITY;
  private admittedSince = 0;

  constructor(options: PageAdmissionOptions) {
    this.store = options.store;
    this.maxPages = options.maxPages;
    this.pattern = options.pattern;
    this.now = options.now ?? Date.now;
  }

  /**
   * True when the page has a count here: one of its slots is above zero (its slots are of its
   * current epoch, so that is its total above zero). Read from the slots, not the total: the
   * store keeps recently read pages' slots in memory (page-slot-cache.ts) and the view's answer
   * reads the same slots right after, where `count` was a SQLite read per anonymous view
   * (issue 19: ~5 % of a lone node's CPU per request).
   */
  exists(page: PageName): boolean {
    for (const slot of this.store.pageSlots(page)) if (slot.count > 0) return true;
    return false;
  }

  /** True when the page exists, or a view could create it by name (no PAGE_PATTERN, or it matches). */
  mayExist(page: PageName): boolean {
    return this.exists(page) || this.pattern === undefined || this.pattern.test(page);
  }

  /** True when the name matches PAGE_PATTERN (there is one and it matches). */
  matchesPattern(page: PageName): boolean {
    return this.pattern !== undefined && this.pattern.test(page);
  }

  /**
   * Why an anonymous view may not count `page`, or undefined when it may (the page exists, or
   * it may be created: then it is admitted, and counts towards MAX_PAGES from now on).
   * `ignorePattern`: for the one page the node itself shows at `/`.
   */
  refusal(page: PageName, options: { ignorePattern?: boolean } = {}): Refusal | undefined {
    if (this.exists(page)) return undefined;
    if (this.pattern !== undefined && options.ignorePattern !== true && !this.pattern.test(page)) return 'page_not_allowed';
    if (this.pages() >= this.maxPages) return 'too_many_pages';
    this.admittedSince++;
    return undefined;
  }

  /** The cluster's page count as this node knows it, at most PAGE_COUNT_REFRESH_MS old. */
  pages(): number {
    const now = this.now();
    if (now - this.countedAt >= PAGE_COUNT_REFRESH_MS) {
      this.counted = this.store.stats().pages;
      this.countedAt = now;
      this.admittedSince = 0;
    }
    return this.counted + this.admittedSince;
  }
}
