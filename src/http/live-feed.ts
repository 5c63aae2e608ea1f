/**
 * The live feed: a WebSocket at `GET /api/live` pushing page counts (and, on request, the cluster
 * status) to browsers and to `npm run bench`. JSON text frames, server → client only.
 *
 *   GET /api/live?page=home&page=about&interval=250&cluster=1
 *   ← {"type":"page","page":"home","count":42,"replicas":{"<replicaId>":17,…},"at":<ms>}
 *   ← {"type":"cluster","cluster":<the /api/cluster JSON>}
 *
 * In parts: the query (`live-query.ts`, checked before the upgrade), each client's pacing and
 * buffer bound (`live-client.ts`), the page → clients index and page messages
 * (`page-subscriptions.ts`), the cluster updates (`cluster-broadcast.ts`). This file owns the
 * connections: upgrade and refusal, the client limit, heartbeats, and shutdown.
 *
 * Bounds: at most `maxClients` connections, and at most `maxClientBytes` charged over all of them
 * (`liveClientCharge`; 503 `too_many_clients` past either); per client a dirty set of at most
 * MAX_PAGES_PER_CLIENT pages plus MAX_BUFFERED_BYTES of socket buffer (past it, writing waits for
 * drain; stuck longer than STUCK_TIMEOUT_MS, the client is closed); input frames over
 * MAX_CLIENT_FRAME_BYTES are cut off by ws (1009), any input closes the client (1003); fan-out work
 * of at most one change in progress plus each subscribed page pending once, run in slices of
 * bounded size per loop turn (page-subscriptions.ts).
 *
 * Over 300 lines: about 100 are this header and the tunables with their reasons; the rest is one
 * class, the connections' lifecycle.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { AppError, errorBody, isAppError } from '../errors.js';
import type { LatencyProbe } from '../latency-probe.js';
import type { Log } from '../log.js';
import type { PageCount, Store } from '../store/store.js';
import { realTimers, type TimerHandle, type Timers } from '../timers.js';
import { ClusterBroadcast } from './cluster-broadcast.js';
import type { ClusterStatusSource } from '../cluster-status.js';
import { LiveClient, type LiveMessages } from './live-client.js';
import { parseLiveQuery, type LiveQuery } from './live-query.js';
import { type FanOutOptions, type FanOutStats, PageSubscriptions } from './page-subscriptions.js';
import { claimedReplicas } from './replica-fold.js';
import { EMPTY_SESSION, type Session, type SessionTokens } from './session-token.js';

export { LIVE_MAX_HEADER_BYTES } from './live-query.js';

export const LIVE_PATH = '/api/live';
export const MAX_LIVE_CLIENTS = 10_000;
/**
 * What a client is charged against the feed's memory budget (`maxClientBytes`, from
 * MEMORY_BUDGET_MB): measured here, an open socket holds ~10 KiB of RSS with one short page and
 * ~74 KiB with 100 page names of 240 bytes (issue 14 measured 127.5 KiB before names were shared
 * and single-client pages uncached), so a base plus, per page, its name and ~400 bytes.
 */
export const LIVE_CLIENT_BASE_BYTES = 12 * 1024;
export const LIVE_PAGE_OVERHEAD_BYTES = 400;
/**
 * A `session=` token is held decoded (a page hash, a floor and a map of replica ids per page): a
 * slot is 17 bytes of token, ~23 characters of base64url, and ~130 bytes as a Map entry with its
 * 32-character id, so at most ~4 KiB for a 512-character token.
 */
export const LIVE_SESSION_BYTES_PER_CHAR = 8;

/** The bytes a client with this query is charged. */
export function liveClientCharge(query: LiveQuery): number {
  let bytes = LIVE_CLIENT_BASE_BYTES + (query.session?.length ?? 0) * LIVE_SESSION_BYTES_PER_CHAR;
  for (const page of query.pages) bytes += Buffer.byteLength(page) + LIVE_PAGE_OVERHEAD_BYTES;
  return bytes;
}
/** Cluster updates go out at most this often, and only when something shown changed. */
export const CLUSTER_UPDATE_INTERVAL_MS = 1_000;
/** Unsent bytes past which a client is not written to until its socket drains. */
export const MAX_BUFFERED_BYTES = 256 * 1024;
/** A client that cannot take data for this long is closed. */
export const STUCK_TIMEOUT_MS = 30_000;
/** Ping period; a client that has not answered the previous ping by the next one is dropped. */
export const LIVE_HEARTBEAT_INTERVAL_MS = 15_000;
/** The feed takes no input; anything larger than this is cut off by ws itself (1009). */
const MAX_CLIENT_FRAME_BYTES = 1024;
/** How long stop() waits for clients to answer the close frame before cutting their sockets. */
export const LIVE_CLOSE_GRACE_MS = 1_000;

const CLOSE_GOING_AWAY = 1001;
const CLOSE_UNSUPPORTED_DATA = 1003;

/** Answers an upgrade request with an HTTP error and closes the socket (nothing was upgraded). */
function refuse(socket: Duplex, error: AppError): void {
  const body = JSON.stringify(errorBody(error));
  const reason = error.status === 400 ? 'Bad Request' : error.status === 503 ? 'Service Unavailable' : 'Error';
  socket.once('finish', () => socket.destroy());
  socket.once('error', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${error.status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`,
  );
}

export interface LiveFeedOptions {
  readonly store: Store;
  readonly cluster: ClusterStatusSource;
  readonly log: Log;
  /** Signs the `session` of page messages and verifies a client's `session=`; without it, none. */
  readonly sessions?: SessionTokens;
  readonly timers?: Timers;
  readonly maxClients?: number;
  /** Bytes all clients may be charged together (see liveClientCharge); default: unbounded. */
  readonly maxClientBytes?: number;
  readonly maxBufferedBytes?: number;
  readonly stuckTimeoutMs?: number;
  readonly heartbeatIntervalMs?: number;
  readonly clusterIntervalMs?: number;
  /** While not ready (catching up at start), upgrades are refused with 503 `catching_up`: a feed would show the stale copy. */
  readonly gate?: { readonly ready: boolean };
  /** The latency probe (bench diagnostics); undefined: off. */
  readonly probe?: LatencyProbe;
  /** Slice budgets of the fan-out (default FANOUT_SLICE_DELIVERIES, FANOUT_SLICE_BYTES). */
  readonly fanOut?: Omit<FanOutOptions, 'onError'>;
}

export interface LiveFeedStats extends FanOutStats {
  readonly clients: number;
  /** Bytes charged to open (and opening) clients against `maxClientBytes`. */
  readonly chargedBytes: number;
  /** Distinct pages with at least one subscriber. */
  readonly pages: number;
  /** Clients not written to because their socket buffer is over the bound. */
  readonly stuck: number;
  /** The largest unsent byte count of any client right now. */
  readonly maxBufferedBytes: number;
  /** Pages waiting to be sent, over all clients. */
  readonly dirtyPages: number;
  /** Clients that have not answered the last ping yet. */
  readonly awaitingPong: number;
}

export class LiveFeed {
  private readonly log: Log;
  private readonly timers: Timers;
  private readonly maxClients: number;
  private readonly maxClientBytes: number;
  /** Charged to clients open or upgrading now; each client's own charge is in `charges`. */
  private chargedBytes = 0;
  private readonly charges = new Map<LiveClient, number>();
  private readonly maxBufferedBytes: number;
  private readonly stuckTimeoutMs: number;
  private readonly heartbeatIntervalMs: number;
  private readonly clusterIntervalMs: number;
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_CLIENT_FRAME_BYTES, clientTracking: false });

  private readonly clients = new Set<LiveClient>();
  private readonly pages: PageSubscriptions<LiveClient>;
  private readonly cluster: ClusterBroadcast<LiveClient>;
  private readonly messages: LiveMessages = { page: (page, session) => this.pages.message(page, session), cluster: () => this.cluster.message() };
  private readonly sessions: SessionTokens | undefined;
  private upgrading = 0;
  private claimed: { readonly at: number; readonly ids: ReadonlySet<string> } | undefined;
  private unsubscribe: (() => void) | undefined;
  private heartbeatTimer: TimerHandle | undefined;
  private clusterTimer: TimerHandle | undefined;
  private stopped = false;
  private stopping: Promise<void> | undefined;
  private readonly gate: { readonly ready: boolean } | undefined;

  constructor(options: LiveFeedOptions) {
    this.log = options.log;
    this.timers = options.timers ?? realTimers;
    this.maxClients = options.maxClients ?? MAX_LIVE_CLIENTS;
    this.maxClientBytes = options.maxClientBytes ?? Number.POSITIVE_INFINITY;
    this.maxBufferedBytes = options.maxBufferedBytes ?? MAX_BUFFERED_BYTES;
    this.stuckTimeoutMs = options.stuckTimeoutMs ?? STUCK_TIMEOUT_MS;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? LIVE_HEARTBEAT_INTERVAL_MS;
    this.clusterIntervalMs = options.clusterIntervalMs ?? CLUSTER_UPDATE_INTERVAL_MS;
    this.sessions = options.sessions;
    this.gate = options.gate;
    this.pages = new PageSubscriptions(options.store, this.timers, options.sessions, () => this.claimedReplicas(options.cluster), options.probe, {
      ...options.fanOut,
      onError: (error) => this.log.error({ err: error }, 'live feed fan-out failed'),
    });
    this.cluster = new ClusterBroadcast({ source: options.cluster, log: this.log });
    this.unsubscribe = options.store.onChange((changed) => this.onChange(changed));
  }

  /** The upgrade handler for LIVE_PATH. */
  readonly handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    let query: LiveQuery;
    let session: Session = EMPTY_SESSION;
    let charge: number;
    try {
      if (this.stopped) throw new AppError('shutting_down', 'the node is shutting down');
      if (this.gate !== undefined && !this.gate.ready) {
        throw new AppError('catching_up', 'the node is catching up with its peers before it serves counts; reconnect in a moment');
      }
      query = parseLiveQuery(req.url ?? '');
      if (query.session !== undefined && this.sessions !== undefined) session = this.sessions.verify(query.session);
      if (this.clients.size + this.upgrading >= this.maxClients) {
        throw new AppError('too_many_clients', `this node already serves ${this.maxClients} live connections; try again later or another node`);
      }
      charge = liveClientCharge(query);
      if (this.chargedBytes + charge > this.maxClientBytes) {
        throw new AppError('too_many_clients', 'this node holds as many live subscriptions as its memory budget allows; try again later, another node, or follow fewer pages');
      }
    } catch (error) {
      refuse(socket, isAppError(error) ? error : new AppError('internal', 'upgrade failed', { cause: error }));
      if (!isAppError(error)) this.log.error({ err: error }, 'live feed upgrade failed');
      return;
    }
    this.upgrading++;
    this.chargedBytes += charge;
    // ws answers a malformed handshake itself (400) and never calls back: count it out on close.
    let settled = false;
    const settle = (accepted: boolean): void => {
      if (!settled) {
        this.upgrading--;
        if (!accepted) this.chargedBytes -= charge;
      }
      settled = true;
    };
    const failed = (): void => settle(false);
    socket.once('close', failed);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      socket.off('close', failed);
      if (this.stopped) {
        settle(false);
        ws.terminate();
        return;
      }
      settle(true);
      this.accept(ws, socket, query, charge, session);
    });
  };

  /** The ids the cluster claims, read from its status at most once per cluster interval. */
  private claimedReplicas(cluster: ClusterStatusSource): ReadonlySet<string> {
    const now = this.timers.now();
    if (this.claimed === undefined || now - this.claimed.at >= this.clusterIntervalMs) this.claimed = { at: now, ids: claimedReplicas(cluster.status()) };
    return this.claimed.ids;
  }

  stats(): LiveFeedStats {
    let stuck = 0;
    let maxBuffered = 0;
    let dirtyPages = 0;
    let awaitingPong = 0;
    for (const client of this.clients) {
      if (client.awaitingPong) awaitingPong++;
      if (client.stuck) stuck++;
      maxBuffered = Math.max(maxBuffered, client.bufferedBytes);
      dirtyPages += client.dirtyPages;
    }
    return {
      clients: this.clients.size,
      chargedBytes: this.chargedBytes,
      pages: this.pages.size,
      stuck,
      maxBufferedBytes: maxBuffered,
      dirtyPages,
      awaitingPong,
      ...this.pages.stats,
    };
  }

  /**
   * One heartbeat round: drops clients that did not answer the last ping or stayed stuck past the
   * bound, pings the rest. Runs every heartbeat interval; tests call it directly.
   */
  tick(): void {
    const now = this.timers.now();
    for (const client of [...this.clients]) {
      const verdict = client.heartbeat(now, this.stuckTimeoutMs);
      if (verdict === undefined) continue;
      if (verdict === 'stuck') this.log.info({ pages: client.pages.length, bufferedBytes: client.bufferedBytes }, 'live client stuck too long: closing');
      if (verdict === 'silent') this.log.debug({}, 'live client did not answer a ping: closing');
      this.drop(client);
    }
  }

  /** Sends the cluster status to cluster subscribers if something shown changed since last time. */
  clusterTick(): void {
    this.cluster.tick();
  }

  /**
   * Refuses new clients, closes every open one (1001: browsers reconnect, to another node or to
   * this one once it is back) and resolves once their sockets are gone, cutting those that do not
   * answer the close within LIVE_CLOSE_GRACE_MS. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopped = true;
      this.unsubscribe?.();
      this.unsubscribe = undefined;
      this.pages.stop();
      if (this.heartbeatTimer !== undefined) this.timers.clearTimeout(this.heartbeatTimer);
      if (this.clusterTimer !== undefined) this.timers.clearTimeout(this.clusterTimer);
      this.heartbeatTimer = undefined;
      this.clusterTimer = undefined;
      const clients = [...this.clients];
      const gone = clients.map((client) => new Promise<void>((resolve) => (client.socket.destroyed ? resolve() : client.socket.once('close', () => resolve()))));
      for (const client of clients) {
        this.forget(client);
        client.ws.close(CLOSE_GOING_AWAY, 'shutting_down');
      }
      let grace: TimerHandle | undefined;
      await Promise.race([Promise.all(gone), new Promise<void>((resolve) => (grace = this.timers.setTimeout(resolve, LIVE_CLOSE_GRACE_MS)))]);
      if (grace !== undefined) this.timers.clearTimeout(grace);
      for (const client of clients) client.ws.terminate();
      this.wss.close();
    })();
    return this.stopping;
  }

  private accept(ws: WebSocket, socket: Duplex, query: LiveQuery, charge: number, session: Session): void {
    const client = new LiveClient(
      ws,
      socket,
      { ...query, pages: this.pages.canonical(query.pages) },
      this.messages,
      { timers: this.timers, maxBufferedBytes: this.maxBufferedBytes },
      session,
    );
    this.clients.add(client);
    this.charges.set(client, charge);
    this.pages.add(client);
    if (client.wantsCluster) this.cluster.add(client);
    ws.on('message', () => ws.close(CLOSE_UNSUPPORTED_DATA, 'the live feed takes no input'));
    ws.on('pong', () => client.pong());
    ws.on('error', (error) => this.log.debug({ err: error }, 'live client error'));
    ws.on('close', () => this.forget(client));
    // ws and the client write straight to the socket: its 'drain' says the buffer emptied.
    socket.on('drain', () => client.flush());
    this.ensureLoops();
    client.flush();
  }

  private ensureLoops(): void {
    if (this.stopped) return;
    if (this.heartbeatTimer === undefined && this.clients.size > 0) {
      const beat = (): void => {
        this.heartbeatTimer = undefined;
        this.tick();
        if (this.clients.size > 0) this.ensureLoops();
      };
      this.heartbeatTimer = this.timers.setTimeout(beat, this.heartbeatIntervalMs);
    }
    if (this.clusterTimer === undefined && this.cluster.size > 0) {
      const poll = (): void => {
        this.clusterTimer = undefined;
        this.clusterTick();
        if (this.cluster.size > 0) this.ensureLoops();
      };
      this.clusterTimer = this.timers.setTimeout(poll, this.clusterIntervalMs);
    }
  }

  private drop(client: LiveClient): void {
    this.forget(client);
    client.ws.terminate();
  }

  private forget(client: LiveClient): void {
    if (!client.dispose()) return;
    this.clients.delete(client);
    this.chargedBytes -= this.charges.get(client) ?? 0;
    this.charges.delete(client);
    this.cluster.remove(client);
    this.pages.remove(client);
  }

  private onChange(changed: readonly PageCount[]): void {
    // A failure here must never reach the store's commit path.
    try {
      this.pages.changed(changed);
    } catch (error) {
      this.log.error({ err: error }, 'live feed fan-out failed');
    }
  }
}
