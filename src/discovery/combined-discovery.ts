/**
 * Several discoveries as one (PEERS and DISCOVERY_DNS both set): the union of their answers.
 * If any part fails the whole resolution fails, so the loop keeps its previous list instead of
 * dropping the peers that part used to find.
 */
import type { Discovery, ResolveOptions } from './discovery.js';
import { uniqueSorted, type PeerAddress } from './peer-address.js';

export class CombinedDiscovery implements Discovery {
  private readonly parts: readonly Discovery[];

  constructor(parts: readonly Discovery[]) {
    this.parts = [...parts];
  }

  async resolve(options: ResolveOptions = {}): Promise<PeerAddress[]> {
    options.signal?.throwIfAborted();
    const answers = await Promise.all(this.parts.map((part) => part.resolve(options)));
    return uniqueSorted(answers.flat());
  }
}
