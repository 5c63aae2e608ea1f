/**
 * Peer addresses: `host:port`, the host a DNS name, an IPv4 address or a bracketed IPv6 address
 * (`[fdaa::1]:8080`). Pure: parsing and formatting only, no lookups.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** A validated, normalised `host:port` (IPv6 written `[addr]:port`, names lower-cased). */
export type PeerAddress = string;

export interface PeerHostPort {
  /** A host name, an IPv4 address, or an IPv6 address without brackets. */
  readonly host: string;
  readonly port: number;
}

export const MIN_PORT = 1;
export const MAX_PORT = 65_535;
const MAX_HOSTNAME_CHARS = 253;
const MAX_LABEL_CHARS = 63;
const EXAMPLE = 'e.g. node-2:8080, 10.0.0.2:8080 or [fdaa::2]:8080';

// Letters, digits and hyphens per RFC 1123, plus underscores: container platforms hand out
// service names with them, and resolvers pass them through.
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
 * names lower-cased (DNS is case-insensitive), IPv6 in canonical form.
 */
export function parsePeerAddress(text: string): PeerHostPort | { error: string } {
  const whole = text.trim();
  if (whole.length === 0) return { error: `a peer address is empty (${EXAMPLE})` };

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

/** `host:port`, with IPv6 hosts in brackets. The inverse of `parsePeerAddress`. */
export function formatPeerAddress(address: PeerHostPort): PeerAddress {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** The normalised form of a valid address, or undefined. */
export function normalisePeerAddress(text: string): PeerAddress | undefined {
  const parsed = parsePeerAddress(text);
  return 'error' in parsed ? undefined : formatPeerAddress(parsed);
}

/** Deduplicated and sorted: the canonical shape of every peer list this module hands out. */
export function uniqueSorted(addresses: Iterable<PeerAddress>): PeerAddress[] {
  return [...new Set(addresses)].sort();
}
