/**
 * Discovery: where the peers are. Implemented by `StaticDiscovery` (PEERS), `DnsDiscovery`
 * (DISCOVERY_DNS), `CombinedDiscovery` (both) and `MemoryDiscovery` (the twin tests drive).
 * `DiscoveryLoop` asks one of them periodically and reports the list when it changes.
 *
 * Self-recognition is not done here: a node may find its own address; the handshake spots it by
 * replica id.
 */
import type { Log } from '../log.js';
import { realTimers, type TimerHandle, type Timers } from '../timers.js';
import type { PeerAddress } from './peer-address.js';
import { uniqueSorted } from './peer-address.js';

export type { PeerAddress } from './peer-address.js';

export interface ResolveOptions {
  /** Aborting gives up on the resolution in flight (the promise rejects). */
  readonly signal?: AbortSignal;
}

export interface Discovery {
  /**
   * The peers as `host:port` strings (IPv6 `[addr]:port`), deduplicated and sorted. An empty list
   * means "nobody is there" (e.g. NXDOMAIN). Rejects when the answer is unknown (timeout, SERVFAIL,
   * unreachable server): the caller then keeps what it knew.
   */
  resolve(options?: ResolveOptions): Promise<PeerAddress[]>;
}

export interface DiscoveryLoopOptions {
  readonly discovery: Discovery;
  /** Pause between the end of one resolution and the start of the next; 0 disables the timer. */
  readonly intervalMs: number;
  /**
   * Called with the deduplicated, sorted list after the first successful resolution and then
   * whenever the list changes (not on every tick). May be async; errors are logged.
   */
  readonly onPeers: (addresses: PeerAddress[]) => void | Promise<void>;
  readonly log: Log;
  /** Warn (once) and show it in the status when a lookup answers with no peer (DNS discovery). */
  readonly warnWhenEmpty?: boolean;
  /** The schedule, and the clock for `status().lastSuccessAt`/`lastLookupAt` (wall time, ms since the epoch). */
  readonly timers?: Timers;
}

export interface DiscoveryStatus {
  /** The last list reported to `onPeers`; undefined before the first success. */
  readonly peers: readonly PeerAddress[] | undefined;
  /** The message of the last failure (or of an empty answer), cleared by the next answer with peers. */
  readonly lastError: string | undefined;
  readonly lastSuccessAt: number | undefined;
  /** When the last lookup ended, answered or not. */
  readonly lastLookupAt: number | undefined;
}

/** A short, stable description of a failure, so the same failure is logged once, not per tick. */
function errorKey(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === undefined ? error.message : `${code}: ${error.message}`;
  }
  return String(error);
}

/** `lastError` while the last lookup answered with no peer at all. */
export const EMPTY_ANSWER = 'no peers: the name resolves to no address';

export class DiscoveryLoop {
  private readonly discovery: Discovery;
  private readonly intervalMs: number;
  private readonly onPeers: DiscoveryLoopOptions['onPeers'];
  private readonly log: Log;
  private readonly timers: Timers;
  private readonly warnWhenEmpty: boolean;
  private current: PeerAddress[] | undefined;
  private lastError: string | undefined;
  private lastSuccessAt: number | undefined;
  private lastLookupAt: number | undefined;
  private timer: TimerHandle | undefined;
  private inFlight: Promise<void> | undefined;
  private started = false;
  private stopped = false;
  private readonly abort = new AbortController();

  constructor(options: DiscoveryLoopOptions) {
    if (!Number.isSafeInteger(options.intervalMs) || options.intervalMs < 0) {
      throw new RangeError(`intervalMs must be a non-negative integer, got ${options.intervalMs}`);
    }
    this.discovery = options.discovery;
    this.intervalMs = options.intervalMs;
    this.onPeers = options.onPeers;
    this.log = options.log;
    this.timers = options.timers ?? realTimers;
    this.warnWhenEmpty = options.warnWhenEmpty ?? false;
  }

  /**
   * Resolves once right away, then (when intervalMs > 0) again `intervalMs` after each
   * resolution ends, so slow answers never overlap. Calling it twice does nothing more.
   */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    void this.runAndReschedule();
  }

  /**
   * One resolution. Never rejects. A tick asked for while one is running joins it rather than
   * starting a second query.
   */
  tick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.inFlight ??= this.resolveOnce().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  /** Clears the timer, abandons a resolution in flight and waits for it to settle. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) {
      this.timers.clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.abort.abort();
    await this.inFlight;
  }

  status(): DiscoveryStatus {
    return { peers: this.current, lastError: this.lastError, lastSuccessAt: this.lastSuccessAt, lastLookupAt: this.lastLookupAt };
  }

  private async runAndReschedule(): Promise<void> {
    this.timer = undefined;
    await this.tick();
    if (this.stopped || this.intervalMs === 0) return;
    this.timer = this.timers.setTimeout(() => void this.runAndReschedule(), this.intervalMs);
  }

  private async resolveOnce(): Promise<void> {
    let addresses: PeerAddress[];
    try {
      addresses = uniqueSorted(await this.discovery.resolve({ signal: this.abort.signal }));
    } catch (error) {
      if (this.stopped) return;
      this.lastLookupAt = this.timers.wallTime(this.timers.now());
      const key = errorKey(error);
      // Once per distinct failure: a dead DNS server must not fill the log every interval.
      if (key !== this.lastError) {
        this.log.warn(
          { err: error, kept: this.current?.length ?? 0 },
          'peer discovery failed; keeping the previous peer list',
        );
      }
      this.lastError = key;
      return;
    }
    if (this.stopped) return;
    // Shown to people: wall time (the schedule itself runs on the monotonic clock).
    this.lastSuccessAt = this.lastLookupAt = this.timers.wallTime(this.timers.now());
    if (addresses.length === 0 && this.warnWhenEmpty) {
      // A name that resolves to nothing is most often a typo or a service not deployed yet: say so
      // once, and show it in the status, but it is an answer (the list is empty now).
      if (this.lastError !== EMPTY_ANSWER) this.log.warn({ kept: 0 }, 'peer discovery found no peers: the name resolves to no address');
      this.lastError = EMPTY_ANSWER;
    } else if (this.lastError !== undefined) {
      this.log.info({ peers: addresses.length }, 'peer discovery recovered');
      this.lastError = undefined;
    }
    if (this.current !== undefined && sameList(this.current, addresses)) return;
    this.current = addresses;
    try {
      await this.onPeers(addresses);
    } catch (error) {
      this.log.warn({ err: error }, 'handling discovered peers failed');
    }
  }
}

function sameList(left: readonly string[], right: readonly string[]): boolean {
  return left.length === right.length && left.every((value, index) => value === right[index]);
}
