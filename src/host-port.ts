/**
 * `host:port` addresses: the one parser configuration (PEERS, DISCOVERY_DNS_SERVER), discovery
 * and the transport share, so an address one of them accepts is never refused by another.
 * Pure: parsing and formatting only, no lookups.
 *
 * The rules:
 * - IPv4: a dotted quad, four decimal octets 0–255 (`10.0.0.2`). Anything else made only of
 *   digits and dots (`1.2.3`, `10.0.0.300`) is a typo, not a host name, and is refused.
 * - IPv6: in brackets with the port (`[fdaa::2]:8080`), written back in canonical short form.
 * - Host names: RFC 1123 labels of letters, digits and inner hyphens, at most 63 characters each
 *   and 253 in all, one trailing dot allowed; lower-cased (DNS is case-insensitive). Underscores
 *   are allowed too: container platforms hand out service names with them and resolvers pass
 *   them through.
 * - Port: decimal digits, 1–65535.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface HostPort {
  /** A host name, an IPv4 address, or an IPv6 address without brackets. */
  readonly host: string;
  readonly port: number;
}

export const MIN_PORT = 1;
export const MAX_PORT = 65_535;
const MAX_HOSTNAME_CHARS = 253;
const MAX_LABEL_CHARS = 63;
const EXAMPLE = 'e.g. node-2:8080, 10.0.0.2:8080 or [fdaa::2]:8080';
const IP_EXAMPLE = 'e.g. 10.0.0.53, 127.0.0.1:5353 or [::1]:5353';

const LABEL = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$/i;

/** Why `host` is not a usable host name, or undefined when it is one. */
export function hostnameProblem(host: string): string | undefined {
  const bare = host.endsWith('.') ? host.slice(0, -1) : host;
  if (bare.length === 0) return 'the host is empty';
  if (bare.length > MAX_HOSTNAME_CHARS) return `the host name is ${bare.length} characters; at most ${MAX_HOSTNAME_CHARS} are allowed`;
  // All digits and dots but not a valid IPv4 address: almost certainly a typo, not a name.
  if (/^[0-9.]+$/.test(bare)) return `"${host}" is not a valid IPv4 address`;
  for (const label of bare.split('.')) {
    if (label.length === 0) return `the host name "${host}" has an empty label`;
    if (label.length > MAX_LABEL_CHARS) return `the host name "${host}" has a label longer than ${MAX_LABEL_CHARS} characters`;
    if (!LABEL.test(label)) {
      return `the host name "${host}" may only contain letters, digits, "-" and "_" between dots, not starting or ending with "-"`;
    }
  }
  return undefined;
}

/** Why `host` is neither an IP address nor a host name, or undefined (IPv6 without brackets). */
export function hostProblem(host: string): string | undefined {
  return isIPv4(host) || isIPv6(host) ? undefined : hostnameProblem(host);
}

/** Checks a port given as text: decimal digits, 1–65535. */
function parsePort(text: string, whole: string): number | { error: string } {
  if (text.length === 0) return { error: `"${whole}" has no port after the colon (${EXAMPLE})` };
  if (!/^[0-9]+$/.test(text)) return { error: `"${whole}" has port "${text}", which is not a number` };
  const port = Number(text);
  if (port < MIN_PORT || port > MAX_PORT) return { error: `"${whole}" has port ${text}, outside ${MIN_PORT}–${MAX_PORT}` };
  return port;
}

/** Writes an IPv6 address in its canonical short form (`0:0::1` → `::1`) so duplicates compare equal. */
function canonicalIPv6(address: string): string {
  // Zone ids (`fe80::1%eth0`) are not accepted by the URL parser; keep those as written.
  if (address.includes('%')) return address.toLowerCase();
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

/**
 * Parses and validates `host:port`. Surrounding whitespace is ignored. The host is normalised:
 * names lower-cased, IPv6 in canonical form. Every error names the entry.
 */
export function parseHostPort(text: string): HostPort | { error: string } {
  const whole = text.trim();
  if (whole.length === 0) return { error: `an address is empty (${EXAMPLE})` };

  if (whole.startsWith('[')) {
    const close = whole.indexOf(']');
    if (close < 0) return { error: `"${whole}" opens "[" without closing it (${EXAMPLE})` };
    const host = whole.slice(1, close);
    if (!isIPv6(host)) return { error: `"${whole}": "${host}" inside brackets is not an IPv6 address` };
    const rest = whole.slice(close + 1);
    if (!rest.startsWith(':')) return { error: `"${whole}" has no port: write host:port (${EXAMPLE})` };
    const port = parsePort(rest.slice(1), whole);
    if (typeof port !== 'number') return port;
    return { host: canonicalIPv6(host), port };
  }

  const colon = whole.lastIndexOf(':');
  if (colon < 0) return { error: `"${whole}" has no port: write host:port (${EXAMPLE})` };
  const host = whole.slice(0, colon);
  if (host.includes(':')) {
    if (isIPv6(whole) || isIPv6(host)) {
      return { error: `"${whole}": write an IPv6 address in brackets with its port, e.g. [::1]:8080` };
    }
    return { error: `"${whole}" is not host:port (${EXAMPLE})` };
  }
  const port = parsePort(whole.slice(colon + 1), whole);
  if (typeof port !== 'number') return port;
  if (isIPv4(host)) return { host, port };
  const problem = hostnameProblem(host);
  if (problem !== undefined) return { error: `"${whole}": ${problem}` };
  return { host: host.toLowerCase(), port };
}

/** `host:port`, with IPv6 hosts in brackets. The inverse of `parseHostPort`. */
export function formatHostPort(address: HostPort): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** The normalised form of a valid `host:port`, or undefined. */
export function normaliseHostPort(text: string): string | undefined {
  const parsed = parseHostPort(text);
  return 'error' in parsed ? undefined : formatHostPort(parsed);
}

/**
 * Why `text` is not an IP address with an optional port (`ip`, `ip:port`, `[v6]:port`), or
 * undefined. A resolver's address: a host name would need a resolver to find it.
 */
export function ipEndpointProblem(text: string): string | undefined {
  if (isIPv4(text) || isIPv6(text)) return undefined;
  if (!text.includes(':') || (!text.startsWith('[') && !/^[0-9.]+:/.test(text))) {
    return `"${text}" must be an IP address, optionally with a port (${IP_EXAMPLE})`;
  }
  const parsed = parseHostPort(text);
  if ('error' in parsed) return parsed.error;
  if (!isIPv4(parsed.host) && !isIPv6(parsed.host)) return `"${text}" must be an IP address, not a host name (${IP_EXAMPLE})`;
  return undefined;
}
