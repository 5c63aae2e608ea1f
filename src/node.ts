/**
 * The composition root: the only place concrete adapters are chosen. Starts, in order: the store
 * (opened and migrated), metrics, the replicator and its WebSocket transport, the live feed, the
 * HTTP server, then discovery (once the port is bound). `stop()` undoes it in reverse: stop
 * accepting, drain in-flight requests, stop discovery, the live feed and replication, commit what
 * is queued and close the database, drop metric watchers.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from './config.js';
import type { RandomBytes } from './ids.js';
import type { Logger } from './log.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createApp } from './http/app.js';
import { sessionKey, SessionTokens } from './http/session-token.js';
import { LIVE_MAX_HEADER_BYTES, LIVE_PATH, LiveFeed } from './http/live-feed.js';
import type { ClusterStatusSource } from './cluster-status.js';
import type { Readiness } from './http/routes.js';
import { UpgradeDispatcher } from './http/upgrade-dispatcher.js';
import { ViewPolicy } from './http/view-policy.js';
import { createDiscovery } from './discovery/create-discovery.js';
import { DiscoveryLoop } from './discovery/discovery.js';
import { MAX_FRAME_BYTES } from './protocol/messages.js';
import { createReplicationMetrics } from './replication/replication-metrics.js';
import { CatchUp } from './replication/catch-up.js';
import { Replicator } from './replication/replicator.js';
import { realTimers } from './timers.js';
import { openSqliteStore } from './store/sqlite-store.js';
import { CLUSTER_PATH, WebSocketTransport } from './transport/websocket-transport.js';
import type { Store } from './store/store.js';

/** How long stop() lets in-flight requests finish before cutting their connections. */
export const STOP_GRACE_MS = 10_000;
/** Idle keep-alive connections are closed after this long (Node's default is 5 s). */
export const KEEP_ALIVE_TIMEOUT_MS = 5_000;

export interface NodeOptions {
  readonly log: Logger;
  /** Randomness for the replica id (tests make it reproducible). */
  readonly random?: RandomBytes;
  readonly now?: () => Date;
}

export interface RunningNode {
  /** The port actually bound (PORT=0 picks one). */
  readonly port: number;
  /** A URL this node answers on, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly store: Store;
  readonly metrics: Metrics;
  /** Mount WebSocket endpoints here (`/cluster`, the live page feed). */
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

export async function startNode(config: Config, options: NodeOptions): Promise<RunningNode> {
  const { log } = options;
  const now = options.now ?? (() => new Date());
  const startedAt = now().toISOString();
  const version = packageVersion();
  for (const warning of config.warnings) log.warn({ warning }, warning);

  const store = await openSqliteStore({
    path: config.databasePath,
    synchronous: config.sqliteSynchronous,
    checkpoints: config.checkpoints,
    ...(options.random !== undefined ? { random: options.random } : {}),
    log,
  });
  // The store logs its own identity outcome (created / kept / minted and why).

  const metrics = createMetrics({ defaultMetrics: true });
  const unwatchStore = metrics.watchStore(store);
  let readiness: Readiness = 'starting';
  const server: Server = createServer({ keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS, maxHeaderSize: LIVE_MAX_HEADER_BYTES });
  const upgrades = new UpgradeDispatcher();
  let port = config.port;
  const address = (): string => `${urlHost(config.host)}:${port}`;
  // Where peers and browsers reach this node: on Fly.io a wildcard listener is reached at its 6PN
  // address, which the membership shows (every node there would otherwise say "localhost").
  const advertised = (): string =>
    config.privateIp !== undefined && (config.host === '::' || config.host === '0.0.0.0') ? `${urlHost(config.privateIp)}:${port}` : address();

  // Replication: peers dial `/cluster` on this server; discovery tells the replicator whom to dial.
  const transport = new WebSocketTransport({ maxFrameBytes: MAX_FRAME_BYTES, log });
  upgrades.mount(CLUSTER_PATH, (req, socket, head) => transport.handleUpgrade(req, socket, head));
  const replicator = new Replicator({
    store,
    transport,
    cluster: config.clusterName,
    secret: config.clusterSecret,
    node: { name: config.nodeName, version, startedAt: Date.parse(startedAt), ...(config.region !== undefined ? { region: config.region } : {}) },
    log,
    metrics: createReplicationMetrics(metrics.registry),
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    heartbeatTimeoutMs: config.heartbeatTimeoutMs,
    antiEntropyIntervalMs: config.antiEntropyIntervalMs,
  });
  const cluster: ClusterStatusSource = {
    status: () =>
      replicator.clusterStatus({
        name: config.nodeName,
        address: advertised(),
        ...(config.region !== undefined ? { region: config.region } : {}),
        version,
        startedAt,
      }),
  };
  // Stopped in reverse order of this list: whatever was added last first, replication last
  // (all before the store closes).
  const stopBeforeStore: Array<() => Promise<void> | void> = [() => replicator.stop()];
  // Catch up before serving counts (replication/catch-up.ts): count requests wait for it.
  const catchUp = new CatchUp({
    source: replicator,
    timers: realTimers,
    timeoutMs: config.startupSyncTimeoutMs,
    log,
    slots: () => store.stats().slots,
  });
  stopBeforeStore.push(() => catchUp.stop());
  // The live page feed (browsers, `npm run bench`): closed before the store it reads.
  // Session tokens: every node of the cluster derives the same key from CLUSTER_SECRET.
  const sessions = new SessionTokens(sessionKey(config.clusterSecret, config.clusterName));
  const liveFeed = new LiveFeed({ store, cluster, log, sessions });
  upgrades.mount(LIVE_PATH, liveFeed.handleUpgrade);
  stopBeforeStore.push(() => liveFeed.stop());

  const app = createApp({
    store,
    cluster,
    metrics,
    log,
    corsOrigins: config.corsOrigins,
    maxBodyBytes: config.maxBodyBytes,
    views: new ViewPolicy({
      store,
      writeTokens: config.writeTokens,
      rateLimitPerIp: config.rateLimitPerIp,
      rateLimitBurst: config.rateLimitBurst,
      trustProxy: config.trustProxy,
      maxPages: config.maxPages,
      pagePattern: config.pagePattern,
      registry: metrics.registry,
    }),
    adminTokens: config.adminTokens,
    sessions,
    readiness: () => (readiness === 'ready' && !catchUp.ready ? 'catching_up' : readiness),
    gate: catchUp,
  });
  const handle = app.callback();
  let inFlight = 0;
  let drained: (() => void) | undefined;
  server.on('request', (req, res) => {
    inFlight++;
    res.once('close', () => {
      inFlight--;
      // While stopping, a keep-alive connection that just finished its request is idle now.
      if (readiness === 'shutting_down') server.closeIdleConnections();
      if (inFlight === 0) drained?.();
    });
    void handle(req, res);
  });
  server.on('upgrade', upgrades.dispatch);
  server.on('clientError', (error, socket) => {
    // Malformed HTTP: answer 400 if the socket still can, never crash or log at error level.
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
    log.debug({ err: error }, 'client error');
  });

  replicator.start();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    await liveFeed.stop();
    await replicator.stop();
    unwatchStore();
    await store.close();
    throw error;
  }
  port = (server.address() as AddressInfo).port;
  const url = `http://${address()}`;
  readiness = 'ready';
  replicator.updatePresence({ address: advertised() });
  // Discovery starts once the server listens: peers found by A/AAAA records listen on the bound
  // port (PORT=0 picks one). config.ts has already validated the DNS settings.
  const discovery = new DiscoveryLoop({
    discovery: createDiscovery({ peers: config.peers, dnsName: config.discoveryDns, dnsServer: config.discoveryDnsServer, port }),
    intervalMs: config.discoveryDns === undefined ? 0 : config.discoveryIntervalMs,
    onPeers: (addresses) => {
      replicator.setPeers(addresses);
      catchUp.peersDiscovered();
    },
    log,
  });
  stopBeforeStore.push(() => discovery.stop());
  catchUp.start(config.peers.length > 0 || config.discoveryDns !== undefined);
  discovery.start();
  log.info({ port, url, host: config.host, version, database: config.databasePath, replicaId: store.replicaId }, 'listening');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      readiness = 'shutting_down';
      log.info({ inFlight }, 'stopping');
      // 1. Stop accepting; idle keep-alive connections close now, busy ones after their response.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
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
      server.closeAllConnections();
      // 3. Replication and other components that use the store. Before waiting for the server:
      //    upgraded WebSocket connections keep it from closing until they end.
      for (const stopComponent of stopBeforeStore.reverse()) await stopComponent();
      await closed;
      // 4. Commit what is queued and close the database.
      await store.close();
      unwatchStore();
      log.info({}, 'stopped');
    })();
    return stopping;
  };

  return { port, url, store, metrics, upgrades, stop };
}
