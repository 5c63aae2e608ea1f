/**
 * Static discovery: the PEERS list. Host names are returned as written (normalised, not
 * resolved): the transport resolves them when it dials, so a peer whose address changes is still
 * reached.
 */
import { AppError } from '../errors.js';
import { formatHostPort, parseHostPort } from '../host-port.js';
import type { Discovery, ResolveOptions } from './discovery.js';
import { uniqueSorted, type PeerAddress } from './peer-address.js';

/**
 * Validates every entry; returns the normalised, deduplicated, sorted list, or every problem
 * found (so configuration can report them all at once).
 */
export function parsePeerList(entries: readonly string[]): { peers: PeerAddress[] } | { errors: string[] } {
  const peers: PeerAddress[] = [];
  const errors: string[] = [];
  for (const entry of entries) {
    const parsed = parseHostPort(entry);
    if ('error' in parsed) errors.push(parsed.error);
    else peers.push(formatHostPort(parsed));
  }
  return errors.length > 0 ? { errors } : { peers: uniqueSorted(peers) };
}

export class StaticDiscovery implements Discovery {
  private readonly peers: readonly PeerAddress[];

  /** Throws `bad_config` naming every invalid entry. */
  constructor(entries: readonly string[]) {
    const result = parsePeerList(entries);
    if ('errors' in result) throw new AppError('bad_config', `PEERS: ${result.errors.join('; ')}`);
    this.peers = result.peers;
  }

  resolve(options: ResolveOptions = {}): Promise<PeerAddress[]> {
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    return Promise.resolve([...this.peers]);
  }
}
