/**
 * The settings: every environment variable with its flag, default and help text, and reading them
 * as given (environment, then flags over it). Validation into a `Config` is `config.ts`.
 */
import { DEFAULT_MEMORY_BUDGET_MB } from './memory-budget.js';

export { DEFAULT_MEMORY_BUDGET_MB, MAX_MEMORY_BUDGET_MB, MIN_MEMORY_BUDGET_MB } from './memory-budget.js';

export const DEFAULT_PORT = 8080;
export const DEFAULT_CLUSTER_PORT = 8081;
export const DEFAULT_HOST = '::';
export const DEFAULT_DATABASE_PATH = './data/counters.db';
export const DEFAULT_CLUSTER_NAME = 'distributed-sqlite';
export const DEFAULT_DISCOVERY_INTERVAL_MS = 5000;
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1000;
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 5000;
export const DEFAULT_ANTI_ENTROPY_INTERVAL_MS = 2000;
export const DEFAULT_STARTUP_SYNC_TIMEOUT_MS = 5000;
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/** Upper bound for MAX_BODY_BYTES: a batch of 10,000 views fits comfortably in far less. */
export const MAX_MAX_BODY_BYTES = 64 * 1024 * 1024;
/** Upper bound for every *_MS interval: one day. */
export const MAX_INTERVAL_MS = 24 * 60 * 60 * 1000;
export const MAX_NAME_LENGTH = 128;
/** Default bound on open live-feed WebSockets (the page keeps one open per tab). */
export const DEFAULT_LIVE_MAX_CLIENTS = 10_000;
/**
 * Anonymous views per second per client address per node, and the burst: a client may count
 * RATE_LIMIT_BURST views in each window of BURST / PER_IP seconds (here 50 per 5 s). Enough for
 * a visitor, or an office behind one address, reading page after page; far below what fills a disk.
 */
export const DEFAULT_RATE_LIMIT_PER_IP = 10;
export const DEFAULT_RATE_LIMIT_BURST = 50;
export const MAX_RATE_LIMIT = 1_000_000;
/** Distinct pages per cluster that anonymous views may create (about 90 MB of database each node). */
export const DEFAULT_MAX_PAGES = 100_000;
export const MAX_MAX_PAGES = 1_000_000_000;
/** Days hour buckets of views are kept (day buckets are kept for ever); src/store/series-rules.ts. */
export const DEFAULT_HOURLY_RETENTION_DAYS = 35;
export const MAX_HOURLY_RETENTION_DAYS = 3660;
/**
 * Shortest CLUSTER_SECRET accepted: the secret keys the peer handshake and every session key, so
 * it must not be guessable offline from a recorded handshake. 32 characters of `openssl rand
 * -base64 32` carry far more than the 128 bits that needs.
 */
export const MIN_CLUSTER_SECRET_LENGTH = 32;

/** Every setting, in the order the README documents them. The flag is the lower-kebab name. */
export const SETTINGS = [
  { env: 'PORT', default: String(DEFAULT_PORT), help: 'Public HTTP port (browsers, the counting API). 0 picks a free port.' },
  { env: 'HOST', default: DEFAULT_HOST, help: 'Address to listen on (`::` accepts IPv4 and IPv6).' },
  { env: 'CLUSTER_PORT', default: String(DEFAULT_CLUSTER_PORT), help: 'Private port: peers (`/cluster`), `/metrics`, the full `/api/cluster`. Opened only with CLUSTER_SECRET. 0 picks a free port.' },
  { env: 'CLUSTER_HOST', default: 'HOST', help: 'Address the cluster port listens on (on Fly.io: `fly-local-6pn`, the private network).' },
  { env: 'DATABASE_PATH', default: DEFAULT_DATABASE_PATH, help: 'SQLite file; its directory is created.' },
  { env: 'NODE_NAME', default: 'FLY_MACHINE_ID, else the host name', help: 'Human name of this node.' },
  { env: 'PEERS', default: '(none)', help: "Static peers' cluster ports, comma-separated `host:port` (IPv6: `[addr]:port`)." },
  { env: 'DISCOVERY_DNS', default: '`${FLY_APP_NAME}.internal` on Fly.io, else off', help: 'Name resolved for peers (A/AAAA on CLUSTER_PORT, or SRV).' },
  { env: 'DISCOVERY_DNS_SERVER', default: 'system resolver', help: 'DNS server to ask, `ip` or `ip:port`.' },
  { env: 'DISCOVERY_INTERVAL_MS', default: String(DEFAULT_DISCOVERY_INTERVAL_MS), help: 'How often DISCOVERY_DNS is resolved.' },
  { env: 'CLUSTER_SECRET', default: '(none: a lone node)', help: `Secret peers prove they share (HMAC; never sent), at least ${MIN_CLUSTER_SECRET_LENGTH} characters. Required with PEERS or DISCOVERY_DNS.` },
  { env: 'CLUSTER_NAME', default: 'FLY_APP_NAME, else `distributed-sqlite`', help: 'Peers of another cluster are refused.' },
  { env: 'ADMIN_TOKENS', default: '(none)', help: 'Comma-separated bearer tokens (16+ characters) for the private views (`/metrics`, the full `/api/cluster`) and the admin routes (reset, delete) on the public port.' },
  { env: 'LOG_LEVEL', default: 'info', help: 'fatal, error, warn, info, debug, trace or silent.' },
  { env: 'CORS_ORIGINS', default: '*', help: '`*` or comma-separated origins allowed to call the pages API; with a list, anonymous views from other origins are refused.' },
  { env: 'WRITE_TOKENS', default: '(none)', help: 'Comma-separated bearer tokens (16+ characters each) for `by`, batches and unlimited counting.' },
  { env: 'RATE_LIMIT_PER_IP', default: String(DEFAULT_RATE_LIMIT_PER_IP), help: 'Anonymous views per second per client address per node; 0 turns the limit off.' },
  { env: 'RATE_LIMIT_BURST', default: String(DEFAULT_RATE_LIMIT_BURST), help: 'Anonymous views a client address may count at once (per window of BURST / PER_IP seconds).' },
  { env: 'TRUST_PROXY', default: 'true on Fly.io (FLY_APP_NAME set), else false', help: 'Take the client address from Fly-Client-IP (then X-Forwarded-For) instead of the socket.' },
  { env: 'MAX_PAGES', default: String(DEFAULT_MAX_PAGES), help: 'Pages the cluster may hold before anonymous views stop creating new ones.' },
  { env: 'ANALYTICS', default: 'true', help: 'Views over time and unique visitors of the views this node counts (hour and day buckets, visitor sketches); false: totals only (series slots from peers are still kept).' },
  { env: 'HOURLY_RETENTION_DAYS', default: String(DEFAULT_HOURLY_RETENTION_DAYS), help: 'Days hour buckets of views are kept for the series (day buckets and unique visitors are kept for ever).' },
  { env: 'PAGE_PATTERN', default: '(none)', help: 'Regular expression the name of a new page must match for an anonymous view to create it.' },
  { env: 'SQLITE_SYNCHRONOUS', default: 'normal', help: '`normal` (safe against a killed process) or `full` (also against power loss).' },
  { env: 'LITESTREAM', default: 'false', help: 'Set by run.sh when Litestream runs the node: checkpoints are left to it.' },
  { env: 'HEARTBEAT_INTERVAL_MS', default: String(DEFAULT_HEARTBEAT_INTERVAL_MS), help: 'Ping interval on idle peer links (the dialler pings after this much silence, the listener after three times it).' },
  { env: 'HEARTBEAT_TIMEOUT_MS', default: String(DEFAULT_HEARTBEAT_TIMEOUT_MS), help: 'A peer silent this long is dropped and redialled.' },
  { env: 'ANTI_ENTROPY_INTERVAL_MS', default: String(DEFAULT_ANTI_ENTROPY_INTERVAL_MS), help: 'Anti-entropy round: a digest to two random peers, vectors exchanged on a mismatch.' },
  { env: 'STARTUP_SYNC_TIMEOUT_MS', default: String(DEFAULT_STARTUP_SYNC_TIMEOUT_MS), help: 'With peers: counts wait at most this long at start for a sync round with each reachable peer.' },
  { env: 'LIVE_MAX_CLIENTS', default: String(DEFAULT_LIVE_MAX_CLIENTS), help: 'Most live-page WebSockets open at once; more are refused (503). Keep it under a proxy\'s connection limit so counting requests keep room.' },
  { env: 'MAX_BODY_BYTES', default: String(DEFAULT_MAX_BODY_BYTES), help: 'Largest request body accepted (413 beyond).' },
  { env: 'MEMORY_BUDGET_MB', default: String(DEFAULT_MEMORY_BUDGET_MB), help: 'Memory the bounded queues (group commit, bodies in flight, live feed, peer buffers) share; sized for a 256 MB machine.' },
  { env: 'LATENCY_TRACE_DIR', default: '(off)', help: 'Diagnostics (`npm run bench`): directory the latency probe writes its stamps, event-loop delay and GC pauses to when the node stops (src/latency-probe.ts).' },
  { env: 'LATENCY_TRACE_PAGES', default: '(every page)', help: 'With LATENCY_TRACE_DIR: only pages whose name starts with this are stamped.' },
  { env: 'FLY_REGION', default: '(set by Fly.io)', help: 'Region shown in the cluster status.' },
  { env: 'FLY_APP_NAME', default: '(set by Fly.io)', help: 'Defaults DISCOVERY_DNS and CLUSTER_NAME.' },
  { env: 'FLY_MACHINE_ID', default: '(set by Fly.io)', help: 'Defaults NODE_NAME.' },
  { env: 'FLY_PRIVATE_IP', default: '(set by Fly.io)', help: 'The 6PN address peers reach this node at, shown in the membership when HOST is a wildcard.' },
] as const;

export type SettingName = (typeof SETTINGS)[number]['env'];
/** Settings as given, before validation: flags over the environment, empty values unset. */
export type RawSettings = Partial<Record<SettingName, string>>;

const SETTING_NAMES: ReadonlySet<string> = new Set(SETTINGS.map((s) => s.env));

export function flagName(env: string): string {
  return `--${env.toLowerCase().replaceAll('_', '-')}`;
}

const FLAG_TO_ENV: ReadonlyMap<string, SettingName> = new Map(SETTINGS.map((s) => [flagName(s.env), s.env]));
/** Flags that may stand alone (`--litestream` means `--litestream=true`). */
const BOOLEAN_FLAGS: ReadonlySet<SettingName> = new Set(['LITESTREAM']);

/** Parses `--name value` / `--name=value` into settings; unknown flags and stray words are problems. */
function parseArgv(argv: readonly string[], problems: string[]): RawSettings {
  const raw: RawSettings = {};
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

function fromEnv(env: Readonly<Record<string, string | undefined>>): RawSettings {
  const raw: RawSettings = {};
  for (const name of SETTING_NAMES) {
    const value = env[name];
    // An empty variable counts as unset: deploy tools often template `FOO=` for "no value".
    if (value !== undefined && value.trim() !== '') raw[name as SettingName] = value;
  }
  return raw;
}

/**
 * The settings as given: the environment (normally process.env) with the flags in `argv` over it.
 * Unknown flags, stray words and flags without a value go to `problems`.
 */
export function readRawSettings(env: Readonly<Record<string, string | undefined>>, argv: readonly string[], problems: string[]): RawSettings {
  return { ...fromEnv(env), ...parseArgv(argv, problems) };
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
