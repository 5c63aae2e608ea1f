/**
 * Which live clients follow which page, and each page's message. The store's onChange fan-out
 * touches only the subscribers of the changed pages (page → clients index), so thousands of open
 * pages elsewhere cost nothing per commit; a page's message is built once per change and shared.
 * Everything here is kept for subscribed pages only, so it never outgrows the subscriptions.
 *
 * Fair to the event loop (issue 14: 1,000 sockets following the same 100 pages at interval=0 made
 * one 100-page POST cost 1.24 s of CPU): within one fan-out each touched client's socket is corked,
 * so its frames for every changed page leave in one write instead of one system call per frame.
 * Bounded memory: a page's message is cached only while two or more clients follow it (a page
 * only one client follows gains nothing from a cache, and 2,000 clients × 100 pages of their own
 * held 200,000 cached messages), and a page name is held once however many clients follow it.
 */
import { foldPageReplicas } from './replica-fold.js';
import type { PageName } from '../ids.js';
import type { PageCount, Store } from '../store/store.js';
import type { Timers } from '../timers.js';
import { epochOf } from '../crdt/g-counter.js';
import { EMPTY_SESSION, mergeSeen, pageHash, remember, type Session, type SessionTokens } from './session-token.js';

export interface PageSubscriber {
  readonly pages: readonly PageName[];
  pageChanged(page: PageName, now: number): void;
  /** Hold writes until `uncork()`: the frames of one fan-out leave together. */
  cork(): void;
  uncork(): void;
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
    /** The replica ids the cluster claims now, for folding long breakdowns (replica-fold.ts). */
    private readonly claimed: () => ReadonlySet<string> = () => new Set(),
  ) {}

  /** Distinct pages with at least one subscriber. */
  get size(): number {
    return this.byPage.size;
  }

  /**
   * The names to subscribe with, each replaced by the instance already held for that page (if
   * any), so a popular page's name is kept once, not once per client.
   */
  canonical(pages: readonly PageName[]): PageName[] {
    return pages.map((page) => {
      const subscribers = this.byPage.get(page);
      if (subscribers === undefined) return page;
      for (const subscriber of subscribers) {
        const held = subscriber.pages.find((p) => p === page);
        if (held !== undefined) return held;
      }
      return page;
    });
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
      } else if (subscribers !== undefined && subscribers.size < 2) {
        this.messages.delete(page);
      }
    }
  }

  /** The store committed changes to these pages: tell their subscribers. */
  changed(changed: readonly PageCount[]): void {
    const now = this.timers.now();
    // Every client this fan-out writes to, corked until the end (at most one entry per client).
    const corked = new Set<S>();
    try {
      for (const { page } of changed) {
        const subscribers = this.byPage.get(page);
        if (subscribers === undefined) continue;
        this.messages.delete(page);
        this.changedAt.set(page, now);
        for (const subscriber of subscribers) {
          if (!corked.has(subscriber)) {
            corked.add(subscriber);
            subscriber.cork();
          }
          subscriber.pageChanged(page, now);
        }
      }
    } finally {
      for (const subscriber of corked) subscriber.uncork();
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
      // Cached only while two or more listen: the cache never outgrows the shared subscriptions.
      if ((this.byPage.get(page)?.size ?? 0) >= 2) this.messages.set(page, message);
    }
    return message;
  }

  private build(page: PageName, session: Session, merged: ReturnType<typeof mergeSeen>): Buffer {
    // `at` is shown: wall time of the change (pacing uses the monotonic readings).
    const at = Math.round(this.timers.wallTime(this.changedAt.get(page) ?? this.timers.now()));
    // Shown folded past MAX_SHOWN_REPLICAS; the token keeps every slot.
    const replicas = foldPageReplicas(Object.fromEntries(merged.replicas), this.claimed);
    const token =
      this.sessions === undefined
        ? undefined
        : this.sessions.sign(remember(session, [{ page, count: merged.count, epoch: merged.epoch, replicas: merged.replicas }]));
    return Buffer.from(JSON.stringify({ type: 'page', page, count: merged.count, replicas, at, ...(token !== undefined ? { session: token } : {}) }), 'utf8');
  }
}
