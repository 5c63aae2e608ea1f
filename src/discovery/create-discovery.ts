/**
 * Picks the discovery for a node's configuration: PEERS alone, DISCOVERY_DNS alone, or both
 * (their union). The composition root calls this; nothing else needs to know the concrete types.
 */
import { CombinedDiscovery } from './combined-discovery.js';
import type { Discovery } from './discovery.js';
import { DnsDiscovery } from './dns-discovery.js';
import { StaticDiscovery } from './static-discovery.js';

/** Bound on one DNS resolution: long enough for a loaded resolver, short next to the interval. */
export const DEFAULT_DNS_TIMEOUT_MS = 2_000;

export interface DiscoveryConfig {
  /** PEERS entries (`host:port`). */
  readonly peers: readonly string[];
  /** DISCOVERY_DNS; undefined when DNS discovery is off. */
  readonly dnsName?: string | undefined;
  /** DISCOVERY_DNS_SERVER; undefined for the system resolver. */
  readonly dnsServer?: string | undefined;
  /** The node's PORT: where peers found by A/AAAA records listen. */
  readonly port: number;
  readonly dnsTimeoutMs?: number;
}

/** Throws `bad_config` on an invalid entry or option. */
export function createDiscovery(config: DiscoveryConfig): Discovery {
  const fixed = new StaticDiscovery(config.peers);
  if (config.dnsName === undefined) return fixed;
  const dns = new DnsDiscovery({
    name: config.dnsName,
    port: config.port,
    ...(config.dnsServer === undefined ? {} : { server: config.dnsServer }),
    timeoutMs: config.dnsTimeoutMs ?? DEFAULT_DNS_TIMEOUT_MS,
  });
  return config.peers.length === 0 ? dns : new CombinedDiscovery([fixed, dns]);
}
