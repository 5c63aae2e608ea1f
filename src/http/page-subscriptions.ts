/**
 * Which live clients follow which page, and each page's message. The store's onChange fan-out
 * touches only the subscribers of the changed pages (page → clients index), so thousands of open
 * pages elsewhere cost nothing per commit; a page's message is built once per change and shared.
 * Everything here is kept for subscribed pages only, so it never outgrows the subscriptions.
 *
 * Encoded once (issue 14: 1,000 sockets following the same 100 pages at interval=0 made one
 * 100-page POST cost 1.24 s of CPU, then ~360 ms with corked sockets): a change of a page is
 * encoded once, JSON and WebSocket frame (ws-frame.ts), into one Buffer every follower is sent as
 * it is; within one fan-out each touched client holds its frames, and at the end clients holding
 * the same run of frames are sent that run joined once (shared-runs.ts): one write per client per
 * fan-out, no per-client framing or copy. Session tokens do not split this: the shared message
 * carries the token of its own view of the page, and only a client whose token saw more than this
 * node holds gets a message of its own (`message`), until the node catches up.
 *
 * Fair to the event loop: a fan-out runs in slices, one per loop turn, each of at most
 * FANOUT_SLICE_DELIVERIES deliveries (one page to one follower) while the clients' frames are
 * gathered, then at most FANOUT_SLICE_BYTES written (whole clients) while they are written; the
 * first slice runs in the commit's own turn, so a small fan-out is done at once. Changes that
 * arrive while a fan-out runs are coalesced: each page is noted once (`pending`, the latest
 * state wins: messages are read when built) and the next fan-out starts when this one is done.
 * Bound on pending work: one fan-out in progress (its pages, its touched clients, their held
 * frames — each client holds at most its buffer bound plus one message, see live-client.ts) plus
 * one set of pending pages, each at most once: never more than the subscribed pages, whatever the
 * commit rate.
 *
 * Bounded memory: a page's message is cached only while two or more clients follow it (a page
 * only one client follows gains nothing from a cache, and 2,000 clients × 100 pages of their own
 * held 200,000 cached messages), and a page name is held once however many clients follow it.
 *
 * A little over 300 lines as one class: the page → clients index and the sliced fan-out work on the
 * same per-client held frames, which a split would have to expose.
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
  /** Fan-outs run, and the loop turns (slices) they took, since start. */
  readonly fanOuts: number;
  readonly fanOutSlices: number;
  /** Changes of a page already waiting for the next fan-out, folded into it (latest wins). */
  readonly changesCoalesced: number;
  /** Pages waiting for the next fan-out now. */
  readonly pendingPages: number;
}

/** Deliveries (one changed page to one follower) gathered per loop turn, at most. */
export const FANOUT_SLICE_DELIVERIES = 2_000;
/** Bytes written to clients per loop turn, at most (a client's run is never split, so one client may pass it). */
export const FANOUT_SLICE_BYTES = 1024 * 1024;

export interface FanOutOptions {
  readonly sliceDeliveries?: number;
  readonly sliceBytes?: number;
  /** A slice threw: its fan-out was abandoned (held frames written), the next one still runs. */
  readonly onError?: (error: unknown) => void;
}

/** One fan-out in progress: its pages, where it stands, and the clients it corked (in order). */
interface FanOut<S> {
  readonly pages: readonly PageName[];
  pageIndex: number;
  followers: Iterator<S> | undefined;
  readonly touched: Set<S>;
  readonly corked: S[];
  written: number;
}

export class PageSubscriptions<S extends PageSubscriber> {
  private readonly byPage = new Map<PageName, Set<S>>();
  private framesEncoded = 0;
  private runsShared = 0;
  /** page → its message (framed) as last built; dropped when the page changes. */
  private readonly messages = new Map<PageName, Buffer>();
  /** page → when this node last applied a change to it. */
  private readonly changedAt = new Map<PageName, number>();
  /** Pages changed since the running fan-out took its pages, each once (they go in the next). */
  private readonly pending = new Set<PageName>();
  private fanOut: FanOut<S> | undefined;
  /** True while a slice is scheduled or running (no second pump). */
  private pumping = false;
  private stopped = false;
  private fanOuts = 0;
  private slices = 0;
  private coalesced = 0;
  private readonly sliceDeliveries: number;
  private readonly sliceBytes: number;

  constructor(
    private readonly store: Pick<Store, 'count' | 'pageSlots'>,
    private readonly timers: Timers,
    private readonly sessions?: SessionTokens,
    /** The replica ids the cluster claims now, for folding long breakdowns (replica-fold.ts). */
    private readonly claimed: () => ReadonlySet<string> = () => new Set(),
    /** Stamps `feed` for sampled pages once their frames are written (bench diagnostics). */
    private readonly probe?: LatencyProbe,
    private readonly fanOutOptions: FanOutOptions = {},
  ) {
    this.sliceDeliveries = fanOutOptions.sliceDeliveries ?? FANOUT_SLICE_DELIVERIES;
    this.sliceBytes = fanOutOptions.sliceBytes ?? FANOUT_SLICE_BYTES;
  }

  /** Distinct pages with at least one subscriber. */
  get size(): number {
    return this.byPage.size;
  }

  get stats(): FanOutStats {
    return {
      pageFramesEncoded: this.framesEncoded,
      runsShared: this.runsShared,
      fanOuts: this.fanOuts,
      fanOutSlices: this.slices,
      changesCoalesced: this.coalesced,
      pendingPages: this.pending.size,
    };
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

  /**
   * The store committed changes to these pages: their subscribers are told, in the next fan-out
   * (this one's first slice runs now, unless a fan-out is already under way).
   */
  changed(changed: readonly PageCount[]): void {
    if (this.stopped) return;
    const now = this.timers.now();
    for (const { page } of changed) {
      if (!this.byPage.has(page)) continue;
      // Dropped at once, so a message built from now on (by any fan-out) reads this change.
      this.messages.delete(page);
      this.changedAt.set(page, now);
      if (this.pending.has(page)) this.coalesced++;
      else this.pending.add(page);
    }
    if (!this.pumping && this.pending.size > 0) this.pump();
  }

  /** Runs fan-out slices until none is left; each further slice in a later loop turn. */
  private pump(): void {
    this.pumping = true;
    let more: boolean;
    try {
      more = this.slice();
    } catch (error) {
      this.abandon();
      more = this.pending.size > 0;
      this.fanOutOptions.onError?.(error);
    }
    if (more && !this.stopped) {
      void this.timers.yield().then(() => this.pump());
    } else {
      this.pumping = false;
    }
  }

  /** One loop turn of fan-out work; true while some is left. */
  private slice(): boolean {
    if (this.fanOut === undefined) {
      if (this.pending.size === 0) return false;
      this.fanOut = { pages: [...this.pending], pageIndex: 0, followers: undefined, touched: new Set(), corked: [], written: 0 };
      this.pending.clear();
      this.fanOuts++;
    }
    this.slices++;
    const fanOut = this.fanOut;
    const now = this.timers.now();
    // Gathering: each follower of each page is told, its frames held until the writing.
    let deliveries = 0;
    while (fanOut.pageIndex < fanOut.pages.length) {
      const page = fanOut.pages[fanOut.pageIndex] as PageName;
      fanOut.followers ??= (this.byPage.get(page) ?? new Set<S>()).values();
      for (let next = fanOut.followers.next(); next.done !== true; next = fanOut.followers.next()) {
        const subscriber = next.value;
        if (!fanOut.touched.has(subscriber)) {
          fanOut.touched.add(subscriber);
          fanOut.corked.push(subscriber);
          subscriber.cork();
        }
        subscriber.pageChanged(page, now);
        if (++deliveries >= this.sliceDeliveries) return true;
      }
      fanOut.followers = undefined;
      fanOut.pageIndex++;
    }
    // Writing: whole clients, up to the byte budget; those holding the same run share one Buffer.
    const from = fanOut.written;
    let bytes = 0;
    while (fanOut.written < fanOut.corked.length && bytes < this.sliceBytes) {
      for (const frame of (fanOut.corked[fanOut.written] as S).held) bytes += frame.length;
      fanOut.written++;
    }
    this.uncork(fanOut.corked.slice(from, fanOut.written));
    if (fanOut.written < fanOut.corked.length) return true;
    this.fanOut = undefined;
    this.probe?.markAll('feed', fanOut.pages.map((page) => ({ page })));
    // The next fan-out (changes that came in meanwhile) starts in the next turn.
    return this.pending.size > 0;
  }

  /** Writes what `subscribers` hold, one write each: the same run joined once for all holding it. */
  private uncork(subscribers: readonly S[]): void {
    const runs = new SharedRuns();
    const keys = subscribers.map((subscriber) => runs.add(subscriber.held));
    subscribers.forEach((subscriber, i) => subscriber.uncork(runs.bytesOf(keys[i] as string, subscriber.held)));
    this.runsShared += runs.joined;
  }

  /** A slice failed: what its clients hold is written (none stays corked), the fan-out is dropped. */
  private abandon(): void {
    const fanOut = this.fanOut;
    this.fanOut = undefined;
    if (fanOut === undefined) return;
    for (const subscriber of fanOut.corked.slice(fanOut.written)) {
      try {
        subscriber.uncork();
      } catch {
        // Already failing: the rest are still uncorked.
      }
    }
  }

  /** No more fan-outs: the one under way is dropped (the feed is closing its clients). */
  stop(): void {
    this.stopped = true;
    this.pending.clear();
    this.abandon();
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
