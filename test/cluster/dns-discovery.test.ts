/**
 * Peers found through a real DNS server on loopback (DISCOVERY_DNS + DISCOVERY_DNS_SERVER):
 * A records of one name for nodes sharing a port, SRV records for nodes on ports of their own.
 * Nodes appear in and vanish from DNS while the cluster runs; each node finds itself in the answer
 * and recognises itself in the handshake.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { FAST_LIVENESS, useClusters } from '../helpers/cluster.js';
import { type ClusterNode, logLines } from '../helpers/cluster-node.js';
import { waitForConvergence, waitForMesh } from '../helpers/cluster-waits.js';
import { clusterStatus, increment, peerAt } from '../helpers/http-client.js';
import { freePortOn } from '../helpers/loopback-ports.js';
import { a, srv, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { reportTiming } from './timing.js';

const NAME = 'nodes.cluster.test';
let dns: TestDnsServer | undefined;

// Registered before useClusters: after-hooks run last-registered first, so the nodes are killed
// before the DNS server they query goes away.
afterEach(async () => {
  await dns?.stop();
  dns = undefined;
});
const newCluster = useClusters();

async function expectSelf(node: ClusterNode): Promise<void> {
  await eventually(async () => expect(peerAt(await clusterStatus(node), node.address)?.state).toBe('self'));
}

describe('DNS discovery', () => {
  it('finds nodes on one port through A records, picks up a node added later and drops one removed', async () => {
    const cluster = newCluster();
    dns = await startDnsServer();
    const hosts = [cluster.allocateHost(), cluster.allocateHost(), cluster.allocateHost()];
    // A records name hosts only: every node's cluster port is the same.
    const { port, clusterPort } = await cluster.freePorts(hosts);
    const env = { ...FAST_LIVENESS, DISCOVERY_DNS: NAME, DISCOVERY_DNS_SERVER: dns.server };
    const [n1, n2, n3] = await Promise.all(hosts.map((host, i) => cluster.add({ name: `dns${i + 1}`, host, port, clusterPort, env })));
    const first = [n1!, n2!];
    dns.set(NAME, [a(hosts[0]!), a(hosts[1]!)]);

    let started = performance.now();
    await Promise.all(first.map((node) => node.start()));
    const meshMs = await waitForMesh(first);
    for (const node of first) await expectSelf(node);
    await Promise.all([increment(n1!, 'home', 2), increment(n2!, 'home', 3)]);
    expect((await waitForConvergence(first)).totals).toEqual({ home: 5 });
    const firstMs = performance.now() - started;

    // A third node appears in DNS and starts: the others dial it, it dials them.
    started = performance.now();
    dns.set(NAME, [a(hosts[0]!), a(hosts[1]!), a(hosts[2]!)]);
    await n3!.start();
    const all = [n1!, n2!, n3!];
    await waitForMesh(all);
    await expectSelf(n3!);
    for (const node of first) await eventually(async () => expect(peerAt(await clusterStatus(node), n3!.address)?.state).toBe('connected'));
    await increment(n3!, 'home', 4);
    expect((await waitForConvergence(all)).totals).toEqual({ home: 9 });
    const addedMs = performance.now() - started;

    // n2 leaves: while DNS still names it, the others keep it as a disconnected peer…
    expect((await n2!.terminate()).code).toBe(0);
    const rest = [n1!, n3!];
    for (const node of rest) {
      await eventually(async () => expect(peerAt(await clusterStatus(node), n2!.address)?.state).not.toBe('connected'));
    }
    // …and once DNS stops naming it, it is dropped from their peer lists altogether.
    started = performance.now();
    dns.set(NAME, [a(hosts[0]!), a(hosts[2]!)]);
    for (const node of rest) {
      await eventually(async () => expect(peerAt(await clusterStatus(node), n2!.address)).toBeUndefined());
      expect(logLines(node, { msg: 'peer removed', address: n2!.address })).toHaveLength(1);
    }
    const removedMs = performance.now() - started;
    await increment(n1!, 'home');
    expect((await waitForConvergence(rest)).totals).toEqual({ home: 10 });
    reportTiming('dns A records', { meshMs, firstConvergedMs: firstMs, addedNodeConvergedMs: addedMs, removedDroppedMs: removedMs });
  });

  it('finds nodes on ports of their own through SRV records', async () => {
    const cluster = newCluster();
    dns = await startDnsServer();
    const host = cluster.allocateHost();
    // Three nodes on one host, each with a public port and a cluster port of its own; SRV names the cluster ports.
    const ports = new Set<number>();
    for (let i = 0; ports.size < 6 && i < 40; i++) ports.add(await freePortOn([host]));
    const [publicPorts, clusterPorts] = [[...ports].slice(0, 3), [...ports].slice(3, 6)];
    const service = '_counters._tcp.cluster.test';
    dns.set(service, clusterPorts.map((port) => srv('node.cluster.test', port)));
    dns.set('node.cluster.test', [a(host)]);
    const env = { ...FAST_LIVENESS, DISCOVERY_DNS: service, DISCOVERY_DNS_SERVER: dns.server };
    const nodes = await Promise.all(publicPorts.map((port, i) => cluster.add({ name: `srv${i + 1}`, host, port, clusterPort: clusterPorts[i]!, env })));
    const started = performance.now();
    await Promise.all(nodes.map((node) => node.start()));
    await waitForMesh(nodes);
    for (const node of nodes) {
      await expectSelf(node);
      const status = await clusterStatus(node);
      // Every address of the SRV answer, with its own port.
      expect(status.peers.map((p) => p.address).filter((address) => address.startsWith(`${host}:`)).sort()).toEqual(nodes.map((n) => n.address).sort());
    }
    await Promise.all(nodes.map((node, i) => increment(node, 'srv', i + 1)));
    expect((await waitForConvergence(nodes)).totals).toEqual({ srv: 6 });
    expect(dns.queries.some((q) => q.type === 'SRV' && q.name === service)).toBe(true);
    reportTiming('dns SRV records', { convergedMs: performance.now() - started });
  });
});
