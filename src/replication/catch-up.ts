/**
 * Catch up before serving: a node that starts with peers does not answer counts until it has
 * merged one full sync round (version vectors exchanged, every chunk applied) from every peer it
 * can reach, or until `timeoutMs` passed. A node restored from an old backup would otherwise
 * answer from its old copy and show counts thousands below what visitors saw a moment ago.
 *
 * A target counts as done when a full round from its replica was merged, when it is this node,
 * or when it was never reached (its dial failed or was refused before any handshake): waiting
 * for a peer that is down would only delay the start by the whole timeout. A peer that connected
 * and dropped before its round is waited for (it is up; it will be redialled).
 *
 * A node that knows its copy is stale (it minted a new replica id at open: restored from a backup,
 * or its identity file lost) does not take "nobody answered" for "caught up": an empty first DNS
 * answer or a peer whose dial failed once (restarting in a rolling deploy) would open the gate at
 * once on the old copy. It waits for a full round from at least one peer, or the timeout.
 */
import type { ReplicaId } from '../ids.js';
import type { Log } from '../log.js';
import type { TimerHandle, Timers } from '../timers.js';
import type { TargetView } from './replicator.js';

export const STARTUP_SYNC_TIMEOUT_MS = 5_000;
/** How often the targets are looked at again while catching up (dial failures raise no event). */
export const CATCH_UP_CHECK_MS = 25;

export interface CatchUpSource {
  onFirstSync(listener: () => void): () => void;
  syncedWith(replica: ReplicaId): boolean;
  dialTargets(): TargetView[];
}

export interface CatchUpOptions {
  readonly source: CatchUpSource;
  readonly timers: Timers;
  readonly timeoutMs: number;
  readonly log: Log;
  /** Slots in the store now, to log how many the catch-up brought. */
  readonly slots: () => number;
  /** The copy is known stale: finish only after a full round from at least one peer (or the timeout). */
  readonly needsOnePeer?: boolean;
}

export interface CatchUpResult {
  readonly durationMs: number;
  readonly slotsBrought: number;
  readonly synced: readonly string[];
  readonly unreached: readonly string[];
  readonly timedOut: boolean;
}

export class CatchUp {
  private readonly options: CatchUpOptions;
  private startedAt = 0;
  private slotsAtStart = 0;
  private peersKnown = false;
  private finished: CatchUpResult | undefined;
  private resolve: (() => void) | undefined;
  private readonly done: Promise<void>;
  private timeout: TimerHandle | undefined;
  private poll: TimerHandle | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(options: CatchUpOptions) {
    this.options = options;
    this.done = new Promise((resolve) => (this.resolve = resolve));
  }

  /** True once counts may be served. */
  get ready(): boolean {
    return this.finished !== undefined;
  }

  get result(): CatchUpResult | undefined {
    return this.finished;
  }

  /** Resolves when counts may be served (at the latest `timeoutMs` after `start`). */
  wait(): Promise<void> {
    return this.done;
  }

  /** Starts waiting; without peers configured the node serves at once. */
  start(peersConfigured: boolean): void {
    const { timers } = this.options;
    this.startedAt = timers.now();
    this.slotsAtStart = this.options.slots();
    if (!peersConfigured) {
      this.finish(false);
      return;
    }
    this.unsubscribe = this.options.source.onFirstSync(() => this.check());
    this.timeout = timers.setTimeout(() => this.finish(true), this.options.timeoutMs);
    this.schedulePoll();
  }

  /** Discovery delivered its first list of peers (static peers: at once). */
  peersDiscovered(): void {
    this.peersKnown = true;
    this.check();
  }

  /** Opens the gate without a result (the node is stopping). */
  stop(): void {
    if (this.finished === undefined) this.finish(true, false);
  }

  /** Finishes when every target is synced, this node, or never reached. */
  check(): void {
    if (this.finished !== undefined || !this.peersKnown) return;
    const { source } = this.options;
    let synced = 0;
    for (const target of source.dialTargets()) {
      if (target.state === 'self') continue;
      if (target.replica !== undefined && source.syncedWith(target.replica)) {
        synced++;
        continue;
      }
      if (target.replica === undefined && target.lastError !== undefined) continue;
      return;
    }
    if (this.options.needsOnePeer === true && synced === 0) return;
    this.finish(false);
  }

  private schedulePoll(): void {
    this.poll = this.options.timers.setTimeout(() => {
      this.poll = undefined;
      this.check();
      if (this.finished === undefined) this.schedulePoll();
    }, CATCH_UP_CHECK_MS);
  }

  private finish(timedOut: boolean, log = true): void {
    if (this.finished !== undefined) return;
    const { timers, source } = this.options;
    if (this.timeout !== undefined) timers.clearTimeout(this.timeout);
    if (this.poll !== undefined) timers.clearTimeout(this.poll);
    this.unsubscribe?.();
    const synced: string[] = [];
    const unreached: string[] = [];
    for (const target of source.dialTargets()) {
      if (target.state === 'self') continue;
      if (target.replica !== undefined && source.syncedWith(target.replica)) synced.push(target.address);
      else unreached.push(target.address);
    }
    this.finished = {
      durationMs: timers.now() - this.startedAt,
      slotsBrought: Math.max(0, this.options.slots() - this.slotsAtStart),
      synced,
      unreached,
      timedOut,
    };
    this.resolve?.();
    if (!log) return;
    const fields = { ...this.finished };
    if (timedOut) this.options.log.warn(fields, `caught up partly: serving after ${this.options.timeoutMs} ms without a sync round from ${unreached.join(', ') || 'discovery'}`);
    else if (synced.length === 0) this.options.log.warn(fields, `serving without a sync round from any peer: none was reachable${unreached.length > 0 ? ` (${unreached.join(', ')})` : ''}`);
    else if (unreached.length > 0) this.options.log.warn(fields, `caught up with the peers reached; not reached: ${unreached.join(', ')}`);
    else this.options.log.info(fields, 'caught up with peers');
  }
}
