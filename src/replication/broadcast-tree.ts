/**
 * Live deltas in bounded-degree mode: an epidemic broadcast tree (Plumtree) over the node's
 * active sessions. Each session is eager (deltas are pushed to it) or lazy (only announced, by
 * `ihave`). Every session starts eager, so the first deltas flood the active graph; a node that
 * receives a delta it already has tells that sender `prune` and both make the link lazy (while it
 * keeps more than MIN_EAGER eager links), which leaves a sparse graph of eager links. A node that hears `ihave` for a delta that has not come
 * within GRAFT_TIMEOUT_MS asks the announcer (`graft`): the announcer sends it and the link is eager
 * again, which repairs the tree when a peer fails.
 *
 * A delta is identified by its `(replica, after, upTo)` and passed on as it came: the originating
 * replica's slots and range, so a receiver checks a relayed delta exactly as one from its origin
 * (justified by its slots; advanced only over a contiguous range, docs/design.md invariant 1). The tree decides
 * only who gets a frame; what a frame may advance is the merge's business. Anti-entropy stays the
 * safety net: a delta no announcement or graft brings is filled by the next vector exchange.
 *
 * What is passed on: news. A first copy is news when it reaches past this node's vector entry of
 * its replica, or when its slots raise a page total this node holds (news by content, not by
 * range: a hostile relayer's forged `(R, a', b]` with `a' < a` and a lowered count moves the vector
 * to b first, and the genuine `(R, a, b]` must still go on, r18c #1). A first copy that is neither
 * (it raises nothing here) is passed on too while its sender's MAX_IDLE_RELAYS_PER_SECOND budget
 * lasts (an honest node that got the range by anti-entropy first still feeds its subtree), and
 * past it only merged (harmless). Another copy of a held id is passed on only when it raises a
 * counter over the copies taken. Otherwise a peer with the secret could make every node send
 * N × degree frames for each frame it sends (justified deltas under ids nobody saw, or copies
 * differing in a byte), and flush the seen ids and the cache with them. Series slots (hours, days,
 * unique-visitor registers) are not compared with the store: an honest commit raising one raises
 * its page's total too; a copy raising only series slots counts as raising nothing.
 *
 * Bounds: MAX_SEEN_DELTAS ids remembered, MAX_ANNOUNCED_RANGES queued announcements per lazy session, MAX_CACHED_DELTA_BYTES of encoded deltas kept for
 * grafts, MAX_MISSING_PER_PEER announced ids waited for per announcer, MAX_GRAFTED_PER_SECOND deltas sent per peer on
 * its grafts (a peer cannot make this node resend its whole cache in a loop),
 * MAX_IDLE_RELAYS_PER_SECOND first copies raising nothing passed on per sender.
 *
 * Over 300 lines: about 70 are this header and the tunables with their reasons; the rest is one
 * class, whose eager and lazy sets, missing deltas and graft budget are changed together by every
 * message.
 */
import { createHash } from 'node:crypto';
import type { SeqRange } from '../crdt/version-vector.js';
import { epochOf } from '../crdt/g-counter.js';
import { decodeFrame, encodeMessage } from '../protocol/codec.js';
import { MAX_ANNOUNCED_RANGES, type Message } from '../protocol/messages.js';
import type { TimerHandle, Timers } from '../timers.js';
import type { PeerSession } from './peer-session.js';

/** Wait after the first announcement of a delta that has not arrived before grafting its announcer. */
export const GRAFT_TIMEOUT_MS = 400;
/** Wait before grafting the next announcer when the first graft brought nothing. */
export const SECOND_GRAFT_TIMEOUT_MS = 200;
/**
 * Eager links a node keeps however many duplicates come over them (it neither prunes below it nor
 * lets a peer prune it below it): a pure tree's paths are up to twice its depth, and a tree shaped
 * by the first deltas' races is deep (at 100 simulated nodes, 50 ms links: p50 549 ms to every
 * node with 3, 448 ms with 4 only on the pruning side). Four make a sparse random graph of a few
 * hops' diameter, for a few duplicate frames per delta per node.
 */
export const MIN_EAGER = 4;
export const MAX_SEEN_DELTAS = 16_384;
export const MAX_CACHED_DELTA_BYTES = 4 * 1024 * 1024;
/**
 * Announced ids waited for at most per announcer (the peer whose `ihave` first named them): a peer
 * announcing bogus ranges fills only its own share and the grafts to others go on. In all at
 * most MAX_MISSING_PER_PEER × the sessions held (≤ 13 at 1,000 nodes).
 */
export const MAX_MISSING_PER_PEER = 1_024;
export const MAX_GRAFTED_PER_SECOND = 512;
/**
 * First copies raising nothing here (inside the vector, no page total raised) passed on per
 * sender and second: enough for the copies an honest tree brings after anti-entropy was faster,
 * while a flood of them costs at most this many relays per second per session.
 */
export const MAX_IDLE_RELAYS_PER_SECOND = 32;
/** Held ids whose copies' maxima are kept at most (only ids another copy of which came: rare unless a peer forges). */
export const MAX_COPY_MAXIMA = 1_024;
/**
 * Announcements to a lazy session wait this long and go as one `ihave` (Plumtree's lazy queue):
 * a burst of deltas costs each lazy link one frame per window, not one per delta (at 300
 * simulated nodes each writing at once, 200,000 of the 540,000 frames in flight were
 * single-range `ihave`s; the rest, the eager pushes, stay). Only repairs wait for them (a graft
 * starts GRAFT_TIMEOUT_MS after the first announcement), so the window costs a healthy tree
 * nothing.
 */
export const ANNOUNCE_WINDOW_MS = 50;

type DeltaMessage = Extract<Message, { type: 'delta' }>;

export interface BroadcastTreeOptions {
  readonly timers: Timers;
  /** Sends a control message (`ihave`, `graft`, `prune`) to a session, guarded. */
  readonly send: (session: PeerSession, message: Message) => void;
  /** Sends an encoded delta to a session (skipped when its send buffer is over the bound), guarded. */
  readonly sendDelta: (session: PeerSession, frame: Uint8Array, range: SeqRange) => void;
  /** This node's version vector entry for `replica` (a delta up to it is no news by range); default 0. */
  readonly heldUpTo?: (replica: SeqRange['replica']) => number;
  /** Whether merging the delta's slots would raise a page total this node holds (news by content); default: no. */
  readonly raisesHeld?: (message: DeltaMessage) => boolean;
  /**
   * Test only, a deliberately broken suppression: the id is recorded before it is checked, so the
   * first copy of every delta is taken for a duplicate (dropped, its link pruned), and so is
   * every later one. The property tests must catch it.
   */
  readonly dropFirstDelivery?: boolean;
}

interface Missing {
  readonly range: SeqRange;
  /** The first announcer, whose share of MAX_MISSING_PER_PEER the entry takes. */
  readonly by: PeerSession;
  readonly announcers: PeerSession[];
  timer: TimerHandle | undefined;
}

export function deltaId(range: SeqRange): string {
  return `${range.replica}/${range.after}/${range.upTo}`;
}

function counterOf(slot: DeltaMessage['slots'][number]): string {
  return `${slot.page}\u0000${slot.kind ?? 0}\u0000${slot.t ?? 0}`;
}

function copyKey(id: string, frame: Uint8Array): string {
  return `${id}/${createHash('sha256').update(frame).digest('base64')}`;
}

export class BroadcastTree {
  private readonly eager = new Set<PeerSession>();
  private readonly lazy = new Set<PeerSession>();
  /** Ids of deltas this node has (sent or received), oldest first. */
  private readonly seen = new Set<string>();
  /** Encoded deltas for grafts, oldest first, MAX_CACHED_DELTA_BYTES in all. */
  private readonly cache = new Map<string, Uint8Array>();
  private cachedBytes = 0;
  private readonly missing = new Map<string, Missing>();
  /** Per first announcer, its entries in `missing`. */
  private readonly missingBy = new Map<PeerSession, number>();
  /** Per session, deltas sent on its grafts in the current second. */
  private readonly graftBudget = new WeakMap<PeerSession, { second: number; count: number }>();

  /** Per sender, first copies raising nothing passed on in the current second. */
  private readonly idleBudget = new WeakMap<PeerSession, { second: number; count: number }>();

  /** Per held id another copy of which came: the max per counter of the copies taken (see `raises`), oldest first. */
  private readonly copyMax = new Map<string, Map<string, { readonly epoch: number; readonly count: number }>>();

  /** Copies taken (`id/sha-256 of the frame`), oldest first: a copy seen before is a duplicate. */
  private readonly copies = new Set<string>();

  /** Per lazy session, ranges announced in the current window (at most MAX_ANNOUNCED_RANGES: a full batch goes at once). */
  private readonly announcing = new Map<PeerSession, SeqRange[]>();
  private announceTimer: TimerHandle | undefined;

  /**
   * Counters for the bench: deltas taken, duplicates dropped, grafts sent, other copies of a held
   * id taken, and deltas taken but not passed on (no news: see the file comment).
   */
  readonly counts = { received: 0, duplicates: 0, grafts: 0, otherCopies: 0, notRelayed: 0 };

  constructor(private readonly options: BroadcastTreeOptions) {}

  /** Sessions deltas are pushed to, and sessions they are announced to (status and tests). */
  links(): { readonly eager: number; readonly lazy: number } {
    return { eager: this.eager.size, lazy: this.lazy.size };
  }

  opened(session: PeerSession): void {
    this.lazy.delete(session);
    this.eager.add(session);
  }

  closed(session: PeerSession): void {
    this.eager.delete(session);
    this.lazy.delete(session);
    this.announcing.delete(session);
    for (const entry of this.missing.values()) {
      const at = entry.announcers.indexOf(session);
      if (at >= 0) entry.announcers.splice(at, 1);
    }
  }

  /** A local commit's delta: pushed to the eager sessions, announced to the lazy ones. */
  broadcast(message: DeltaMessage): void {
    const frame = encodeMessage(message);
    this.took(copyKey(deltaId(message.range), frame));
    this.remember(message.range, frame);
    this.passOn(message.range, frame, undefined);
  }

  /**
   * A delta from `from` (as it came: `relay` of the session's event). Returns false when it is a
   * duplicate, a copy byte for byte of one this node already took: the caller drops it (the link
   * is pruned here). A copy of a held id whose bytes differ is not a duplicate: any relayer can
   * send a bogus copy under a genuine delta's id first, and dropping the genuine one then would
   * lose its increments for good (the vector says the range is held, so nothing resends it). It
   * is merged (merge is a max: a second copy is harmless) and passed on once when it raises a
   * counter over the copies taken (the cache keeps their max), so it reaches the nodes the bogus
   * one reached; it does not prune. A first copy is passed on when it is news (past the vector,
   * or raising a held page total), else within the sender's MAX_IDLE_RELAYS_PER_SECOND (see the
   * file comment). Bound: MAX_SEEN_DELTAS copies remembered, as ids are.
   */
  received(from: PeerSession, message: DeltaMessage): boolean {
    const id = deltaId(message.range);
    const frame = encodeMessage(message);
    const copy = copyKey(id, frame);
    if (this.options.dropFirstDelivery === true) this.seen.add(id);
    if (this.options.dropFirstDelivery === true ? this.seen.has(id) : this.copies.has(copy)) {
      this.counts.duplicates += 1;
      if (this.eager.size > MIN_EAGER && this.eager.delete(from)) {
        this.lazy.add(from);
        this.options.send(from, { type: 'prune' });
      }
      return false;
    }
    this.took(copy);
    if (this.seen.has(id)) {
      this.counts.otherCopies += 1;
      if (this.raises(id, message)) this.passOn(message.range, frame, from);
      else this.counts.notRelayed += 1;
      return true;
    }
    this.counts.received += 1;
    const news = message.range.upTo > (this.options.heldUpTo?.(message.range.replica) ?? 0) || this.options.raisesHeld?.(message) === true || this.idleRelay(from);
    this.remember(message.range, frame);
    const waiting = this.missing.get(id);
    if (waiting !== undefined) {
      if (waiting.timer !== undefined) this.options.timers.clearTimeout(waiting.timer);
      this.forget(id);
    }
    if (!this.eager.has(from)) {
      this.lazy.delete(from);
      this.eager.add(from);
    }
    if (news) this.passOn(message.range, frame, from);
    else this.counts.notRelayed += 1;
    return true;
  }

  /**
   * Whether another copy of held id `id` raises a counter over the copies of it taken: their
   * max per counter is kept (in `copyMax`, begun from the cached first copy) and raised by this
   * one. An id no longer cached: no (its copies are old news; anti-entropy is the net).
   */
  private raises(id: string, message: DeltaMessage): boolean {
    let max = this.copyMax.get(id);
    if (max === undefined) {
      const cached = this.cache.get(id);
      const first = cached === undefined ? undefined : decodeFrame(cached);
      if (first?.type !== 'delta') return false;
      max = new Map(first.slots.map((slot) => [counterOf(slot), { epoch: epochOf(slot), count: slot.count }]));
      this.copyMax.set(id, max);
      if (this.copyMax.size > MAX_COPY_MAXIMA) this.copyMax.delete(this.copyMax.keys().next().value!);
    }
    let raised = false;
    for (const slot of message.slots) {
      const key = counterOf(slot);
      const before = max.get(key);
      const epoch = epochOf(slot);
      if (before === undefined || epoch > before.epoch || (epoch === before.epoch && slot.count > before.count)) {
        max.set(key, { epoch, count: slot.count });
        raised = true;
      }
    }
    return raised;
  }

  /** Takes one of `from`'s MAX_IDLE_RELAYS_PER_SECOND for this second; false when none is left. */
  private idleRelay(from: PeerSession): boolean {
    const second = Math.floor(this.options.timers.now() / 1000);
    let budget = this.idleBudget.get(from);
    if (budget === undefined || budget.second !== second) {
      budget = { second, count: 0 };
      this.idleBudget.set(from, budget);
    }
    if (budget.count >= MAX_IDLE_RELAYS_PER_SECOND) return false;
    budget.count += 1;
    return true;
  }

  /** A delta that arrived outside the tree (too big for one frame, sent as a round): nothing to wait for any more. */
  heard(range: SeqRange): void {
    const id = deltaId(range);
    this.seen.add(id);
    const waiting = this.missing.get(id);
    if (waiting?.timer !== undefined) this.options.timers.clearTimeout(waiting.timer);
    this.forget(id);
  }

  /** `ihave` from a lazy peer: wait a while for the deltas we lack, then graft it. */
  announced(from: PeerSession, ranges: readonly SeqRange[]): void {
    for (const range of ranges) {
      const id = deltaId(range);
      if (this.seen.has(id)) continue;
      const entry = this.missing.get(id);
      if (entry !== undefined) {
        if (!entry.announcers.includes(from)) entry.announcers.push(from);
        continue;
      }
      const held = this.missingBy.get(from) ?? 0;
      if (held >= MAX_MISSING_PER_PEER) continue;
      this.missingBy.set(from, held + 1);
      const created: Missing = { range, by: from, announcers: [from], timer: undefined };
      created.timer = this.options.timers.setTimeout(() => this.graftNext(id), GRAFT_TIMEOUT_MS);
      this.missing.set(id, created);
    }
  }

  /** `graft` from a peer: the link is eager again, and the deltas it names that we still hold go to it. */
  graftedBy(from: PeerSession, ranges: readonly SeqRange[]): void {
    this.lazy.delete(from);
    this.eager.add(from);
    const now = this.options.timers.now();
    const second = Math.floor(now / 1000);
    let budget = this.graftBudget.get(from);
    if (budget === undefined || budget.second !== second) {
      budget = { second, count: 0 };
      this.graftBudget.set(from, budget);
    }
    for (const range of ranges) {
      const frame = this.cache.get(deltaId(range));
      if (frame === undefined || budget.count >= MAX_GRAFTED_PER_SECOND) continue;
      budget.count += 1;
      this.options.sendDelta(from, frame, range);
    }
  }

  /**
   * `prune` from a peer: announce to it from now on — unless this node is down to MIN_EAGER eager
   * links, which it keeps (the peer then drops what comes over it as a duplicate, and sends no
   * second prune: the link is lazy on its side).
   */
  pruned(from: PeerSession): void {
    if (this.eager.size > MIN_EAGER && this.eager.delete(from)) this.lazy.add(from);
  }

  /** Clears every timer. */
  stop(): void {
    if (this.announceTimer !== undefined) this.options.timers.clearTimeout(this.announceTimer);
    this.announceTimer = undefined;
    this.announcing.clear();
    for (const entry of this.missing.values()) if (entry.timer !== undefined) this.options.timers.clearTimeout(entry.timer);
    this.missing.clear();
    this.missingBy.clear();
  }

  private graftNext(id: string): void {
    const entry = this.missing.get(id);
    if (entry === undefined) return;
    entry.timer = undefined;
    let announcer: PeerSession | undefined;
    while (announcer === undefined && entry.announcers.length > 0) {
      const next = entry.announcers.shift()!;
      if (next.phase === 'open') announcer = next;
    }
    if (announcer === undefined || this.seen.has(id)) {
      // Nobody left to ask: anti-entropy fills it.
      this.forget(id);
      return;
    }
    this.lazy.delete(announcer);
    this.eager.add(announcer);
    this.counts.grafts += 1;
    this.options.send(announcer, { type: 'graft', ranges: [entry.range] });
    if (entry.announcers.length === 0) this.forget(id);
    else entry.timer = this.options.timers.setTimeout(() => this.graftNext(id), SECOND_GRAFT_TIMEOUT_MS);
  }

  private forget(id: string): void {
    const entry = this.missing.get(id);
    if (entry === undefined) return;
    this.missing.delete(id);
    const held = (this.missingBy.get(entry.by) ?? 1) - 1;
    if (held > 0) this.missingBy.set(entry.by, held);
    else this.missingBy.delete(entry.by);
  }

  private passOn(range: SeqRange, frame: Uint8Array, from: PeerSession | undefined): void {
    for (const session of [...this.eager]) if (session !== from) this.options.sendDelta(session, frame, range);
    for (const session of [...this.lazy]) if (session !== from) this.announce(session, range);
  }

  /** Queues `range` for `session`'s next `ihave` (see ANNOUNCE_WINDOW_MS); a full batch goes at once. */
  private announce(session: PeerSession, range: SeqRange): void {
    let ranges = this.announcing.get(session);
    if (ranges === undefined) {
      ranges = [];
      this.announcing.set(session, ranges);
    }
    if (ranges.some((r) => r.replica === range.replica && r.after === range.after && r.upTo === range.upTo)) return;
    ranges.push(range);
    if (ranges.length >= MAX_ANNOUNCED_RANGES) {
      this.announcing.delete(session);
      this.options.send(session, { type: 'ihave', ranges });
      return;
    }
    this.announceTimer ??= this.options.timers.setTimeout(() => this.flushAnnouncements(), ANNOUNCE_WINDOW_MS);
  }

  /** Sends every queued `ihave` to the sessions still open (one made eager since is told too: it ignores ids it holds). */
  private flushAnnouncements(): void {
    this.announceTimer = undefined;
    const batches = [...this.announcing];
    this.announcing.clear();
    for (const [session, ranges] of batches) if (session.phase === 'open') this.options.send(session, { type: 'ihave', ranges });
  }

  private took(copy: string): void {
    this.copies.add(copy);
    if (this.copies.size > MAX_SEEN_DELTAS) this.copies.delete(this.copies.values().next().value!);
  }

  private remember(range: SeqRange, frame: Uint8Array): void {
    const id = deltaId(range);
    this.seen.add(id);
    if (this.seen.size > MAX_SEEN_DELTAS) this.seen.delete(this.seen.values().next().value!);
    if (frame.byteLength > MAX_CACHED_DELTA_BYTES || this.cache.has(id)) return;
    this.cache.set(id, frame);
    this.cachedBytes += frame.byteLength;
    while (this.cachedBytes > MAX_CACHED_DELTA_BYTES) {
      const [oldest, bytes] = this.cache.entries().next().value!;
      this.cache.delete(oldest);
      this.cachedBytes -= bytes.byteLength;
    }
  }
}
