/**
 * The composition root: the only place concrete adapters are chosen. Starts, in order: the ports
 * (public HTTP, and the private cluster port when a CLUSTER_SECRET is set) — bound before any file
 * is created, so a start that cannot listen leaves nothing behind; the database lock; the store
 * (opened and migrated); metrics; replication; the apps on both servers; discovery. `stop()`
 * undoes it in reverse: stop accepting, drain in-flight requests, stop discovery, the live feed
 * and replication, commit what is queued and close the database, release the lock.
 *
 * Over 300 lines: `startNode` builds the parts in order and `stop()` undoes them in reverse in the
 * same function, so that the two orders can be checked side by side.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from './config.js';
import { AppError, errorBody } from './errors.js';
import { formatHostPort } from './host-port.js';
import type { RandomBytes } from './ids.js';
import type { LatencyProbe } from './latency-probe.js';
import type { Logger } from './log.js';
import { createMetrics, METRIC_PREFIX, type Metrics } from './metrics.js';
import { createApp } from './http/app.js';
import { sessionKey, SessionTokens } from './http/session-token.js';
import { LIVE_MAX_HEADER_BYTES, LIVE_PATH, LiveFeed } from './http/live-feed.js';
import { clientErrorStatus, headersProblem, MAX_HEADER_BYTES, MAX_REQUEST_CONNECTIONS, refuseHeaders, serverOptions } from './http/server-limits.js';
import type { ClusterStatusSource, DiscoveryInfo } from './cluster-status.js';
import type { Readiness } from './http/routes.js';
import { UpgradeDispatcher } from './http/upgrade-dispatcher.js';
import { IdempotencyKeys } from './http/idempotency.js';
import { StepRunner } from './steps.js';
import { ViewPolicy } from './http/view-policy.js';
import { createDiscovery } from './discovery/create-discovery.js';
import { DiscoveryLoop } from './discovery/discovery.js';
import { MAX_FRAME_BYTES } from './protocol/messages.js';
import { createReplicationMetrics } from './replication/replication-metrics.js';
import { CatchUp } from './replication/catch-up.js';
import { Replicator } from './replication/replicator.js';
import { lockDatabase, type DatabaseLock } from './store/database-lock.js';
import { AT_ONCE_AFTER_IDLE_MS, MAX_QUEUED_INCREMENTS_FOR_LATENCY } from './store/group-commit.js';
import { realTimers } from './timers.js';
import { openSqliteStore } from './store/sqlite-store.js';
import { memoryBounds } from './memory-budget.js';
import { MAX_SEND_BUFFER_BYTES } from './replication/sync-sender.js';
import { CLUSTER_PATH, WebSocketTransport } from './transport/websocket-transport.js';
import type { Store } from './store/store.js';
import { warmUp } from './warm-up.js';

/** How long stop() lets in-flight requests finish before cutting their connections. */
export const STOP_GRACE_MS = 10_000;
export { KEEP_ALIVE_TIMEOUT_MS } from './http/server-limits.js';

export interface NodeOptions {
  readonly log: Logger;
  /** Randomness for the replica id (tests make it reproducible). */
  readonly random?: RandomBytes;
  readonly now?: () => Date;
  /**
   * Bench only (bench/bench-node.ts, BENCH_NODE_UNSEALED=1): peer sessions skip the per-frame MAC, so `npm run bench`
   * can show what it costs end to end. Never read from configuration; a node with it talks only
   * to nodes with it (each side refuses the other's first frame after auth).
   */
  readonly unsealedFrames?: boolean;
  /**
   * Bench only (bench/bench-node.ts, BENCH_NODE_COALESCE_WINDOW_MS): at most one delta frame per
   * peer per this many ms (SyncSenderOptions.coalesceWindowMs), so `npm run bench` can show what
   * bytes a window saves for what latency. Never read from configuration.
   */
  readonly coalesceWindowMs?: number;
  /**
   * Bench only (bench/bench-node.ts, BENCH_NODE_COALESCE_OFF=1): Infinity sends every live delta
   * at once, never merged behind a busy socket (ReplicatorOptions.coalesceAboveBytes), so the
   * bench can measure what a quiet host sends on a busy one. Never read from configuration.
   */
  readonly coalesceAboveBytes?: number;
  /** The latency probe (LATENCY_TRACE_DIR, bench diagnostics); undefined: off, and free. */
  readonly probe?: LatencyProbe;
  /**
   * The process is the node's own (main.ts): before `listening`, warm the first requests' paths
   * and collect the start-up garbage (warm-up.ts). Off in tests that start nodes in their own
   * process, where a full GC would walk the test runner's heap.
   */
  readonly warmUp?: boolean;
  /**
   * Aborted when a stop is asked for while the node starts (main.ts: a signal before startNode
   * returns): the warm-up is cut short, the start completes, and the caller stops the node.
   */
  readonly stopRequested?: AbortSignal;
}

export interface RunningNode {
  /** The public port actually bound (PORT=0 picks one). */
  readonly port: number;
  /** A URL this node answers on, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** The cluster port actually bound; undefined when it is not opened (no CLUSTER_SECRET). */
  readonly clusterPort: number | undefined;
  /** The private URL (peers' `/cluster`, `/metrics`, the full `/api/cluster`), when opened. */
  readonly clusterUrl: string | undefined;
  readonly store: Store;
  readonly metrics: Metrics;
  /** WebSocket endpoints of the public port (the live page feed); unknown paths get a 404. */
  readonly upgrades: UpgradeDispatcher;
  /** Idempotent: every call returns the same promise. */
  stop(): Promise<void>;
}

/** The package version, from the package.json above this module (src/ or dist/src/). */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
      if (parsed.name === 'distributed-sqlite' && typeof parsed.version === 'string') return parsed.version;
    }
    const parent = dirname(dir);
    if (parent === dir) return '0.0.0';
    dir = parent;
  }
}

/** A host to put in URLs: wildcard listen addresses are reached through loopback. */
function urlHost(host: string): string {
  if (host === '::' || host === '') return 'localhost';
  if (host === '0.0.0.0') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/** Why a listen failed, in one line that says what to change. */
function listenError(error: unknown, host: string, port: number, setting: 'PORT' | 'CLUSTER_PORT'): AppError {
  const code = (error as NodeJS.ErrnoException).code ?? 'error';
  const where = `${formatHostPort({ host, port })} (${setting})`;
  const hostSetting = setting === 'PORT' ? 'HOST' : 'CLUSTER_HOST';
  const advice: Record<string, string> = {
    EADDRINUSE: `the port is in use by another process: stop it, or set ${setting} to a free port`,
    EACCES: `this user may not bind that port: use one above 1023, or set ${setting} to another`,
    EADDRNOTAVAIL: `the address is not one of this machine's: set ${hostSetting} to one of its addresses (or :: for all)`,
    ENOTFOUND: `the host name does not resolve: set ${hostSetting} to an address or a name this machine resolves`,
    EAI_AGAIN: `the host name could not be resolved now: set ${hostSetting} to an IP address`,
  };
  return new AppError('start_failed', `cannot listen on ${where}: ${advice[code] ?? (error as Error).message} (${code})`, { cause: error });
}

function listen(server: Server, port: number, host: string, setting: 'PORT' | 'CLUSTER_PORT'): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(listenError(error, host, port, setting));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) resolve();
    else server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** The directory of DATABASE_PATH, created when missing; `start_failed` in one line when it cannot be. */
function prepareDataDirectory(databasePath: string): void {
  const dir = dirname(databasePath);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new AppError('start_failed', `cannot create the directory ${dir} of DATABASE_PATH (${code}): create it, or make it writable by this user`, { cause: error });
  }
}

export async function startNode(config: Config, options: NodeOptions): Promise<RunningNode> {
  const { log, probe } = options;
  const now = options.now ?? (() => new Date());
  const startedAt = now().toISOString();
  const version = packageVersion();
  for (const warning of config.warnings) log.warn({ warning }, warning);
  // Every bound a client or a peer can fill, from MEMORY_BUDGET_MB (memory-budget.ts).
  const bounds = memoryBounds(config.memoryBudgetMb, { maxPeerSendBufferBytes: MAX_SEND_BUFFER_BYTES });

  // 1. The ports, before any file: until the apps are mounted every request gets a 503.
  let readiness: Readiness = 'starting';
  let inFlight = 0;
  let drained: (() => void) | undefined;
  const notYet = (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(503, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
    res.end(JSON.stringify(errorBody(new AppError('not_ready', 'the node is starting'))));
  };
  const serve = (server: Server, upgrades: UpgradeDispatcher): { handle: (h: (req: IncomingMessage, res: ServerResponse) => void) => void } => {
    let handler = notYet;
    server.on('request', (req, res) => {
      inFlight++;
      res.once('close', () => {
        inFlight--;
        // While stopping, a keep-alive connection that just finished its request is idle now.
        if (readiness === 'shutting_down') server.closeIdleConnections();
        if (inFlight === 0) drained?.();
      });
      // Only the live feed (an upgrade) takes the public server's full header size.
      probe?.request(req.url, res);
      const tooLarge = headersProblem(req);
      if (tooLarge !== undefined) refuseHeaders(res, tooLarge);
      else handler(req, res);
    });
    server.on('upgrade', upgrades.dispatch);
    server.on('clientError', (error, socket) => {
      // Malformed HTTP: answer if the socket still can, never crash or log at error level. A client
      // too slow for the timeouts of server-limits.ts gets 408, headers past the parser's limit 431.
      if (socket.writable) socket.end(`HTTP/1.1 ${clientErrorStatus(error)}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      else socket.destroy();
      log.debug({ err: error }, 'client error');
    });
    return { handle: (h) => (handler = h) };
  };
  // Timeouts, header limits and the connection cap against slow and greedy clients: server-limits.ts.
  // The public server parses the live feed's larger headers; every other route is held to less.
  const server: Server = createServer(serverOptions(LIVE_MAX_HEADER_BYTES));
  server.maxConnections = config.liveMaxClients + MAX_REQUEST_CONNECTIONS;
  const upgrades = new UpgradeDispatcher();
  const publicSide = serve(server, upgrades);
  // The private port: only with a secret (a lone node without one has no cluster to protect).
  const clusterServer = config.clusterEnabled ? createServer(serverOptions(MAX_HEADER_BYTES)) : undefined;
  if (clusterServer !== undefined) clusterServer.maxConnections = MAX_REQUEST_CONNECTIONS;
  const clusterUpgrades = new UpgradeDispatcher();
  const privateSide = clusterServer === undefined ? undefined : serve(clusterServer, clusterUpgrades);

  const port = await listen(server, config.port, config.host, 'PORT');
  let clusterPort: number | undefined;
  let lock: DatabaseLock | undefined;
  let store: Store;
  try {
    if (clusterServer !== undefined) clusterPort = await listen(clusterServer, config.clusterPort, config.clusterHost, 'CLUSTER_PORT');
    // 2. One process per database, then the store.
    prepareDataDirectory(config.databasePath);
    lock = lockDatabase(config.databasePath, { node: config.nodeName, startedAt });
    if (lock.withoutRecord) log.warn({ path: lock.path }, 'disk full: the database lock was taken without its owner record (a later start takes it for stale)');
    store = await openSqliteStore({
      path: config.databasePath,
      synchronous: config.sqliteSynchronous,
      checkpoints: config.checkpoints,
      maxQueuedIncrements: Math.min(bounds.maxQueuedIncrements, MAX_QUEUED_INCREMENTS_FOR_LATENCY),
      commitAtOnceAfterIdleMs: AT_ONCE_AFTER_IDLE_MS,
      // A digest left unknown by a crash or a restore is recounted while serving: a start stays bounded.
      digestRecount: 'background',
      ...(probe !== undefined ? { probe } : {}),
      hourlyRetentionDays: config.hourlyRetentionDays,
      analytics: config.analytics,
      ...(options.random !== undefined ? { random: options.random } : {}),
      log,
    });
    // The store logs its own identity outcome (created / kept / minted and why).
  } catch (error) {
    lock?.release();
    await closeServer(server);
    if (clusterServer !== undefined) await closeServer(clusterServer);
    throw error;
  }

  const address = (): string => `${urlHost(config.host)}:${port}`;
  const clusterAddress = (): string | undefined => (clusterPort === undefined ? undefined : `${urlHost(config.clusterHost)}:${clusterPort}`);
  // Where peers reach this node: on Fly.io a wildcard listener is reached at its 6PN address,
  // which the membership shows (every node there would otherwise say "localhost").
  const advertised = (): string => {
    const shown = clusterPort ?? port;
    const host = clusterPort === undefined ? config.host : config.clusterHost;
    return config.privateIp !== undefined && (host === '::' || host === '0.0.0.0') ? `${urlHost(config.privateIp)}:${shown}` : (clusterAddress() ?? address());
  };

  const metrics = createMetrics({ defaultMetrics: true });
  const unwatchStore = metrics.watchStore(store);

  // Replication: peers dial `/cluster` on the cluster port; discovery tells the replicator whom to dial.
  const transport = new WebSocketTransport({ maxFrameBytes: MAX_FRAME_BYTES, log });
  clusterUpgrades.mount(CLUSTER_PATH, (req, socket, head) => transport.handleUpgrade(req, socket, head));
  const replicator = new Replicator({
    store,
    transport,
    cluster: config.clusterName,
    secret: config.clusterSecret,
    node: { name: config.nodeName, version, startedAt: Date.parse(startedAt), ...(config.region !== undefined ? { region: config.region } : {}) },
    log,
    metrics: createReplicationMetrics(metrics.registry, METRIC_PREFIX),
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    heartbeatTimeoutMs: config.heartbeatTimeoutMs,
    antiEntropyIntervalMs: config.antiEntropyIntervalMs,
    maxSendBufferBytes: bounds.peerSendBufferBytes,
    ...(options.unsealedFrames === true ? { unsealedFrames: true } : {}),
    ...(options.coalesceWindowMs !== undefined ? { coalesceWindowMs: options.coalesceWindowMs } : {}),
    ...(options.coalesceAboveBytes !== undefined ? { coalesceAboveBytes: options.coalesceAboveBytes } : {}),
    mergeAtOnceAfterIdleMs: AT_ONCE_AFTER_IDLE_MS,
    ...(probe !== undefined ? { probe } : {}),
  });
  // Catch up before serving counts (replication/catch-up.ts): count requests wait for it.
  const catchUp = new CatchUp({
    source: replicator,
    timers: realTimers,
    timeoutMs: config.startupSyncTimeoutMs,
    log,
    slots: () => store.stats().slots,
    // A new id minted at open means this copy went back in time (a restore) or lost its identity.
    needsOnePeer: store.identity.outcome === 'minted',
  });
  // Discovery: PEERS entries and DNS A/AAAA answers name peers' cluster ports (SRV its own).
  const discovery = new DiscoveryLoop({
    discovery: createDiscovery({ peers: config.peers, dnsName: config.discoveryDns, dnsServer: config.discoveryDnsServer, port: clusterPort ?? config.clusterPort }),
    intervalMs: config.discoveryDns === undefined ? 0 : config.discoveryIntervalMs,
    onPeers: (addresses) => {
      replicator.setPeers(addresses);
      catchUp.peersDiscovered();
    },
    warnWhenEmpty: config.discoveryDns !== undefined,
    log,
  });
  const discoveryInfo = (): DiscoveryInfo | undefined => {
    if (config.discoveryDns === undefined && config.peers.length === 0) return undefined;
    const status = discovery.status();
    const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
    return dropUndefined({
      ...(config.discoveryDns !== undefined ? { dns: config.discoveryDns } : {}),
      peers: [...config.peers],
      lastLookupAt: iso(status.lastLookupAt),
      lastSuccessAt: iso(status.lastSuccessAt),
      answers: status.peers === undefined ? undefined : [...status.peers],
      lastError: status.lastError,
    });
  };
  const cluster: ClusterStatusSource = {
    status: () => {
      const status = replicator.clusterStatus({
        name: config.nodeName,
        address: advertised(),
        ...(config.region !== undefined ? { region: config.region } : {}),
        version,
        startedAt,
      });
      const found = discoveryInfo();
      return found === undefined ? status : { ...status, discovery: found };
    },
  };
  // Stopped in reverse order of this list: whatever was added last first, replication last
  // (all before the store closes).
  const stopBeforeStore: Array<() => Promise<void> | void> = [() => replicator.stop(), () => catchUp.stop()];
  // The live page feed (browsers, `npm run bench`): closed before the store it reads.
  // Session tokens: every node of the cluster derives the same key from CLUSTER_SECRET.
  const sessions = new SessionTokens(sessionKey(config.clusterSecret, config.clusterName));
  const liveFeed = new LiveFeed({
    store,
    cluster,
    log,
    sessions,
    maxClients: config.liveMaxClients,
    maxClientBytes: bounds.liveFeedBytes,
    gate: catchUp,
    ...(probe !== undefined ? { probe } : {}),
  });
  upgrades.mount(LIVE_PATH, liveFeed.handleUpgrade, { maxHeaderBytes: LIVE_MAX_HEADER_BYTES });
  stopBeforeStore.push(() => liveFeed.stop());

  const appDeps = {
    store,
    cluster,
    metrics,
    log,
    corsOrigins: config.corsOrigins,
    maxBodyBytes: config.maxBodyBytes,
    bodyBytesInFlight: bounds.bodyBytesInFlight,
    views: new ViewPolicy({
      store,
      writeTokens: config.writeTokens,
      rateLimitPerIp: config.rateLimitPerIp,
      rateLimitBurst: config.rateLimitBurst,
      trustProxy: config.trustProxy,
      maxPages: config.maxPages,
      pagePattern: config.pagePattern,
      // Every node derives the same daily visitor keys from the cluster secret (visitor-key.ts).
      ...(config.clusterSecret !== '' ? { visitorSecret: config.clusterSecret } : {}),
      visitors: config.analytics,
      registry: metrics.registry,
    }),
    adminTokens: config.adminTokens,
    sessions,
    readiness: () => (readiness === 'ready' && !catchUp.ready ? 'catching_up' : readiness),
    gate: catchUp,
    // One for both ports: a batch retried on the other port is still the same batch.
    idempotency: new IdempotencyKeys(),
    // One for both ports: they share the loop turns whose share it bounds.
    steps: new StepRunner(),
    ...(probe !== undefined ? { probe } : {}),
  };
  // The same routes on both ports; the private ones (`/metrics`, the full `/api/cluster`, admin)
  // open on the public port only with an admin token, and always on the cluster port.
  publicSide.handle(createApp(appDeps).callback());
  privateSide?.handle(createApp({ ...appDeps, privileged: true }).callback());

  replicator.start();
  const url = `http://${address()}`;
  const clusterUrl = clusterAddress() === undefined ? undefined : `http://${clusterAddress()}`;
  readiness = 'ready';
  replicator.updatePresence({ address: advertised() });
  stopBeforeStore.push(() => discovery.stop());
  catchUp.start(config.peers.length > 0 || config.discoveryDns !== undefined);
  discovery.start();
  // Last, so the GC collects everything the start left behind; requests are served meanwhile.
  // The copy of the public app counts into metrics of its own and takes no admin token.
  const warmed =
    options.warmUp === true
      ? await warmUp({ render: () => metrics.render(), app: createApp({ ...appDeps, adminTokens: [], metrics: createMetrics() }).callback(), ...(options.stopRequested !== undefined ? { stopRequested: options.stopRequested } : {}) })
      : undefined;
  if (warmed?.requestsSkipped !== undefined && options.stopRequested?.aborted !== true) log.warn({ reason: warmed.requestsSkipped }, 'warm-up requests skipped: the first requests will be slower');
  const warmUpMs = warmed === undefined ? undefined : Math.round(warmed.ms);
  log.info(
    { port, url, host: config.host, ...(clusterPort !== undefined ? { clusterPort, clusterUrl, clusterHost: config.clusterHost } : { clusterPort: null }), version, database: config.databasePath, replicaId: store.replicaId, ...(warmUpMs !== undefined ? { warmUpMs } : {}) },
    'listening',
  );
  if (clusterPort === undefined) log.info({}, 'cluster port not opened: no CLUSTER_SECRET, so this node runs alone');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      readiness = 'shutting_down';
      log.info({ inFlight }, 'stopping');
      const servers = clusterServer === undefined ? [server] : [server, clusterServer];
      // 1. Stop accepting; idle keep-alive connections close now, busy ones after their response.
      const closed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      for (const s of servers) s.closeIdleConnections();
      // 2. Wait for in-flight requests (bounded: a stuck client must not hold the node forever).
      if (inFlight > 0) {
        let grace: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((resolve) => (drained = resolve)),
          new Promise<void>((resolve) => (grace = setTimeout(resolve, STOP_GRACE_MS))),
        ]);
        clearTimeout(grace);
        if (inFlight > 0) log.warn({ inFlight }, 'requests still running after the grace period: closing their connections');
      }
      for (const s of servers) s.closeAllConnections();
      // 3. Replication and other components that use the store. Before waiting for the servers:
      //    upgraded WebSocket connections keep them from closing until they end.
      for (const stopComponent of stopBeforeStore.reverse()) await stopComponent();
      await closed;
      // 4. Commit what is queued and close the database; then the file is free for another process.
      await store.close();
      unwatchStore();
      metrics.stop();
      lock?.release();
      log.info({}, 'stopped');
    })();
    return stopping;
  };

  return { port, url, clusterPort, clusterUrl, store, metrics, upgrades, stop };
}

/** `value` without its undefined fields: the status JSON leaves them out, never `null`. */
function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
