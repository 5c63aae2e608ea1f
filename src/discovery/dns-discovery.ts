/**
 * DNS discovery (DISCOVERY_DNS): SRV records of the name when it has any (each target resolved
 * to A/AAAA through the same resolver, on the SRV port); otherwise its A and AAAA records, each
 * on the node's own PORT. On Fly.io the name is `<app>.internal`, answered with AAAA over 6PN.
 *
 * Every peer is dialled, so SRV priority and weight are ignored: this is a mesh, not a choice
 * of one server.
 */
import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';
import { AppError } from '../errors.js';
import { formatHostPort, hostnameProblem, ipEndpointProblem, MAX_PORT, MIN_PORT } from '../host-port.js';
import type { Discovery, ResolveOptions } from './discovery.js';
import { uniqueSorted, type PeerAddress } from './peer-address.js';

/**
 * Attempts per query. c-ares doubles the wait on each retry, so 2 tries take at most 3 × the
 * first attempt's timeout; the attempt timeout is sized so a whole round fits in `timeoutMs`.
 */
const DNS_TRIES = 2;
const DNS_ATTEMPT_SHARE = 3;
const MIN_ATTEMPT_TIMEOUT_MS = 10;

/** Answers that mean "the name exists but has nothing of this type", or "no such name". */
const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND']);
/** For SRV only: a server that does not implement the type has no SRV records for us either. */
const NO_SRV = new Set([...NO_RECORDS, 'ENOTIMP']);

export interface DnsDiscoveryOptions {
  /** The name to resolve, e.g. `my-app.internal`. */
  readonly name: string;
  /** The port peers found by A/AAAA records listen on (the node's own PORT). */
  readonly port: number;
  /** DNS server to ask instead of the system's: `ip`, `ip:port` or `[v6]:port`. */
  readonly server?: string;
  /** Bound on one whole resolution (SRV, A, AAAA and SRV targets), in ms. */
  readonly timeoutMs: number;
}

/** Why `text` is not a usable DNS server address (`ip`, `ip:port`, `[v6]:port`), or undefined. */
export function dnsServerProblem(text: string): string | undefined {
  const problem = ipEndpointProblem(text);
  return problem === undefined ? undefined : `DNS server ${problem}`;
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'string'
    ? (error as { code: string }).code
    : undefined;
}

function settledList<T>(result: PromiseSettledResult<T[]>, empty: ReadonlySet<string>): T[] {
  if (result.status === 'fulfilled') return result.value;
  if (empty.has(errorCode(result.reason) ?? '')) return [];
  throw result.reason;
}

export class DnsDiscovery implements Discovery {
  private readonly name: string;
  private readonly port: number;
  private readonly server: string | undefined;
  private readonly timeoutMs: number;

  /** Throws `bad_config` when an option is invalid. */
  constructor(options: DnsDiscoveryOptions) {
    const problems: string[] = [];
    const nameProblem = hostnameProblem(options.name);
    if (nameProblem !== undefined) problems.push(`DNS discovery name: ${nameProblem}`);
    if (!Number.isInteger(options.port) || options.port < MIN_PORT || options.port > MAX_PORT) {
      problems.push(`DNS discovery port ${options.port} is outside ${MIN_PORT}–${MAX_PORT}`);
    }
    if (options.server !== undefined) {
      const serverProblem = dnsServerProblem(options.server);
      if (serverProblem !== undefined) problems.push(serverProblem);
    }
    if (!Number.isSafeInteger(options.timeoutMs) || options.timeoutMs <= 0) {
      problems.push(`DNS discovery timeout must be a positive number of ms, got ${options.timeoutMs}`);
    }
    if (problems.length > 0) throw new AppError('bad_config', problems.join('; '));
    this.name = options.name;
    this.port = options.port;
    this.server = options.server;
    this.timeoutMs = options.timeoutMs;
  }

  async resolve(options: ResolveOptions = {}): Promise<PeerAddress[]> {
    const { signal } = options;
    signal?.throwIfAborted();
    // One resolver per resolution: cancel() then only ever abandons this resolution's queries.
    const resolver = new dns.Resolver({
      timeout: Math.max(MIN_ATTEMPT_TIMEOUT_MS, Math.floor(this.timeoutMs / DNS_ATTEMPT_SHARE)),
      tries: DNS_TRIES,
    });
    if (this.server !== undefined) resolver.setServers([this.server]);

    // c-ares bounds each query; this bounds the whole, which runs two rounds when SRV targets
    // need resolving.
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      resolver.cancel();
    }, this.timeoutMs);
    const onAbort = (): void => resolver.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await this.lookup(resolver);
    } catch (error) {
      signal?.throwIfAborted();
      const code = errorCode(error) ?? 'EUNKNOWN';
      // The answer is unknown, so the previous peer list should stand (`discovery_failed`). Our
      // deadline and c-ares's own retries end at about the same moment: one message for both.
      if (timedOut || code === 'ETIMEOUT') {
        throw new AppError('discovery_failed', `DNS lookup of ${this.name} ${this.via()} gave no answer within ${this.timeoutMs} ms`, {
          cause: error,
        });
      }
      throw new AppError('discovery_failed', `DNS lookup of ${this.name} ${this.via()} failed: ${code}`, { cause: error });
    } finally {
      clearTimeout(deadline);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private via(): string {
    return this.server === undefined ? 'via the system resolver' : `via ${this.server}`;
  }

  private async lookup(resolver: dns.Resolver): Promise<PeerAddress[]> {
    // Asked together: one round trip when there are no SRV records (the common case).
    const [srv, v4, v6] = await Promise.allSettled([
      resolver.resolveSrv(this.name),
      resolver.resolve4(this.name),
      resolver.resolve6(this.name),
    ]);
    const services = settledList(srv, NO_SRV).filter((record) => record.port >= MIN_PORT && record.port <= MAX_PORT);
    if (services.length === 0) {
      const hosts = [...settledList(v4, NO_RECORDS), ...settledList(v6, NO_RECORDS)];
      return uniqueSorted(hosts.map((host) => formatHostPort({ host, port: this.port })));
    }

    const targets = new Map<string, number[]>();
    for (const record of services) {
      const target = record.name.replace(/\.$/, '');
      // RFC 2782: a target of "." means the service is decidedly not available there.
      if (target.length === 0) continue;
      targets.set(target, [...(targets.get(target) ?? []), record.port]);
    }
    const resolved = await Promise.all(
      [...targets].map(async ([target, ports]) => {
        const hosts = isIP(target) !== 0 ? [target] : await resolveHost(resolver, target);
        return hosts.flatMap((host) => ports.map((port) => formatHostPort({ host, port })));
      }),
    );
    return uniqueSorted(resolved.flat());
  }
}

/** A/AAAA of one SRV target. A target with no addresses contributes nothing; a failure fails all. */
async function resolveHost(resolver: dns.Resolver, host: string): Promise<string[]> {
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
  return [...settledList(v4, NO_RECORDS), ...settledList(v6, NO_RECORDS)];
}
