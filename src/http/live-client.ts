/**
 * One live-feed client and its pacing: which of its pages changed since they were last sent, when
 * each is due again, and whether its socket can take more. Messages themselves are built (once per
 * change, shared by every client) behind `LiveMessages`.
 *
 * Bounds, and why:
 * - A page is sent at most once per `intervalMs`; changes in between only mark it dirty (a set of
 *   at most MAX_PAGES_PER_CLIENT names), so a slow client gets the latest state, not a backlog.
 * - Past `maxBufferedBytes` of unsent data nothing more is written until the socket drains
 *   (`flush()` on 'drain'); the feed closes a client stuck for too long (`heartbeat`).
 *
 * Frames arrive ready to write (ws-frame.ts) and are written to the socket as they are. While
 * corked (one fan-out, one flush) they are held and leave in one write at `uncork`: the run
 * joined once for every client holding the same one (shared-runs.ts), else its frames corked.
 */
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import type { PageName } from '../ids.js';
import type { TimerHandle, Timers } from '../timers.js';
import type { LiveQuery } from './live-query.js';
import { EMPTY_SESSION, pageHash, type Session } from './session-token.js';

/** Where a client's messages come from. */
export interface LiveMessages {
  /**
   * The page's message, framed (ws-frame.ts), with its state as of now (pages only go up, so
   * never an older count), max-merged with what `session` saw of it.
   */
  page(page: PageName, session: Session): Buffer;
  /** The latest cluster message, framed, once there is one. */
  cluster(): Buffer | undefined;
}

export interface PacingOptions {
  readonly timers: Timers;
  /** Unsent bytes past which the client is not written to until its socket drains. */
  readonly maxBufferedBytes: number;
}

/** Why a heartbeat round gives up on a client (undefined: it was pinged). */
export type HeartbeatVerdict = 'stuck' | 'silent' | 'unreachable' | undefined;

export class LiveClient {
  readonly pages: readonly PageName[];
  readonly intervalMs: number;
  readonly wantsCluster: boolean;
  /** page → when it was last sent to this client. */
  private readonly lastSent = new Map<PageName, number>();
  /** Pages changed since they were last sent. */
  private readonly dirty: Set<PageName>;
  private clusterDirty: boolean;
  private timer: TimerHandle | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  /** When writing stopped because the buffer was over the bound. */
  private stuckSince: number | undefined;
  /** False once a ping went unanswered for a whole heartbeat. */
  private alive = true;
  private disposed = false;
  /** Its pages the session token saw: only their messages need the session (the rest share one). */
  private readonly seen: ReadonlySet<PageName>;
  /** Frames held while corked (undefined: not corked), and their bytes. */
  private heldFrames: Buffer[] | undefined;
  private heldBytes = 0;

  constructor(
    readonly ws: WebSocket,
    readonly socket: Duplex,
    query: LiveQuery,
    private readonly messages: LiveMessages,
    private readonly options: PacingOptions,
    /** What the client's token says it saw (verified by the feed). */
    private readonly session: Session = EMPTY_SESSION,
  ) {
    this.pages = query.pages;
    this.intervalMs = query.intervalMs;
    this.wantsCluster = query.cluster;
    this.dirty = new Set(query.pages);
    this.clusterDirty = query.cluster;
    const hashes = new Set(session.pages.map((p) => p.hash));
    this.seen = new Set(hashes.size === 0 ? [] : query.pages.filter((page) => hashes.has(pageHash(page))));
  }

  get closed(): boolean {
    return this.disposed;
  }

  get stuck(): boolean {
    return this.stuckSince !== undefined;
  }

  get awaitingPong(): boolean {
    return !this.alive;
  }

  get dirtyPages(): number {
    return this.dirty.size;
  }

  get bufferedBytes(): number {
    return this.ws.bufferedAmount + this.heldBytes;
  }

  /** The frames held since `cork()`, in order. */
  get held(): readonly Buffer[] {
    return this.heldFrames ?? [];
  }

  pong(): void {
    this.alive = true;
  }

  /** Holds the frames sent from now on (one fan-out's frames leave in one write at uncork). */
  cork(): void {
    if (!this.disposed) this.heldFrames ??= [];
  }

  /**
   * Writes what was held in one write: `joined` when given (the held frames joined once for every
   * client holding the same run), else the frames themselves, corked.
   */
  uncork(joined?: Buffer): void {
    const frames = this.heldFrames;
    this.heldFrames = undefined;
    this.heldBytes = 0;
    if (frames === undefined || frames.length === 0 || this.disposed || this.ws.readyState !== WebSocket.OPEN) return;
    if (joined !== undefined) {
      this.socket.write(joined);
    } else if (frames.length === 1) {
      this.socket.write(frames[0] as Buffer);
    } else {
      this.socket.cork();
      for (const frame of frames) this.socket.write(frame);
      this.socket.uncork();
    }
    this.writable(this.options.timers.now());
  }

  /** One of its pages changed at `now`: sent now if due (and writable), else when due. */
  pageChanged(page: PageName, now: number): void {
    if (this.stuckSince !== undefined) {
      this.dirty.add(page);
      return;
    }
    // With interval=0 every change is due: no pacing state to read (the fan-out's hot path).
    const due = this.intervalMs === 0 ? now : (this.lastSent.get(page) ?? Number.NEGATIVE_INFINITY) + this.intervalMs;
    if (due <= now) {
      this.sendPage(page, now);
    } else {
      this.dirty.add(page);
      this.schedule(due);
    }
  }

  /** The cluster message changed. */
  clusterChanged(): void {
    this.clusterDirty = true;
    this.flush();
  }

  /**
   * One heartbeat round for this client: a verdict when it should be dropped (stuck past
   * `stuckTimeoutMs`, or silent since the last ping), else it is pinged.
   */
  heartbeat(now: number, stuckTimeoutMs: number): HeartbeatVerdict {
    if (this.stuckSince !== undefined && now - this.stuckSince >= stuckTimeoutMs) return 'stuck';
    // Drain normally restarts a stuck client; this retry only guards against a missed one.
    if (this.stuckSince !== undefined) this.flush();
    if (this.disposed) return undefined;
    // A stuck client may well be alive (just slow): its pong can be queued behind our data.
    if (!this.alive && this.stuckSince === undefined) return 'silent';
    this.alive = false;
    try {
      this.ws.ping();
    } catch {
      return 'unreachable';
    }
    return undefined;
  }

  /** Sends what is due (and possible), schedules the rest. */
  flush(): void {
    if (this.disposed || this.ws.readyState !== WebSocket.OPEN) return;
    // Its own batch unless a fan-out already holds its writes.
    if (this.heldFrames !== undefined) return this.flushHeld();
    this.cork();
    try {
      this.flushHeld();
    } finally {
      this.uncork();
    }
  }

  private flushHeld(): void {
    const timers = this.options.timers;
    if (this.timer !== undefined) {
      timers.clearTimeout(this.timer);
      this.timer = undefined;
      this.timerAt = Number.POSITIVE_INFINITY;
    }
    const now = timers.now();
    if (!this.writable(now)) return;
    let next = Number.POSITIVE_INFINITY;
    for (const page of this.dirty) {
      const due = (this.lastSent.get(page) ?? Number.NEGATIVE_INFINITY) + this.intervalMs;
      if (due > now) {
        next = Math.min(next, due);
        continue;
      }
      this.sendPage(page, now);
      if (this.stuckSince !== undefined || this.disposed) return;
    }
    const cluster = this.clusterDirty ? this.messages.cluster() : undefined;
    if (cluster !== undefined) {
      this.clusterDirty = false;
      this.send(cluster, now);
    }
    if (next !== Number.POSITIVE_INFINITY) this.schedule(next);
  }

  /** Stops its timer and drops what it held; false when it was already disposed. */
  dispose(): boolean {
    if (this.disposed) return false;
    this.disposed = true;
    if (this.timer !== undefined) this.options.timers.clearTimeout(this.timer);
    this.timer = undefined;
    this.dirty.clear();
    this.heldFrames = undefined;
    this.heldBytes = 0;
    return true;
  }

  private schedule(at: number): void {
    if (this.disposed || at >= this.timerAt) return;
    const timers = this.options.timers;
    if (this.timer !== undefined) timers.clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = timers.setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Number.POSITIVE_INFINITY;
        this.flush();
      },
      Math.max(0, at - timers.now()),
    );
  }

  /** False (and the client marked stuck) while its unsent data is over the bound. */
  private writable(now: number): boolean {
    if (this.bufferedBytes > this.options.maxBufferedBytes) {
      this.stuckSince ??= now;
      return false;
    }
    if (this.stuckSince !== undefined) {
      // Its pings were queued behind our data: give it a full heartbeat to answer from now.
      this.stuckSince = undefined;
      this.alive = true;
    }
    return true;
  }

  private sendPage(page: PageName, now: number): void {
    if (this.dirty.size > 0) this.dirty.delete(page);
    if (this.intervalMs > 0) this.lastSent.set(page, now);
    this.send(this.messages.page(page, this.seen.size > 0 && this.seen.has(page) ? this.session : EMPTY_SESSION), now);
  }

  /** Writes (or holds, while corked) one frame, framed once for every client it goes to. */
  private send(frame: Buffer, now: number): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (this.heldFrames !== undefined) {
      this.heldFrames.push(frame);
      this.heldBytes += frame.length;
    } else {
      this.socket.write(frame);
    }
    // Checked after writing: one message may pass the bound, then writing stops until drain.
    this.writable(now);
  }
}
