/**
 * What every Discovery promises, run against each implementation: the answer is exactly the
 * configured peers, deduplicated and sorted; an empty configuration answers an empty list; asking
 * again gives the same answer; an aborted signal rejects.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Discovery, PeerAddress } from '../../src/discovery/discovery.js';

export interface DiscoveryHarness {
  /** A discovery that should answer exactly `peers` (canonical `host:port` strings, any order, maybe repeated). */
  make(peers: readonly PeerAddress[]): Promise<Discovery>;
  /** Releases what `make` started. */
  cleanup(): Promise<void>;
}

export function runDiscoveryContract(name: string, harness: DiscoveryHarness): void {
  describe(`${name} (Discovery contract)`, () => {
    afterEach(() => harness.cleanup());

    it('answers the configured peers, deduplicated and sorted', async () => {
      const discovery = await harness.make(['127.0.0.3:9001', '[::1]:9000', '127.0.0.2:9001', '127.0.0.3:9001']);
      expect(await discovery.resolve()).toEqual(['127.0.0.2:9001', '127.0.0.3:9001', '[::1]:9000']);
    });

    it('answers an empty list when there are no peers', async () => {
      const discovery = await harness.make([]);
      expect(await discovery.resolve()).toEqual([]);
    });

    it('answers the same again', async () => {
      const discovery = await harness.make(['127.0.0.2:9001']);
      expect(await discovery.resolve()).toEqual(await discovery.resolve());
    });

    it('rejects when the signal is already aborted', async () => {
      const discovery = await harness.make(['127.0.0.2:9001']);
      const controller = new AbortController();
      controller.abort(new Error('stopped'));
      await expect(discovery.resolve({ signal: controller.signal })).rejects.toThrow('stopped');
    });
  });
}
