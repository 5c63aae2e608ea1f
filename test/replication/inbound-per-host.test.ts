import { describe, expect, it } from 'vitest';
import type { Log } from '../../src/log.js';
import { Replicator } from '../../src/replication/replicator.js';
import { MemoryDisk, MemoryStore } from '../../src/store/memory-store.js';
import { SimulatedNetwork } from '../../src/transport/simulated-network.js';
import { ManualTimers } from '../helpers/manual-timers.js';
import { seededRandom } from '../helpers/seeded-random.js';

const quiet: Log = { debug() {}, info() {}, warn() {}, error() {} };

async function flush(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

describe('bounded degree: inbound sessions per host', () => {
  it('one host with the secret cannot take every inbound slot under fresh replica ids: an honest dialer still gets in', async () => {
    const network = new SimulatedNetwork();
    const timers = new ManualTimers();
    const random = seededRandom(7);
    // Bounded mode forced (aboveNodes 0): the victim dials nobody and takes 3 inbound sessions at most.
    const replicator = (address: string) => {
      const r = new Replicator({
        store: MemoryStore.open(new MemoryDisk(), { random: (n) => random.bytes(n) }),
        transport: network.transport(address),
        cluster: 'eclipse',
        secret: 'secret',
        node: { name: address, version: 'test', startedAt: timers.now() },
        log: quiet,
        timers,
        random: () => random.next(),
        randomBytes: (n) => random.bytes(n),
        reconnect: { baseMs: 100, maxMs: 2_000 },
        boundedDegree: { aboveNodes: 0, dial: 1, maxDegree: 4 },
      });
      r.start();
      return r;
    };
    const victim = replicator('victim:1');
    victim.setPeers([]);
    // The attacker: six replicas (fresh ids) on one host, each dialling the victim.
    const attackers = Array.from({ length: 6 }, (_, i) => replicator(`evil:${i + 1}`));
    for (const attacker of attackers) attacker.setPeers(['victim:1']);
    for (let i = 0; i < 20; i++) { timers.advance(100); await flush(); network.runUntilQuiet(); await flush(); }
    const connected = (r: Replicator) => r.dialTargets().filter((t) => t.state === 'connected').length;
    expect(attackers.map(connected).reduce((a, b) => a + b, 0)).toBe(2);
    const honest = replicator('honest:1');
    honest.setPeers(['victim:1']);
    for (let i = 0; i < 20; i++) { timers.advance(100); await flush(); network.runUntilQuiet(); await flush(); }
    expect(honest.dialTargets()).toMatchObject([{ address: 'victim:1', state: 'connected' }]);
  });
});
