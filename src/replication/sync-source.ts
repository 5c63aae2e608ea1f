/**
 * One copy on join: which peers get this node's version vector while it catches up. A peer
 * answers our vector with every slot it holds beyond it, so a node that starts empty (or behind)
 * and sends its vector to all N peers at once is sent the state N times. Instead, while catching
 * up, the vector goes to **one source** at a time; the other peers get it only once we hold what
 * they advertised (their answers are then only what the source lacked), or when catching up ends.
 *
 * - Catching up starts with the node, and again whenever its last open session closed (a node cut
 *   off from every peer comes back behind).
 * - The first session to open becomes the source. A peer whose own vector (sent at its open) we
 *   already dominate gets ours at once: it can only send what it commits meanwhile.
 * - The source is done once our vector dominates the one it advertised (checked when it arrives
 *   and after every merged round), or once a whole round of its answer was merged, justified or
 *   not (only the justified ranges moved our vector; what is left, the next source sends). Then a waiting peer still ahead of us, picked at random, is the next source;
 *   when none is ahead, every waiting peer gets our vector and catching up ends.
 * - A source that closes, sends no frame of its answer for SOURCE_STALL_MS (while we are not
 *   merging or holding its socket paused), or is not done within SOURCE_DEADLINE_MS — it died,
 *   withholds, trickles, or its `covered` lied — is replaced by a waiting peer. After
 *   MAX_SYNC_SOURCES sources, or with no peer left to ask, catching up ends; and it ends at the
 *   latest CATCH_UP_BOUND_MS after it began. So no peer can keep this node from asking the others
 *   for longer than CATCH_UP_BOUND_MS (plus one SOURCE_CHECK_MS).
 *
 * Nothing here changes what goes on the wire or what a receiver checks: a node may send its
 * vector when it likes (PROTOCOL.md §5), and every answer is checked as before. Live deltas and
 * our answers to the peers' vectors are never held back. Memory: one source's answer is in flight
 * towards us instead of N (each bounded by the sender's buffer bound and our merge queue), and
 * per waiting session its advertised vector, dropped when catching up ends.
 */
import type { ReplicaId } from '../ids.js';
import type { Log } from '../log.js';
import type { TimerHandle, Timers } from '../timers.js';
import type { VersionVector } from '../crdt/version-vector.js';
import type { PeerSession } from './peer-session.js';

/** A source that sent no frame of its answer for this long (and is not held up by us) is replaced. */
export const SOURCE_STALL_MS = 2_000;
/** A source not done this long after it was asked is replaced (one that trickles its answer). */
export const SOURCE_DEADLINE_MS = 15_000;
/** Sources asked one after the other before every peer is asked at once. */
export const MAX_SYNC_SOURCES = 3;
/**
 * Catching up one source at a time ends at most this long after it began: every waiting peer is
 * then asked. Half the start-up gate's wait (STARTUP_SYNC_TIMEOUT_MS, 5 s, catch-up.ts), so a
 * source that trickles its answer (each frame within SOURCE_STALL_MS) cannot keep the honest peers
 * unasked until the gate opens on an old or empty copy (review F5). A large state still arriving
 * from the source then costs the others' answers for what is left, as before one copy on join.
 */
export const CATCH_UP_BOUND_MS = 2_500;
/** How often the source's progress is looked at. */
export const SOURCE_CHECK_MS = 250;

export interface SyncSourceOptions {
  readonly timers: Timers;
  readonly random: () => number;
  readonly log: Log;
  readonly localVv: () => VersionVector;
  readonly localReplica: () => ReplicaId;
  /** The open sessions, one per peer. */
  readonly openSessions: () => Iterable<PeerSession>;
  /** The session kept for a peer (after the duplicate rule), open or not. */
  readonly sessionOf: (replica: ReplicaId) => PeerSession | undefined;
  /** Sends our version vector to the session (guarded by the caller). */
  readonly sendVv: (session: PeerSession) => void;
  /** True while the source's answer is held up on our side (its socket paused, merges queued). */
  readonly holdingUp: (session: PeerSession) => boolean;
  readonly stallMs?: number;
  readonly deadlineMs?: number;
  readonly maxSources?: number;
  readonly boundMs?: number;
}

interface Source {
  readonly session: PeerSession;
  readonly askedAt: number;
  progressAt: number;
}

export class SyncSource {
  private catching = true;
  private source: Source | undefined;
  private sourcesAsked = 0;
  /** Sessions our vector is held back from. */
  private readonly waiting = new Set<PeerSession>();
  /** Sessions sent our vector since catching up began. */
  private asked = new WeakSet<PeerSession>();
  /** The vector each session advertised, while catching up. */
  private advertised = new WeakMap<PeerSession, VersionVector>();
  private timer: TimerHandle | undefined;
  private stopped = false;
  private readonly stallMs: number;
  private readonly deadlineMs: number;
  private readonly maxSources: number;
  private readonly boundMs: number;
  /** When catching up (re)began. */
  private catchingSince: number;

  constructor(private readonly options: SyncSourceOptions) {
    this.catchingSince = options.timers.now();
    this.boundMs = options.boundMs ?? CATCH_UP_BOUND_MS;
    this.stallMs = options.stallMs ?? SOURCE_STALL_MS;
    this.deadlineMs = options.deadlineMs ?? SOURCE_DEADLINE_MS;
    this.maxSources = options.maxSources ?? MAX_SYNC_SOURCES;
  }

  /** True while this node asks one source at a time (anti-entropy waits meanwhile). */
  get catchingUp(): boolean {
    return this.catching;
  }

  /** The peer being caught up from, if any. */
  get current(): ReplicaId | undefined {
    return this.source?.session.peer?.replica;
  }

  /** A session opened: our vector goes now, or once the source is done. */
  opened(session: PeerSession): void {
    if (!this.catching) {
      this.options.sendVv(session);
      return;
    }
    if (this.source === undefined) this.use(session);
    else if (this.source.session === session) this.ask(session);
    else this.waiting.add(session);
  }

  /**
   * We would send `session` our vector now (its digest differs from ours, or it answered ours).
   * While catching up, a session not yet asked waits instead.
   */
  offer(session: PeerSession): void {
    if (!this.catching || this.asked.has(session)) this.options.sendVv(session);
    else this.waiting.add(session);
  }

  /** The peer's vector arrived. */
  vvReceived(session: PeerSession, vv: VersionVector): void {
    if (!this.catching) return;
    this.advertised.set(session, vv);
    if (this.waiting.has(session) && this.holdsAll(vv)) {
      // Nothing to catch up from this peer: its answer is only what it commits meanwhile.
      this.waiting.delete(session);
      this.ask(session);
    }
    if (this.source?.session === session) this.checkDone();
  }

  /** A frame of a sync answer (a chunk or its end) arrived from `session`. */
  answerArrived(session: PeerSession): void {
    if (this.source?.session === session) this.source.progressAt = this.options.timers.now();
  }

  /**
   * A sync round from `session` was merged; `whole`: its slots justified every range it claimed.
   * The source may be done.
   */
  roundMerged(session: PeerSession, whole: boolean): void {
    if (!this.catching) return;
    // A whole round (every chunk arrived and merged) answered our vector with everything the
    // source held after it, whether or not its slots justified every range it claimed: after an
    // honest reset a vector names seqs no slot carries any more, so "we hold all it advertised"
    // may never come (review F4: every join then waited out SOURCE_STALL_MS per source). The next
    // source, a waiting peer still ahead, sends only what our vector (moved by the justified
    // ranges) still lacks. `whole` is kept for the log.
    if (this.source?.session === session) {
      if (!whole) this.options.log.debug({ peer: session.peer?.name }, 'catch-up source claimed ranges its slots did not justify');
      this.done();
      return;
    }
    this.checkDone();
  }

  /**
   * The session closed. The source is replaced — unless it lost to a second connection of the
   * same peer (both dialled at first contact: the duplicate rule keeps one), which takes over as
   * the source. The last session closing starts catching up again.
   */
  closed(session: PeerSession): void {
    this.waiting.delete(session);
    if (this.source?.session === session) {
      const survivor = session.peer === undefined ? undefined : this.options.sessionOf(session.peer.replica);
      // The survivor is registered before the loser closes, and greeted (`opened`) right after.
      if (survivor !== undefined && survivor !== session && survivor.phase === 'open') this.source = { session: survivor, askedAt: this.source.askedAt, progressAt: this.options.timers.now() };
      else this.replace('the source disconnected');
    }
    if (!this.catching && this.openCount() === 0) {
      this.catching = true;
      this.catchingSince = this.options.timers.now();
      this.sourcesAsked = 0;
      this.asked = new WeakSet();
      this.advertised = new WeakMap();
    }
  }

  /** Looks at the source's progress (called every SOURCE_CHECK_MS while there is one; tests call it). */
  tick(): void {
    const source = this.source;
    if (source === undefined || !this.catching) return;
    const now = this.options.timers.now();
    if (now - this.catchingSince >= this.boundMs) {
      this.options.log.warn({ peer: source.session.peer?.name, boundMs: this.boundMs }, 'catching up from one source took too long: asking every peer');
      this.finish();
      return;
    }
    if (this.options.holdingUp(source.session)) source.progressAt = now;
    if (now - source.askedAt >= this.deadlineMs) this.replace(`not caught up within ${this.deadlineMs} ms`);
    else if (now - source.progressAt >= this.stallMs) this.replace(`no answer for ${this.stallMs} ms`);
  }

  stop(): void {
    this.stopped = true;
    this.clearTimer();
  }

  private ask(session: PeerSession): void {
    this.asked.add(session);
    this.options.sendVv(session);
  }

  private use(session: PeerSession): void {
    const now = this.options.timers.now();
    this.sourcesAsked += 1;
    this.source = { session, askedAt: now, progressAt: now };
    this.waiting.delete(session);
    if (!this.asked.has(session)) this.ask(session);
    this.scheduleCheck();
    this.options.log.debug({ peer: session.peer?.name, sources: this.sourcesAsked }, 'catching up from one peer');
    // A source whose vector arrived earlier (a waiting peer) may have nothing for us already.
    this.checkDone();
  }

  private checkDone(): void {
    const source = this.source;
    if (source === undefined) return;
    const vv = this.advertised.get(source.session);
    if (vv !== undefined && this.holdsAll(vv)) this.done();
  }

  private done(): void {
    this.source = undefined;
    this.next();
  }

  /** The source failed: the next one, or every peer. */
  private replace(reason: string): void {
    const failed = this.source;
    this.source = undefined;
    this.options.log.warn({ peer: failed?.session.peer?.name, reason }, 'catch-up source replaced');
    this.next(true);
  }

  /** After a source: one waiting peer still ahead of us (any waiting peer, after a failure), or the end. */
  private next(afterFailure = false): void {
    if (this.sourcesAsked < this.maxSources) {
      const candidates = [...this.waiting].filter((session) => {
        if (session.phase !== 'open') return false;
        const vv = this.advertised.get(session);
        return vv === undefined ? afterFailure : !this.holdsAll(vv);
      });
      if (candidates.length > 0) {
        this.use(candidates[Math.floor(this.options.random() * candidates.length)]!);
        return;
      }
    }
    this.finish();
  }

  /** Catching up ends: every waiting session gets our vector. */
  private finish(): void {
    this.clearTimer();
    this.catching = false;
    this.source = undefined;
    const waiting = [...this.waiting];
    this.waiting.clear();
    this.advertised = new WeakMap();
    for (const session of waiting) if (session.phase === 'open') this.options.sendVv(session);
    this.options.log.debug({ sources: this.sourcesAsked, waiting: waiting.length }, 'caught up: vector sent to every peer');
  }

  /** True when we hold everything `vv` names (our own entry aside: no peer moves it). */
  private holdsAll(vv: VersionVector): boolean {
    const local = this.options.localVv();
    const own = this.options.localReplica();
    for (const [replica, seq] of vv) if (replica !== own && seq > (local.get(replica) ?? 0)) return false;
    return true;
  }

  private openCount(): number {
    let count = 0;
    for (const _ of this.options.openSessions()) count++;
    return count;
  }

  private scheduleCheck(): void {
    if (this.timer !== undefined || this.stopped) return;
    this.timer = this.options.timers.setTimeout(() => {
      this.timer = undefined;
      this.tick();
      if (this.source !== undefined && this.catching) this.scheduleCheck();
    }, SOURCE_CHECK_MS);
  }

  private clearTimer(): void {
    if (this.timer === undefined) return;
    this.options.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
