import { CombinedDiscovery } from '../../src/discovery/combined-discovery.js';
import { DnsDiscovery } from '../../src/discovery/dns-discovery.js';
import { MemoryDiscovery } from '../../src/discovery/memory-discovery.js';
import { parseHostPort } from '../../src/host-port.js';
import { StaticDiscovery } from '../../src/discovery/static-discovery.js';
import { srv, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { runDiscoveryContract } from './discovery-contract.js';

const noCleanup = () => Promise.resolve();

runDiscoveryContract('StaticDiscovery', { make: (peers) => Promise.resolve(new StaticDiscovery(peers)), cleanup: noCleanup });
runDiscoveryContract('MemoryDiscovery', { make: (peers) => Promise.resolve(new MemoryDiscovery(peers)), cleanup: noCleanup });
runDiscoveryContract('CombinedDiscovery', {
  make: (peers) => Promise.resolve(new CombinedDiscovery([new StaticDiscovery(peers.slice(0, 1)), new MemoryDiscovery(peers.slice(1))])),
  cleanup: noCleanup,
});

let dns: TestDnsServer | undefined;
runDiscoveryContract('DnsDiscovery', {
  // Peers on different ports need SRV records; their targets are the IP addresses themselves.
  async make(peers) {
    const records = peers.map((peer) => {
      const parsed = parseHostPort(peer);
      if ('error' in parsed) throw new Error(parsed.error);
      return srv(parsed.host, parsed.port);
    });
    dns = await startDnsServer({ records: records.length > 0 ? { 'app.internal': records } : {} });
    return new DnsDiscovery({ name: 'app.internal', port: 8080, server: dns.server, timeoutMs: 1_000 });
  },
  async cleanup() {
    await dns?.stop();
    dns = undefined;
  },
});
