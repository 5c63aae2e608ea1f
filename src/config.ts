/**
 * Configuration: read once from the environment and the command line, validated as a whole, frozen
 * and passed down. Nothing else reads `process.env`. Every environment variable has a matching
 * flag (`PORT` ↔ `--port 8080` or `--port=8080`); flags win over the environment. Every problem is
 * collected and reported together in one `ConfigError` (errors.ts), so a bad start is fixed in one go.
 */
import { hostname as osHostname } from 'node:os';
import { isIP } from 'node:net';
import { ConfigError } from './errors.js';
import { formatHostPort, hostnameProblem, hostProblem, ipEndpointProblem, parseHostPort } from './host-port.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type SqliteSynchronous = 'normal' | 'full';
export type Checkpoints = 'sqlite' | 'external';

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly databasePath: string;
  readonly nodeName: string;
  /** Static peers as normalised `host:port` (IPv6 as `[addr]:port`, names lower-cased; see host-port.ts). */
  readonly peers: readonly string[];
  /** Name resolved for peers (A/AAAA on `port`, or SRV); undefined when discovery by DNS is off. */
  readonly discoveryDns: string | undefined;
  /** Resolver to ask instead of the system's, as `ip` or `ip:port` (`[v6]:port`). */
  readonly discoveryDnsServer: string | undefined;
  readonly discoveryIntervalMs: number;
  /** Shared secret peers prove they know; empty when unset (see `warnings`). */
  readonly clusterSecret: string;
  readonly clusterName: string;
  readonly logLevel: LogLevel;
  /** `'*'` for any origin, else the exact origins allowed (`scheme://host[:port]`). */
  readonly corsOrigins: '*' | readonly string[];
  readonly sqliteSynchronous: SqliteSynchronous;
  /** `external` when Litestream runs the node and owns checkpoints. */
  readonly checkpoints: Checkpoints;
  readonly heartbeatIntervalMs: number;
  readonly heartbeatTimeoutMs: number;
  readonly antiEntropyIntervalMs: number;
  readonly region: string | undefined;
  readonly flyAppName: string | undefined;
  /** FLY_PRIVATE_IP: the address others reach this node at, when it listens on a wildcard. */
  readonly privateIp: string | undefined;
  readonly maxBodyBytes: number;
  /** Problems that do not stop the start but must be logged loudly (e.g. no cluster secret). */
  readonly warnings: readonly string[];
}

export const DEFAULT_PORT = 8080;
export const DEFAULT_HOST = '::';
export const DEFAULT_DATABASE_PATH = './data/counters.db';
export const DEFAULT_CLUSTER_NAME = 'distributed-sqlite';
export const DEFAULT_DISCOVERY_INTERVAL_MS = 5000;
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1000;
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 5000;
export const DEFAULT_ANTI_ENTROPY_INTERVAL_MS = 2000;
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/** Upper bound for MAX_BODY_BYTES: a batch of 10,000 views fits comfortably in far less. */
export const MAX_MAX_BODY_BYTES = 64 * 1024 * 1024;
/** Upper bound for every *_MS interval: one day. */
export const MAX_INTERVAL_MS = 24 * 60 * 60 * 1000;
export const MAX_NAME_LENGTH = 128;

/** Every setting, in the order the README documents them. The flag is the lower-kebab name. */
export const SETTINGS = [
  { env: 'PORT', default: String(DEFAULT_PORT), help: 'HTTP port (peers and browsers). 0 picks a free port.' },
  { env: 'HOST', default: DEFAULT_HOST, help: 'Address to listen on (`::` accepts IPv4 and IPv6).' },
  { env: 'DATABASE_PATH', default: DEFAULT_DATABASE_PATH, help: 'SQLite file; its directory is created.' },
  { env: 'NODE_NAME', default: 'FLY_MACHINE_ID, else the host name', help: 'Human name of this node.' },
  { env: 'PEERS', default: '(none)', help: 'Static peers, comma-separated `host:port` (IPv6: `[addr]:port`).' },
  { env: 'DISCOVERY_DNS', default: '`${FLY_APP_NAME}.internal` on Fly.io, else off', help: 'Name resolved for peers (A/AAAA on PORT, or SRV).' },
  { env: 'DISCOVERY_DNS_SERVER', default: 'system resolver', help: 'DNS server to ask, `ip` or `ip:port`.' },
  { env: 'DISCOVERY_INTERVAL_MS', default: String(DEFAULT_DISCOVERY_INTERVAL_MS), help: 'How often DISCOVERY_DNS is resolved.' },
  { env: 'CLUSTER_SECRET', default: '(empty, with a warning)', help: 'Secret peers prove they share (HMAC; never sent).' },
  { env: 'CLUSTER_NAME', default: 'FLY_APP_NAME, else `distributed-sqlite`', help: 'Peers of another cluster are refused.' },
  { env: 'LOG_LEVEL', default: 'info', help: 'fatal, error, warn, info, debug, trace or silent.' },
  { env: 'CORS_ORIGINS', default: '*', help: '`*` or comma-separated origins allowed to call the pages API.' },
  { env: 'SQLITE_SYNCHRONOUS', default: 'normal', help: '`normal` (safe against a killed process) or `full` (also against power loss).' },
  { env: 'LITESTREAM', default: 'false', help: 'Set by run.sh when Litestream runs the node: checkpoints are left to it.' },
  { env: 'HEARTBEAT_INTERVAL_MS', default: String(DEFAULT_HEARTBEAT_INTERVAL_MS), help: 'Ping interval on peer links.' },
  { env: 'HEARTBEAT_TIMEOUT_MS', default: String(DEFAULT_HEARTBEAT_TIMEOUT_MS), help: 'A peer silent this long is dropped and redialled.' },
  { env: 'ANTI_ENTROPY_INTERVAL_MS', default: String(DEFAULT_ANTI_ENTROPY_INTERVAL_MS), help: 'Version-vector exchange with a peer.' },
  { env: 'MAX_BODY_BYTES', default: String(DEFAULT_MAX_BODY_BYTES), help: 'Largest request body accepted (413 beyond).' },
  { env: 'FLY_REGION', default: '(set by Fly.io)', help: 'Region shown in the cluster status.' },
  { env: 'FLY_APP_NAME', default: '(set by Fly.io)', help: 'Defaults DISCOVERY_DNS and CLUSTER_NAME.' },
  { env: 'FLY_MACHINE_ID', default: '(set by Fly.io)', help: 'Defaults NODE_NAME.' },
  { env: 'FLY_PRIVATE_IP', default: '(set by Fly.io)', help: 'The 6PN address peers reach this node at, shown in the membership when HOST is a wildcard.' },
] as const;

type SettingName = (typeof SETTINGS)[number]['env'];
type Raw = Partial<Record<SettingName, string>>;

const SETTING_NAMES: ReadonlySet<string> = new Set(SETTINGS.map((s) => s.env));
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on']);
const FALSE_WORDS = new Set(['0', 'false', 'no', 'off']);
// Letters, digits, dots, dashes, underscores: safe in logs, DNS labels and the handshake.
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function flagName(env: string): string {
  return `--${env.toLowerCase().replaceAll('_', '-')}`;
}

const FLAG_TO_ENV: ReadonlyMap<string, SettingName> = new Map(SETTINGS.map((s) => [flagName(s.env), s.env]));
/** Flags that may stand alone (`--litestream` means `--litestream=true`). */
const BOOLEAN_FLAGS: ReadonlySet<SettingName> = new Set(['LITESTREAM']);

/** Parses `--name value` / `--name=value` into settings; unknown flags and stray words are problems. */
function parseArgv(argv: readonly string[], problems: string[]): Raw {
  const raw: Raw = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) {
      problems.push(`unexpected argument ${JSON.stringify(arg)} (settings are flags like --port 8080)`);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const env = FLAG_TO_ENV.get(flag);
    if (env === undefined) {
      problems.push(`unknown flag ${flag}`);
      continue;
    }
    let value: string;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('--')) {
        value = next;
        i++;
      } else if (BOOLEAN_FLAGS.has(env)) value = 'true';
      else {
        problems.push(`flag ${flag} needs a value`);
        continue;
      }
    }
    raw[env] = value;
  }
  return raw;
}

function fromEnv(env: Readonly<Record<string, string | undefined>>): Raw {
  const raw: Raw = {};
  for (const name of SETTING_NAMES) {
    const value = env[name];
    // An empty variable counts as unset: deploy tools often template `FOO=` for "no value".
    if (value !== undefined && value.trim() !== '') raw[name as SettingName] = value;
  }
  return raw;
}

/**
 * Builds the configuration from `env` (normally process.env) and `argv` (the arguments after the
 * script and subcommand). Throws ConfigError naming every problem found.
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>>,
  argv: readonly string[] = [],
  defaults: { hostname?: string } = {},
): Config {
  const problems: string[] = [];
  const warnings: string[] = [];
  const raw: Raw = { ...fromEnv(env), ...parseArgv(argv, problems) };
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

  const port = integer('PORT', DEFAULT_PORT, 0, 65535);

  const host = text('HOST') ?? DEFAULT_HOST;
  const hostTrouble = hostProblem(host);
  if (hostTrouble !== undefined) problems.push(`${name('HOST')} must be an IP address or a host name: ${hostTrouble}`);

  const databasePath = raw.DATABASE_PATH ?? DEFAULT_DATABASE_PATH;
  if (databasePath.includes('\0')) problems.push(`${name('DATABASE_PATH')} must not contain a NUL character`);
  if (databasePath === ':memory:') problems.push(`${name('DATABASE_PATH')} must be a file path (counts must survive a restart), got ":memory:"`);

  const region = text('FLY_REGION');
  const flyAppName = text('FLY_APP_NAME');
  const privateIp = text('FLY_PRIVATE_IP');
  if (privateIp !== undefined && isIP(privateIp) === 0) problems.push(`${name('FLY_PRIVATE_IP')} must be an IP address, got ${JSON.stringify(privateIp)}`);
  const nodeName = text('NODE_NAME') ?? text('FLY_MACHINE_ID') ?? defaults.hostname ?? osHostname();
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

  const clusterSecret = raw.CLUSTER_SECRET ?? '';
  if (clusterSecret === '' && (peers.length > 0 || discoveryDns !== undefined)) {
    warnings.push(
      'CLUSTER_SECRET is not set but peers or DNS discovery are configured: using an EMPTY secret, so anyone who can reach the port can join the cluster and change counts. Set CLUSTER_SECRET on every node.',
    );
  }

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
  const maxBodyBytes = integer('MAX_BODY_BYTES', DEFAULT_MAX_BODY_BYTES, 64, MAX_MAX_BODY_BYTES, ' bytes');

  if (problems.length > 0) throw new ConfigError(problems);

  return Object.freeze({
    port,
    host,
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
    sqliteSynchronous,
    checkpoints,
    heartbeatIntervalMs,
    heartbeatTimeoutMs,
    antiEntropyIntervalMs,
    region,
    flyAppName,
    privateIp,
    maxBodyBytes,
    warnings: Object.freeze(warnings),
  });
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

/** Usage text for `--help`, generated from SETTINGS so it cannot drift. */
export function usage(): string {
  const lines = [
    'Usage: distributed-sqlite [migrate] [--flag value …]',
    '',
    '  (no command)  start a node',
    '  migrate       migrate DATABASE_PATH to the current schema and exit',
    '',
    'Settings (environment variable / flag, default):',
  ];
  for (const s of SETTINGS) lines.push(`  ${s.env} / ${flagName(s.env)}  [${s.default}]  ${s.help}`);
  lines.push('', 'Flags win over the environment.');
  return lines.join('\n');
}
