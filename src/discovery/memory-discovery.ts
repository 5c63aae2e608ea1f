/**
 * The in-memory twin of DNS discovery, for tests of what sits above it: the answer (or the
 * failure) is set by hand and can change between resolutions.
 */
import type { Discovery, ResolveOptions } from './discovery.js';
import { uniqueSorted, type PeerAddress } from './peer-address.js';

export class MemoryDiscovery implements Discovery {
  private peers: PeerAddress[];
  private failure: Error | undefined;
  /** How many times `resolve` was called. */
  resolutions = 0;

  constructor(peers: readonly PeerAddress[] = []) {
    this.peers = uniqueSorted(peers);
  }

  /** The answer from the next resolution on. Clears a failure set by `fail`. */
  set(peers: readonly PeerAddress[]): void {
    this.peers = uniqueSorted(peers);
    this.failure = undefined;
  }

  /** Every resolution rejects with `error` until `set` or `fail(undefined)`. */
  fail(error: Error | undefined): void {
    this.failure = error;
  }

  resolve(options: ResolveOptions = {}): Promise<PeerAddress[]> {
    this.resolutions += 1;
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return Promise.resolve([...this.peers]);
  }
}
