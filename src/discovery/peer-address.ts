/**
 * Peer addresses as discovery hands them out: validated, normalised `host:port` strings (IPv6
 * written `[addr]:port`, names lower-cased). The rules are those of `../host-port.ts`, shared with
 * configuration and the transport.
 */

/** A validated, normalised `host:port` (see `formatHostPort`). */
export type PeerAddress = string;

/** Deduplicated and sorted: the canonical shape of every peer list this module hands out. */
export function uniqueSorted(addresses: Iterable<PeerAddress>): PeerAddress[] {
  return [...new Set(addresses)].sort();
}
