/**
 * Which live clients follow which page, and each page's message. The store's onChange fan-out
 * touches only the subscribers of the changed pages (page → clients index), so thousands of open
 * pages elsewhere cost nothing per commit; a page's message is built once per change and shared.
 * Everything here is kept for subscribed pages only, so it never outgrows the subscriptions.
 */
import type { PageName } from '../ids.js';
import type { PageCount, Store } from '../store/store.js';
import type { Timers } from '../timers.js';

export interface PageSubscriber {
  readonly pages: readonly PageName[];
  pageChanged(page: PageName, now: number): void;
}

export class PageSubscriptions<S extends PageSubscriber> {
  private readonly byPage = new Map<PageName, Set<S>>();
  /** page → its message as last built; dropped when the page changes. */
  private readonly messages = new Map<PageName, Buffer>();
  /** page → when this node last applied a change to it. */
  private readonly changedAt = new Map<PageName, number>();

  constructor(
    private readonly store: Pick<Store, 'count' | 'pageSlots'>,
    private readonly timers: Timers,
  ) {}

  /** Distinct pages with at least one subscriber. */
  get size(): number {
    return this.byPage.size;
  }

  add(subscriber: S): void {
    for (const page of subscriber.pages) {
      let subscribers = this.byPage.get(page);
      if (subscribers === undefined) this.byPage.set(page, (subscribers = new Set()));
      subscribers.add(subscriber);
    }
  }

  remove(subscriber: S): void {
    for (const page of subscriber.pages) {
      const subscribers = this.byPage.get(page);
      subscribers?.delete(subscriber);
      if (subscribers !== undefined && subscribers.size === 0) {
        this.byPage.delete(page);
        this.messages.delete(page);
        this.changedAt.delete(page);
      }
    }
  }

  /** The store committed changes to these pages: tell their subscribers. */
  changed(changed: readonly PageCount[]): void {
    const now = this.timers.now();
    for (const { page } of changed) {
      const subscribers = this.byPage.get(page);
      if (subscribers === undefined) continue;
      this.messages.delete(page);
      this.changedAt.set(page, now);
      for (const subscriber of subscribers) subscriber.pageChanged(page, now);
    }
  }

  /**
   * `{"type":"page","page","count","replicas":{replica: count},"at"}`, the page's state read now:
   * the store's totals only go up, so a client never sees an older count after a newer one.
   */
  message(page: PageName): Buffer {
    let message = this.messages.get(page);
    if (message === undefined) {
      const replicas: Record<string, number> = {};
      for (const slot of this.store.pageSlots(page)) replicas[slot.replica] = slot.count;
      const at = this.changedAt.get(page) ?? this.timers.now();
      message = Buffer.from(JSON.stringify({ type: 'page', page, count: this.store.count(page), replicas, at }), 'utf8');
      // Cached only while someone listens: the cache never outgrows the subscriptions.
      if (this.byPage.has(page)) this.messages.set(page, message);
    }
    return message;
  }
}
