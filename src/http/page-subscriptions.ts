/**
 * Which live clients follow which page, and each page's message. The store's onChange fan-out
 * touches only the subscribers of the changed pages (page → clients index), so thousands of open
 * pages elsewhere cost nothing per commit; a page's message is built once per change and shared.
 * Everything here is kept for subscribed pages only, so it never outgrows the subscriptions.
 *
 * Fair to the event loop (issue 14: 1,000 sockets following the same 100 pages at interval=0 made
 * one 100-page POST cost 1.24 s of CPU, then ~360 ms with corked sockets): a change of a page is
 * encoded once, JSON and WebSocket frame (ws-frame.ts), into one Buffer every follower is sent as
 * it is; within one fan-out each touched client holds its frames, and at the end clients holding
 * the same run of frames are sent that run joined once (shared-runs.ts): one write per client per
 * fan-out, no per-client framing or copy. Session tokens do not split this: the shared message
 * carries the token of its own view of the page, and only a client whose token saw more than this
 * node holds gets a message of its own (`message`), until the node catches up.
 * Bounded memory: a page's message is cached only while two or more clients follow it (a page
 * only one client follows gains nothing from a cache, and 2,000 clients × 100 pages of their own
 * held 200,000 cached messages), and a page name is held once however many clients follow it.
 */
import { foldPageReplicas } from './replica-fold.js';
import type { PageName } from '../ids.js';
import type { LatencyProbe } from '../latency-probe.js';
import type { PageCount, Store } from '../store/store.js';
import type { Timers } from '../timers.js';
import { epochOf } from '../crdt/g-counter.js';
import { EMPTY_SESSION, mergeSeen, pageHash, remember, type Session, type SessionTokens } from './session-token.js';
import { SharedRuns } from './shared-runs.js';
import { textFrame } from './ws-frame.js';

export interface PageSubscriber {
  readonly pages: readonly PageName[];
  pageChanged(page: PageName, now: number): void;
  /** Hold writes until `uncork()`: the frames of one fan-out leave together. */
  cork(): void;
  /** The frames held since `cork()`, in order. */
  readonly held: readonly Buffer[];
  /** Write what was held, as `joined` when given (the same run joined once for several clients). */
  uncork(joined?: Buffer): void;
}

/** What the fan-out has cost, for tests and the bench. */
export interface FanOutStats {
  /** Page messages encoded (JSON and frame), over the index's life. */
  readonly pageFramesEncoded: number;
  /** Runs of frames joined once and written to two or more clients. */
  readonly runsShared: number;
}

export class PageSubscriptions<S extends PageSubscriber> {
  private readonly byPage = new Map<PageName, Set<S>>();
  private framesEncoded = 0;
  private runsShared = 0;
  /** page → its message (framed) as last built; dropped when the page changes. */
  private readonly messages = new Map<PageName, Buffer>();
  /** page → when this node last applied a change to it. */
  private readonly changedAt = new Map<PageName, number>();

  constructor(
    private readonly store: Pick<Store, 'count' | 'pageSlots'>,
    private readonly timers: Timers,
    private readonly sessions?: SessionTokens,
    /** The replica ids the cluster claims now, for folding long breakdowns (replica-fold.ts). */
    private readonly claimed: () => ReadonlySet<string> = () => new Set(),
    /** Stamps `feed` for sampled pages once their frames are written (bench diagnostics). */
    private readonly probe?: LatencyProbe,
  ) {}

  /** Distinct pages with at least one subscriber. */
  get size(): number {
    return this.byPage.size;
  }

  get stats(): FanOutStats {
    return { pageFramesEncoded: this.framesEncoded, runsShared: this.runsShared };
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
      // Clients holding the same run of frames share one joined Buffer; the others write theirs.
      const runs = new SharedRuns();
      const keys = new Map<S, string>();
      for (const subscriber of corked) keys.set(subscriber, runs.add(subscriber.held));
      for (const subscriber of corked) subscriber.uncork(runs.bytesOf(keys.get(subscriber) as string, subscriber.held));
      this.runsShared += runs.joined;
    }
    this.probe?.markAll('feed', changed);
  }

  /**
   * `{"type":"page","page","count","replicas":{replica: count},"at","session"}` as a WebSocket
   * text frame (ws-frame.ts), the page's state
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
    this.framesEncoded++;
    return textFrame(JSON.stringify({ type: 'page', page, count: merged.count, epoch: merged.epoch, replicas, at, ...(token !== undefined ? { session: token } : {}) }));
  }
}
