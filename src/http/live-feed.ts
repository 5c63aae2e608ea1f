/**
 * The live feed: a WebSocket at `GET /api/live` pushing page counts (and, on request, the cluster
 * status) to browsers and to `npm run bench`. JSON text frames, server → client only.
 *
 *   GET /api/live?page=home&page=about&interval=250&cluster=1
 *   ← {"type":"page","page":"home","count":42,"replicas":{"<replicaId>":17,…},"at":<ms>}
 *   ← {"type":"cluster","cluster":<the /api/cluster JSON>}
 *
 * Ordering and bounds, and why:
 * - Every page message carries the page's state read at send time, and the store's totals only
 *   go up, so a client never sees an older count after a newer one however updates coalesce.
 * - A page is sent at most once per `interval` to a client; changes in between only mark it
 *   dirty (a set of at most MAX_PAGES_PER_CLIENT names), so memory per client is bounded by
 *   that set plus the socket buffer, and a slow client gets the latest state, not a backlog.
 * - Past MAX_BUFFERED_BYTES of unsent data the client is not written to until its socket
 *   drains; stuck longer than STUCK_TIMEOUT_MS, it is closed.
 * - The store's onChange fan-out touches only the subscribers of the changed pages (page →
 *   clients index), so thousands of open pages elsewhere cost nothing per commit.
 * - The query is validated before the upgrade: a bad one is an HTTP 400 with the usual JSON error.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { AppError, errorBody, isAppError } from '../errors.js';
import type { PageName } from '../ids.js';
import type { Logger } from '../log.js';
import { realTimers, type TimerHandle, type Timers } from '../timers.js';
import type { PageCount, Store } from '../store/store.js';
import { checkPageName } from './body.js';
import type { ClusterStatus, ClusterStatusSource } from '../cluster-status.js';

export const LIVE_PATH = '/api/live';
export const MAX_LIVE_CLIENTS = 10_000;
export const MAX_PAGES_PER_CLIENT = 100;
export const DEFAULT_LIVE_INTERVAL_MS = 250;
export const MAX_LIVE_INTERVAL_MS = 10_000;
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
/** Longest query string read: 100 pages of 256 bytes, every byte percent-encoded, fit. */
const MAX_QUERY_BYTES = 80 * 1024;
/**
 * The HTTP server's header limit must let such a query through: Node's default (16 KiB) would
 * answer 431 to a client subscribing to 100 long page names. `node.ts` creates its server with it.
 */
export const LIVE_MAX_HEADER_BYTES = 96 * 1024;

const CLOSE_GOING_AWAY = 1001;
const CLOSE_UNSUPPORTED_DATA = 1003;

export interface LiveQuery {
  readonly pages: readonly PageName[];
  readonly intervalMs: number;
  readonly cluster: boolean;
}

/** Splits and strictly decodes a query string; a malformed escape is a 400, not a guess. */
function queryPairs(search: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const part of search.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawKey = eq === -1 ? part : part.slice(0, eq);
    const rawValue = eq === -1 ? '' : part.slice(eq + 1);
    try {
      pairs.push([decodeURIComponent(rawKey.replace(/\+/g, ' ')), decodeURIComponent(rawValue.replace(/\+/g, ' '))]);
    } catch {
      throw new AppError('bad_request', `the query has a malformed percent-encoding near ${JSON.stringify(part.slice(0, 40))}`);
    }
  }
  return pairs;
}

/** The feed's query (`page` repeated, `interval`, `cluster`) from a request URL, validated. */
export function parseLiveQuery(url: string): LiveQuery {
  const mark = url.indexOf('?');
  const search = mark === -1 ? '' : url.slice(mark + 1);
  if (search.length > MAX_QUERY_BYTES) throw new AppError('bad_request', `the query is longer than ${MAX_QUERY_BYTES} bytes`);
  const pages = new Set<PageName>();
  let interval: string | undefined;
  let cluster: string | undefined;
  for (const [key, value] of queryPairs(search)) {
    if (key === 'page') {
      pages.add(checkPageName(value, 'page'));
      if (pages.size > MAX_PAGES_PER_CLIENT) throw new AppError('bad_request', `subscribe to at most ${MAX_PAGES_PER_CLIENT} pages per connection`);
    } else if (key === 'interval') {
      if (interval !== undefined) throw new AppError('bad_request', 'give "interval" at most once');
      interval = value;
    } else if (key === 'cluster') {
      if (cluster !== undefined) throw new AppError('bad_request', 'give "cluster" at most once');
      cluster = value;
    }
    // Other keys (cache busters and the like) are ignored.
  }
  if (pages.size === 0) throw new AppError('bad_request', 'name at least one page: /api/live?page=home');
  let intervalMs = DEFAULT_LIVE_INTERVAL_MS;
  if (interval !== undefined) {
    intervalMs = /^\d{1,5}$/.test(interval) ? Number(interval) : Number.NaN;
    if (!(intervalMs >= 0 && intervalMs <= MAX_LIVE_INTERVAL_MS)) {
      throw new AppError('bad_request', `interval must be a whole number of milliseconds from 0 to ${MAX_LIVE_INTERVAL_MS}`);
    }
  }
  if (cluster !== undefined && cluster !== '0' && cluster !== '1') throw new AppError('bad_request', 'cluster must be 1 (send cluster updates) or 0');
  return { pages: [...pages], intervalMs, cluster: cluster === '1' };
}

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
  readonly log: Logger;
  readonly timers?: Timers;
  readonly maxClients?: number;
  readonly maxBufferedBytes?: number;
  readonly stuckTimeoutMs?: number;
  readonly heartbeatIntervalMs?: number;
  readonly clusterIntervalMs?: number;
}

export interface LiveFeedStats {
  readonly clients: number;
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

interface Client {
  readonly ws: WebSocket;
  readonly socket: Duplex;
  readonly pages: readonly PageName[];
  readonly intervalMs: number;
  readonly cluster: boolean;
  /** page → when it was last sent to this client. */
  readonly lastSent: Map<PageName, number>;
  /** Pages changed since they were last sent. */
  readonly dirty: Set<PageName>;
  clusterDirty: boolean;
  timer: TimerHandle | undefined;
  timerAt: number;
  /** When writing stopped because the buffer was over the bound. */
  stuckSince: number | undefined;
  /** False once a ping went unanswered for a whole heartbeat. */
  alive: boolean;
  closed: boolean;
}

export class LiveFeed {
  private readonly store: Store;
  private readonly clusterSource: ClusterStatusSource;
  private readonly log: Logger;
  private readonly timers: Timers;
  private readonly maxClients: number;
  private readonly maxBufferedBytes: number;
  private readonly stuckTimeoutMs: number;
  private readonly heartbeatIntervalMs: number;
  private readonly clusterIntervalMs: number;
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_CLIENT_FRAME_BYTES, clientTracking: false });

  private readonly clients = new Set<Client>();
  private readonly byPage = new Map<PageName, Set<Client>>();
  private readonly clusterClients = new Set<Client>();
  /** page → its message as last built; dropped when the page changes. Subscribed pages only. */
  private readonly messages = new Map<PageName, Buffer>();
  /** page → when this node last applied a change to it. Subscribed pages only. */
  private readonly changedAt = new Map<PageName, number>();
  private clusterMessage: Buffer | undefined;
  private clusterKey: string | undefined;
  private upgrading = 0;
  private unsubscribe: (() => void) | undefined;
  private heartbeatTimer: TimerHandle | undefined;
  private clusterTimer: TimerHandle | undefined;
  private stopped = false;
  private stopping: Promise<void> | undefined;

  constructor(options: LiveFeedOptions) {
    this.store = options.store;
    this.log = options.log;
    this.timers = options.timers ?? realTimers;
    this.maxClients = options.maxClients ?? MAX_LIVE_CLIENTS;
    this.maxBufferedBytes = options.maxBufferedBytes ?? MAX_BUFFERED_BYTES;
    this.stuckTimeoutMs = options.stuckTimeoutMs ?? STUCK_TIMEOUT_MS;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? LIVE_HEARTBEAT_INTERVAL_MS;
    this.clusterIntervalMs = options.clusterIntervalMs ?? CLUSTER_UPDATE_INTERVAL_MS;
    // Polled every clusterIntervalMs; a status costs ~0.1 ms even at 300,000 slots (the digest is O(1)).
    this.clusterSource = options.cluster;
    this.unsubscribe = this.store.onChange((changed) => this.onChange(changed));
  }

  /** The upgrade handler for LIVE_PATH. */
  readonly handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    let query: LiveQuery;
    try {
      if (this.stopped) throw new AppError('shutting_down', 'the node is shutting down');
      query = parseLiveQuery(req.url ?? '');
      if (this.clients.size + this.upgrading >= this.maxClients) {
        throw new AppError('too_many_clients', `this node already serves ${this.maxClients} live connections; try again later or another node`);
      }
    } catch (error) {
      refuse(socket, isAppError(error) ? error : new AppError('internal', 'upgrade failed', { cause: error }));
      if (!isAppError(error)) this.log.error({ err: error }, 'live feed upgrade failed');
      return;
    }
    this.upgrading++;
    // ws answers a malformed handshake itself (400) and never calls back: count it out on close.
    let settled = false;
    const settle = (): void => {
      if (!settled) this.upgrading--;
      settled = true;
    };
    socket.once('close', settle);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      settle();
      socket.off('close', settle);
      if (this.stopped) {
        ws.terminate();
        return;
      }
      this.accept(ws, socket, query);
    });
  };

  stats(): LiveFeedStats {
    let stuck = 0;
    let maxBuffered = 0;
    let dirtyPages = 0;
    let awaitingPong = 0;
    for (const client of this.clients) {
      if (!client.alive) awaitingPong++;
      if (client.stuckSince !== undefined) stuck++;
      maxBuffered = Math.max(maxBuffered, client.ws.bufferedAmount);
      dirtyPages += client.dirty.size;
    }
    return { clients: this.clients.size, pages: this.byPage.size, stuck, maxBufferedBytes: maxBuffered, dirtyPages, awaitingPong };
  }

  /**
   * One heartbeat round: drops clients that did not answer the last ping or stayed stuck past the
   * bound, pings the rest. Runs every heartbeat interval; tests call it directly.
   */
  tick(): void {
    const now = this.timers.now();
    for (const client of [...this.clients]) {
      if (client.stuckSince !== undefined && now - client.stuckSince >= this.stuckTimeoutMs) {
        this.log.info({ pages: client.pages.length, bufferedBytes: client.ws.bufferedAmount }, 'live client stuck too long: closing');
        this.drop(client);
        continue;
      }
      // Drain normally restarts a stuck client; this retry only guards against a missed one.
      if (client.stuckSince !== undefined) this.flush(client);
      if (client.closed) continue;
      // A stuck client may well be alive (just slow): its pong can be queued behind our data.
      if (!client.alive && client.stuckSince === undefined) {
        this.log.debug({}, 'live client did not answer a ping: closing');
        this.drop(client);
        continue;
      }
      client.alive = false;
      try {
        client.ws.ping();
      } catch {
        this.drop(client);
      }
    }
  }

  /** Sends the cluster status to cluster subscribers if something shown changed since last time. */
  clusterTick(): void {
    if (this.clusterClients.size === 0) return;
    if (!this.refreshCluster()) return;
    for (const client of this.clusterClients) {
      client.clusterDirty = true;
      this.flush(client);
    }
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

  private accept(ws: WebSocket, socket: Duplex, query: LiveQuery): void {
    const client: Client = {
      ws,
      socket,
      pages: query.pages,
      intervalMs: query.intervalMs,
      cluster: query.cluster,
      lastSent: new Map(),
      dirty: new Set(query.pages),
      clusterDirty: query.cluster,
      timer: undefined,
      timerAt: Number.POSITIVE_INFINITY,
      stuckSince: undefined,
      alive: true,
      closed: false,
    };
    this.clients.add(client);
    for (const page of query.pages) {
      let subscribers = this.byPage.get(page);
      if (subscribers === undefined) this.byPage.set(page, (subscribers = new Set()));
      subscribers.add(client);
    }
    if (query.cluster) {
      this.clusterClients.add(client);
      if (this.clusterMessage === undefined) this.refreshCluster();
    }
    ws.on('message', () => ws.close(CLOSE_UNSUPPORTED_DATA, 'the live feed takes no input'));
    ws.on('pong', () => (client.alive = true));
    ws.on('error', (error) => this.log.debug({ err: error }, 'live client error'));
    ws.on('close', () => this.forget(client));
    // ws writes straight to the socket: its 'drain' says the buffer emptied.
    socket.on('drain', () => this.flush(client));
    this.ensureLoops();
    this.flush(client);
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
    if (this.clusterTimer === undefined && this.clusterClients.size > 0) {
      const poll = (): void => {
        this.clusterTimer = undefined;
        this.clusterTick();
        if (this.clusterClients.size > 0) this.ensureLoops();
      };
      this.clusterTimer = this.timers.setTimeout(poll, this.clusterIntervalMs);
    }
  }

  private drop(client: Client): void {
    this.forget(client);
    client.ws.terminate();
  }

  private forget(client: Client): void {
    if (client.closed) return;
    client.closed = true;
    if (client.timer !== undefined) this.timers.clearTimeout(client.timer);
    client.timer = undefined;
    client.dirty.clear();
    this.clients.delete(client);
    this.clusterClients.delete(client);
    if (this.clusterClients.size === 0) {
      this.clusterMessage = undefined;
      this.clusterKey = undefined;
    }
    for (const page of client.pages) {
      const subscribers = this.byPage.get(page);
      subscribers?.delete(client);
      if (subscribers !== undefined && subscribers.size === 0) {
        this.byPage.delete(page);
        this.messages.delete(page);
        this.changedAt.delete(page);
      }
    }
  }

  private onChange(changed: readonly PageCount[]): void {
    // A failure here must never reach the store's commit path.
    try {
      const now = this.timers.now();
      for (const { page } of changed) {
        const subscribers = this.byPage.get(page);
        if (subscribers === undefined) continue;
        this.messages.delete(page);
        this.changedAt.set(page, now);
        for (const client of subscribers) this.markDirty(client, page, now);
      }
    } catch (error) {
      this.log.error({ err: error }, 'live feed fan-out failed');
    }
  }

  private markDirty(client: Client, page: PageName, now: number): void {
    client.dirty.add(page);
    if (client.stuckSince !== undefined) return;
    const due = (client.lastSent.get(page) ?? Number.NEGATIVE_INFINITY) + client.intervalMs;
    if (due <= now) {
      this.sendPage(client, page, now);
    } else {
      this.schedule(client, due);
    }
  }

  /** Sends what is due (and possible), schedules the rest. */
  private flush(client: Client): void {
    if (client.closed || client.ws.readyState !== WebSocket.OPEN) return;
    if (client.timer !== undefined) {
      this.timers.clearTimeout(client.timer);
      client.timer = undefined;
      client.timerAt = Number.POSITIVE_INFINITY;
    }
    const now = this.timers.now();
    if (!this.writable(client, now)) return;
    let next = Number.POSITIVE_INFINITY;
    for (const page of client.dirty) {
      const due = (client.lastSent.get(page) ?? Number.NEGATIVE_INFINITY) + client.intervalMs;
      if (due > now) {
        next = Math.min(next, due);
        continue;
      }
      this.sendPage(client, page, now);
      if (client.stuckSince !== undefined || client.closed) return;
    }
    if (client.clusterDirty && this.clusterMessage !== undefined) {
      client.clusterDirty = false;
      this.send(client, this.clusterMessage, now);
    }
    if (next !== Number.POSITIVE_INFINITY) this.schedule(client, next);
  }

  private schedule(client: Client, at: number): void {
    if (client.closed || at >= client.timerAt) return;
    if (client.timer !== undefined) this.timers.clearTimeout(client.timer);
    client.timerAt = at;
    client.timer = this.timers.setTimeout(() => {
      client.timer = undefined;
      client.timerAt = Number.POSITIVE_INFINITY;
      this.flush(client);
    }, Math.max(0, at - this.timers.now()));
  }

  /** False (and the client marked stuck) while its unsent data is over the bound. */
  private writable(client: Client, now: number): boolean {
    if (client.ws.bufferedAmount > this.maxBufferedBytes) {
      client.stuckSince ??= now;
      return false;
    }
    if (client.stuckSince !== undefined) {
      // Its pings were queued behind our data: give it a full heartbeat to answer from now.
      client.stuckSince = undefined;
      client.alive = true;
    }
    return true;
  }

  private sendPage(client: Client, page: PageName, now: number): void {
    client.dirty.delete(page);
    client.lastSent.set(page, now);
    this.send(client, this.pageMessage(page), now);
  }

  private send(client: Client, message: Buffer, now: number): void {
    if (client.ws.readyState !== WebSocket.OPEN) return;
    // Encoded once per change, not once per client; sent as a text frame.
    client.ws.send(message, { binary: false });
    // Checked after writing: one message may pass the bound, then writing stops until drain.
    this.writable(client, now);
  }

  private pageMessage(page: PageName): Buffer {
    let message = this.messages.get(page);
    if (message === undefined) {
      const replicas: Record<string, number> = {};
      for (const slot of this.store.pageSlots(page)) replicas[slot.replica] = slot.count;
      const at = this.changedAt.get(page) ?? this.timers.now();
      message = Buffer.from(JSON.stringify({ type: 'page', page, count: this.store.count(page), replicas, at }), 'utf8');
      // Cached only while someone listens: the cache never outgrows the subscriptions.
      if (this.byPage.has(page)) this.messages.set(page, message);
    }
    return message;
  }

  /** Rebuilds the cluster message; true when what it shows changed. */
  private refreshCluster(): boolean {
    let status: ClusterStatus;
    try {
      status = this.clusterSource.status();
    } catch (error) {
      this.log.warn({ err: error }, 'cluster status failed');
      return false;
    }
    const key = JSON.stringify(clusterKey(status));
    if (key === this.clusterKey) return false;
    this.clusterKey = key;
    this.clusterMessage = Buffer.from(JSON.stringify({ type: 'cluster', cluster: status }), 'utf8');
    return true;
  }
}

/**
 * What a cluster update is sent for: peer states and lag, membership, the version vector, the
 * digest. Byte counters and heartbeat times change every second and alone do not warrant one.
 */
function clusterKey(status: ClusterStatus): unknown {
  return {
    node: status.node,
    peers: status.peers.map((p) => [p.address, p.replicaId, p.name, p.state, p.lagSeqs, p.behindSeqs, p.lastError, p.lastSyncAt !== undefined]),
    membership: status.membership,
    versionVector: status.versionVector,
    digest: status.digest,
  };
}
