/**
 * Which live clients follow which page, and each page's message. The store's onChange fan-out
 * touches only the subscribers of the changed pages (page → clients index), so thousands of open
 * pages elsewhere cost nothing per commit; a page's message is built once per change and shared.
 * Everything here is kept for subscribed pages only, so it never outgrows the subscriptions.
 */
import type { PageName } from '../ids.js';
import type { PageCount, Store } from '../store/store.js';
import type { Timers } from '../timers.js';
import { epochOf } from '../crdt/g-counter.js';
import { EMPTY_SESSION, mergeSeen, pageHash, remember, type Session, type SessionTokens } from './session-token.js';

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
    private readonly sessions?: SessionTokens,
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
   * `{"type":"page","page","count","replicas":{replica: count},"at","session"}`, the page's state
   * read now: the store's totals only go up, so a client never sees an older count after a newer
   * one. `session` is the token of this view. A client whose token saw more of the page than this
   * node holds (another node's writes, a node restored from an old backup) gets its own message,
   * max-merged with the token (or of a reset this node has not seen yet); everyone else shares one.
   */
  message(page: PageName, session: Session = EMPTY_SESSION): Buffer {
    if (session.pages.length > 0 && session.pages.some((p) => p.hash === pageHash(page))) {
      const slots = this.store.pageSlots(page);
      const merged = mergeSeen(page, slots, session);
      // Its own message too when the token is of a reset this node has not seen yet.
      const epoch = slots[0] === undefined ? 0 : epochOf(slots[0]);
      if (merged.count > this.store.count(page) || merged.epoch > epoch) return this.build(page, session, merged);
    }
    let message = this.messages.get(page);
    if (message === undefined) {
      message = this.build(page, EMPTY_SESSION, mergeSeen(page, this.store.pageSlots(page), EMPTY_SESSION));
      // Cached only while someone listens: the cache never outgrows the subscriptions.
      if (this.byPage.has(page)) this.messages.set(page, message);
    }
    return message;
  }

  private build(page: PageName, session: Session, merged: ReturnType<typeof mergeSeen>): Buffer {
    const at = this.changedAt.get(page) ?? this.timers.now();
    const replicas = Object.fromEntries(merged.replicas);
    const token =
      this.sessions === undefined
        ? undefined
        : this.sessions.sign(remember(session, [{ page, count: merged.count, epoch: merged.epoch, replicas: merged.replicas }]));
    return Buffer.from(JSON.stringify({ type: 'page', page, count: merged.count, replicas, at, ...(token !== undefined ? { session: token } : {}) }), 'utf8');
  }
}
