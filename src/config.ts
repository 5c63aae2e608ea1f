/**
 * Configuration: read once from the environment and the command line, validated as a whole, frozen
 * and passed down. Nothing else reads `process.env`. Every environment variable has a matching
 * flag (`PORT` ↔ `--port 8080` or `--port=8080`); flags win over the environment (the table of
 * settings and the reading of them: `settings.ts`). Every problem is collected and reported
 * together in one `ConfigError` (errors.ts), so a bad start is fixed in one go. Addresses follow
 * the rules of `host-port.ts`, the ones discovery and the transport apply.
 *
 * Over 300 lines: `loadConfig` validates every setting in one pass so that every problem is
 * reported together; the table of settings is already apart (settings.ts).
 */
import { hostname as osHostname } from 'node:os';
import { isIP } from 'node:net';
import { ConfigError } from './errors.js';
import { compilePagePattern } from './page-pattern.js';
import { tokenProblem, tokenSet, type TokenSet } from './tokens.js';
import { formatHostPort, hostnameProblem, hostProblem, ipEndpointProblem, parseHostPort } from './host-port.js';
import {
  DEFAULT_ANTI_ENTROPY_INTERVAL_MS,
  DEFAULT_STARTUP_SYNC_TIMEOUT_MS,
  DEFAULT_CLUSTER_NAME,
  DEFAULT_CLUSTER_PORT,
  DEFAULT_DATABASE_PATH,
  DEFAULT_DISCOVERY_INTERVAL_MS,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  DEFAULT_HOST,
  DEFAULT_LIVE_MAX_CLIENTS,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_PAGES,
  DEFAULT_HOURLY_RETENTION_DAYS,
  MAX_HOURLY_RETENTION_DAYS,
  DEFAULT_MEMORY_BUDGET_MB,
  MAX_MEMORY_BUDGET_MB,
  MIN_MEMORY_BUDGET_MB,
  DEFAULT_PORT,
  DEFAULT_RATE_LIMIT_BURST,
  DEFAULT_RATE_LIMIT_PER_IP,
  flagName,
  MAX_INTERVAL_MS,
  MAX_MAX_BODY_BYTES,
  MAX_MAX_PAGES,
  MAX_NAME_LENGTH,
  MAX_RATE_LIMIT,
  MIN_CLUSTER_SECRET_LENGTH,
  readRawSettings,
  type RawSettings,
  type SettingName,
} from './settings.js';

// The settings table and usage text are part of what configuration offers its importers.
export { flagName, SETTINGS, usage } from './settings.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type SqliteSynchronous = 'normal' | 'full';
export type Checkpoints = 'sqlite' | 'external';

export interface Config {
  /** The public HTTP port (0: any free port). */
  readonly port: number;
  readonly host: string;
  /** The private port: peers' WebSocket, `/metrics`, the full `/api/cluster` (0: any free port). */
  readonly clusterPort: number;
  readonly clusterHost: string;
  /**
   * Whether the cluster port is opened: only with a CLUSTER_SECRET (a lone node without one has
   * nothing to protect it with, so nobody can join it).
   */
  readonly clusterEnabled: boolean;
  readonly databasePath: string;
  readonly nodeName: string;
  /** Peers' cluster ports as normalised `host:port` (IPv6 as `[addr]:port`, names lower-cased; see host-port.ts). */
  readonly peers: readonly string[];
  /** Name resolved for peers (A/AAAA on `clusterPort`, or SRV); undefined when discovery by DNS is off. */
  readonly discoveryDns: string | undefined;
  /** Resolver to ask instead of the system's, as `ip` or `ip:port` (`[v6]:port`). */
  readonly discoveryDnsServer: string | undefined;
  readonly discoveryIntervalMs: number;
  /** Shared secret peers prove they know; empty only for a lone node (then `clusterEnabled` is false). */
  readonly clusterSecret: string;
  readonly clusterName: string;
  readonly logLevel: LogLevel;
  /** `'*'` for any origin, else the exact origins allowed (`scheme://host[:port]`). */
  readonly corsOrigins: '*' | readonly string[];
  /** ADMIN_TOKENS, hashed (src/tokens.ts): bearer tokens for the private views and the admin routes on the public port; empty = none. */
  readonly adminTokens: TokenSet;
  readonly sqliteSynchronous: SqliteSynchronous;
  /** `external` when Litestream runs the node and owns checkpoints. */
  readonly checkpoints: Checkpoints;
  readonly heartbeatIntervalMs: number;
  readonly heartbeatTimeoutMs: number;
  readonly antiEntropyIntervalMs: number;
  /** With peers: how long counts wait at start for a sync round with each reachable peer. */
  readonly startupSyncTimeoutMs: number;
  readonly region: string | undefined;
  readonly flyAppName: string | undefined;
  /** FLY_PRIVATE_IP: the address others reach this node at, when it listens on a wildcard. */
  readonly privateIp: string | undefined;
  readonly maxBodyBytes: number;
  /** What the bounded queues share, MiB (memory-budget.ts derives each bound). */
  readonly memoryBudgetMb: number;
  /** WRITE_TOKENS, hashed (tokens.ts): `by`, batches, no rate limit or page admission. Empty: none. */
  readonly writeTokens: TokenSet;
  /** Anonymous views per second per client address; 0 when the limit is off. */
  readonly rateLimitPerIp: number;
  readonly rateLimitBurst: number;
  /** Take the client address from Fly-Client-IP / X-Forwarded-For (only behind a proxy that sets them). */
  readonly trustProxy: boolean;
  /** Pages the cluster may hold before anonymous views stop creating new ones. */
  readonly maxPages: number;
  /** Local views raise hour/day buckets and visitor sketches (ANALYTICS); false: totals only. */
  readonly analytics: boolean;
  /** Days hour buckets are kept (HOURLY_RETENTION_DAYS). */
  readonly hourlyRetentionDays: number;
  /** Names a new page must match for an anonymous view to create it; undefined: any name. */
  readonly pagePattern: RegExp | undefined;
  /** Most live-feed WebSockets at once (LIVE_MAX_CLIENTS). */
  readonly liveMaxClients: number;
  /** Where the latency probe writes its snapshot at stop (LATENCY_TRACE_DIR); undefined: probe off. */
  readonly latencyTraceDir: string | undefined;
  /** Page-name prefix the probe stamps (LATENCY_TRACE_PAGES; '' for every page). */
  readonly latencyTracePages: string;
  /** Problems that do not stop the start but must be logged loudly. */
  readonly warnings: readonly string[];
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on']);
const FALSE_WORDS = new Set(['0', 'false', 'no', 'off']);
// Letters, digits, dots, dashes, underscores: safe in logs, DNS labels and the handshake.
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Builds the configuration from `env` (normally process.env) and `argv` (the arguments after the
 * script and subcommand). Throws ConfigError naming every problem found.
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>>,
  argv: readonly string[] = [],
  defaults: { hostname?: string; pid?: number } = {},
): Config {
  const problems: string[] = [];
  const warnings: string[] = [];
  const raw: RawSettings = readRawSettings(env, argv, problems);
  const name = (key: SettingName): string => `${key} (${flagName(key)})`;

  const integer = (key: SettingName, fallback: number, min: number, max: number, unit = ''): number => {
    const text = raw[key];
    if (text === undefined) return fallback;
    const value = /^\s*\d+\s*$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      problems.push(`${name(key)} must be a whole number from ${min} to ${max}${unit}, got ${JSON.stringify(text)}`);
      return fallback;
    }
    return value;
  };
  const oneOf = <T extends string>(key: SettingName, allowed: readonly T[], fallback: T): T => {
    const text = raw[key];
    if (text === undefined) return fallback;
    const value = text.trim().toLowerCase() as T;
    if (!allowed.includes(value)) {
      problems.push(`${name(key)} must be one of ${allowed.join(', ')}, got ${JSON.stringify(text)}`);
      return fallback;
    }
    return value;
  };
  const text = (key: SettingName): string | undefined => raw[key]?.trim();
  const flag = (key: SettingName, fallback: boolean): boolean => {
    const value = text(key)?.toLowerCase();
    if (value === undefined) return fallback;
    if (TRUE_WORDS.has(value)) return true;
    if (!FALSE_WORDS.has(value)) problems.push(`${name(key)} must be true or false (1/0, yes/no, on/off), got ${JSON.stringify(raw[key])}`);
    return false;
  };

  const port = integer('PORT', DEFAULT_PORT, 0, 65535);

  const host = text('HOST') ?? DEFAULT_HOST;
  const hostTrouble = hostProblem(host);
  if (hostTrouble !== undefined) problems.push(`${name('HOST')} must be an IP address or a host name: ${hostTrouble}`);
  const clusterPort = integer('CLUSTER_PORT', DEFAULT_CLUSTER_PORT, 0, 65535);
  if (clusterPort !== 0 && clusterPort === port) problems.push(`${name('CLUSTER_PORT')} must differ from PORT (${port}): peers get a port of their own`);
  const clusterHost = text('CLUSTER_HOST') ?? host;
  // Defaulted from HOST: a bad HOST is reported once, as HOST.
  const clusterHostTrouble = text('CLUSTER_HOST') === undefined ? undefined : hostProblem(clusterHost);
  if (clusterHostTrouble !== undefined) problems.push(`${name('CLUSTER_HOST')} must be an IP address or a host name: ${clusterHostTrouble}`);

  const databasePath = raw.DATABASE_PATH ?? DEFAULT_DATABASE_PATH;
  if (databasePath.includes('\0')) problems.push(`${name('DATABASE_PATH')} must not contain a NUL character`);
  if (databasePath === ':memory:') problems.push(`${name('DATABASE_PATH')} must be a file path (counts must survive a restart), got ":memory:"`);

  const region = text('FLY_REGION');
  const flyAppName = text('FLY_APP_NAME');
  const privateIp = text('FLY_PRIVATE_IP');
  if (privateIp !== undefined && isIP(privateIp) === 0) problems.push(`${name('FLY_PRIVATE_IP')} must be an IP address, got ${JSON.stringify(privateIp)}`);
  // The host name alone would name every node on one machine alike; the port (or, for PORT=0,
  // the process id) tells them apart.
  const nodeName = text('NODE_NAME') ?? text('FLY_MACHINE_ID') ?? defaultNodeName(defaults.hostname ?? osHostname(), port, defaults.pid ?? process.pid);
  if (nodeName.length > MAX_NAME_LENGTH || !NAME_PATTERN.test(nodeName)) {
    problems.push(`${name('NODE_NAME')} must be 1–${MAX_NAME_LENGTH} letters, digits, dots, dashes or underscores, got ${JSON.stringify(nodeName)}`);
  }

  const peers: string[] = [];
  for (const entry of (raw.PEERS ?? '').split(',')) {
    const peer = entry.trim();
    if (peer === '') continue;
    // The rules discovery and the transport apply, so an entry accepted here is one they dial.
    const parsed = parseHostPort(peer);
    if ('error' in parsed) problems.push(`${name('PEERS')}: ${parsed.error}`);
    else if (!peers.includes(formatHostPort(parsed))) peers.push(formatHostPort(parsed));
  }

  let discoveryDns = text('DISCOVERY_DNS') ?? (flyAppName !== undefined ? `${flyAppName}.internal` : undefined);
  const dnsTrouble = discoveryDns === undefined ? undefined : hostnameProblem(discoveryDns);
  if (dnsTrouble !== undefined) {
    problems.push(`${name('DISCOVERY_DNS')} must be a DNS name: ${dnsTrouble}`);
    discoveryDns = undefined;
  }
  const discoveryDnsServer = text('DISCOVERY_DNS_SERVER');
  const serverTrouble = discoveryDnsServer === undefined ? undefined : ipEndpointProblem(discoveryDnsServer);
  if (serverTrouble !== undefined) problems.push(`${name('DISCOVERY_DNS_SERVER')}: ${serverTrouble}`);
  const discoveryIntervalMs = integer('DISCOVERY_INTERVAL_MS', DEFAULT_DISCOVERY_INTERVAL_MS, 100, MAX_INTERVAL_MS, ' ms');

  // Fail closed: peers without a secret would let anyone who reaches the cluster port join and
  // change counts. A lone node without one does not open the port at all.
  const clusterSecret = raw.CLUSTER_SECRET ?? '';
  const generate = '(generate one with `openssl rand -base64 32` and set the same value on every node)';
  const peersGiven = (raw.PEERS ?? '').split(',').some((entry) => entry.trim() !== '');
  if (clusterSecret === '' && (peersGiven || discoveryDns !== undefined)) {
    const why = peersGiven ? 'PEERS is set' : discoveryDns === text('DISCOVERY_DNS') ? 'DISCOVERY_DNS is set' : `DISCOVERY_DNS defaults to ${discoveryDns} on Fly.io`;
    problems.push(`${name('CLUSTER_SECRET')} must be set because ${why}: without it anyone who reaches the cluster port could join and change counts ${generate}`);
  } else if (clusterSecret !== '' && clusterSecret.length < MIN_CLUSTER_SECRET_LENGTH) {
    problems.push(`${name('CLUSTER_SECRET')} is ${clusterSecret.length} characters; it needs at least ${MIN_CLUSTER_SECRET_LENGTH} ${generate}`);
  }
  const clusterEnabled = clusterSecret !== '';

  const clusterName = text('CLUSTER_NAME') ?? flyAppName ?? DEFAULT_CLUSTER_NAME;
  if (clusterName.length > MAX_NAME_LENGTH || !NAME_PATTERN.test(clusterName)) {
    problems.push(`${name('CLUSTER_NAME')} must be 1–${MAX_NAME_LENGTH} letters, digits, dots, dashes or underscores, got ${JSON.stringify(clusterName)}`);
  }

  const logLevel = oneOf('LOG_LEVEL', LOG_LEVELS, 'info');

  let corsOrigins: '*' | string[] = '*';
  const corsText = text('CORS_ORIGINS');
  if (corsText !== undefined && corsText !== '*') {
    corsOrigins = [];
    for (const entry of corsText.split(',')) {
      const origin = entry.trim();
      if (origin === '') continue;
      const normalised = normaliseOrigin(origin);
      if (normalised === undefined) problems.push(`${name('CORS_ORIGINS')}: ${JSON.stringify(origin)} is not an origin like https://example.com (or * for any)`);
      else if (!corsOrigins.includes(normalised)) corsOrigins.push(normalised);
    }
    if (corsOrigins.length === 0 && !problems.some((p) => p.startsWith(name('CORS_ORIGINS')))) {
      problems.push(`${name('CORS_ORIGINS')} lists no origin (use * for any)`);
    }
  }

  const adminTokenList: string[] = [];
  for (const entry of (text('ADMIN_TOKENS') ?? '').split(',')) {
    const token = entry.trim();
    if (token === '') continue;
    const problem = tokenProblem(token);
    // Never the token itself in the message: it is a password.
    if (problem !== undefined) problems.push(`${name('ADMIN_TOKENS')}: token ${adminTokenList.length + 1} ${problem}`);
    adminTokenList.push(token);
  }

  const sqliteSynchronous = oneOf<SqliteSynchronous>('SQLITE_SYNCHRONOUS', ['normal', 'full'], 'normal');

  let checkpoints: Checkpoints = 'sqlite';
  const litestream = text('LITESTREAM')?.toLowerCase();
  if (litestream !== undefined) {
    if (TRUE_WORDS.has(litestream)) checkpoints = 'external';
    else if (!FALSE_WORDS.has(litestream)) problems.push(`${name('LITESTREAM')} must be true or false (1/0, yes/no, on/off), got ${JSON.stringify(raw.LITESTREAM)}`);
  }

  const heartbeatIntervalMs = integer('HEARTBEAT_INTERVAL_MS', DEFAULT_HEARTBEAT_INTERVAL_MS, 10, MAX_INTERVAL_MS, ' ms');
  const heartbeatTimeoutMs = integer('HEARTBEAT_TIMEOUT_MS', DEFAULT_HEARTBEAT_TIMEOUT_MS, 10, MAX_INTERVAL_MS, ' ms');
  if (heartbeatTimeoutMs <= heartbeatIntervalMs) {
    problems.push(`HEARTBEAT_TIMEOUT_MS (${heartbeatTimeoutMs}) must be greater than HEARTBEAT_INTERVAL_MS (${heartbeatIntervalMs})`);
  }
  const antiEntropyIntervalMs = integer('ANTI_ENTROPY_INTERVAL_MS', DEFAULT_ANTI_ENTROPY_INTERVAL_MS, 10, MAX_INTERVAL_MS, ' ms');
  const startupSyncTimeoutMs = integer('STARTUP_SYNC_TIMEOUT_MS', DEFAULT_STARTUP_SYNC_TIMEOUT_MS, 0, MAX_INTERVAL_MS, ' ms');
  const maxBodyBytes = integer('MAX_BODY_BYTES', DEFAULT_MAX_BODY_BYTES, 64, MAX_MAX_BODY_BYTES, ' bytes');
  const memoryBudgetMb = integer('MEMORY_BUDGET_MB', DEFAULT_MEMORY_BUDGET_MB, MIN_MEMORY_BUDGET_MB, MAX_MEMORY_BUDGET_MB, ' MiB');
  const liveMaxClients = integer('LIVE_MAX_CLIENTS', DEFAULT_LIVE_MAX_CLIENTS, 0, 1_000_000);

  const writeTokenList: string[] = [];
  (raw.WRITE_TOKENS ?? '').split(',').forEach((entry, i) => {
    const token = entry.trim();
    if (token === '') return;
    // The token itself is never echoed: the message names its position only.
    const trouble = tokenProblem(token);
    if (trouble !== undefined) problems.push(`${name('WRITE_TOKENS')}: token ${i + 1} ${trouble}`);
    else writeTokenList.push(token);
  });
  const rateLimitPerIp = integer('RATE_LIMIT_PER_IP', DEFAULT_RATE_LIMIT_PER_IP, 0, MAX_RATE_LIMIT, ' views/s (0 = off)');
  const rateLimitBurst = integer('RATE_LIMIT_BURST', DEFAULT_RATE_LIMIT_BURST, 1, MAX_RATE_LIMIT, ' views');
  const trustProxy = flag('TRUST_PROXY', flyAppName !== undefined);
  const maxPages = integer('MAX_PAGES', DEFAULT_MAX_PAGES, 0, MAX_MAX_PAGES, ' pages');
  const analytics = flag('ANALYTICS', true);
  const hourlyRetentionDays = integer('HOURLY_RETENTION_DAYS', DEFAULT_HOURLY_RETENTION_DAYS, 1, MAX_HOURLY_RETENTION_DAYS, ' days');
  let pagePattern: RegExp | undefined;
  const patternText = raw.PAGE_PATTERN;
  if (patternText !== undefined) {
    const compiled = compilePagePattern(patternText);
    if (compiled instanceof RegExp) pagePattern = compiled;
    else problems.push(`${name('PAGE_PATTERN')} ${compiled.problem}`);
  }

  const latencyTraceDir = raw.LATENCY_TRACE_DIR;
  if (latencyTraceDir?.includes('\0') === true) problems.push(`${name('LATENCY_TRACE_DIR')} must not contain a NUL character`);
  const latencyTracePages = raw.LATENCY_TRACE_PAGES ?? '';

  if (problems.length > 0) throw new ConfigError(problems);

  return Object.freeze({
    port,
    host,
    clusterPort,
    clusterHost,
    clusterEnabled,
    databasePath,
    nodeName,
    peers: Object.freeze(peers),
    discoveryDns,
    discoveryDnsServer,
    discoveryIntervalMs,
    clusterSecret,
    clusterName,
    logLevel,
    corsOrigins: corsOrigins === '*' ? '*' : Object.freeze(corsOrigins),
    adminTokens: Object.freeze(tokenSet(adminTokenList)),
    sqliteSynchronous,
    checkpoints,
    heartbeatIntervalMs,
    heartbeatTimeoutMs,
    antiEntropyIntervalMs,
    startupSyncTimeoutMs,
    region,
    flyAppName,
    privateIp,
    maxBodyBytes,
    memoryBudgetMb,
    writeTokens: Object.freeze(tokenSet(writeTokenList)),
    rateLimitPerIp,
    rateLimitBurst,
    trustProxy,
    maxPages,
    analytics,
    hourlyRetentionDays,
    pagePattern,
    liveMaxClients,
    latencyTraceDir,
    latencyTracePages,
    warnings: Object.freeze(warnings),
  });
}

/** `<host name>-<port>`, or `<host name>-p<pid>` when the port is picked at start; valid as NODE_NAME. */
export function defaultNodeName(hostname: string, port: number, pid: number): string {
  const base = hostname.split('.')[0]?.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'node';
  return `${base.slice(0, MAX_NAME_LENGTH - 12)}-${port === 0 ? `p${pid}` : port}`;
}

/** `scheme://host[:port]` in the form browsers send in `Origin`, or undefined. */
export function normaliseOrigin(value: string): string | undefined {
  // An origin is a scheme and an authority, nothing more (a trailing "/" is forgiven).
  if (!/^https?:\/\/[^/?#@\s]+\/?$/i.test(value)) return undefined;
  try {
    return new URL(value).origin;
  } catch {
    return undefined;
  }
}
