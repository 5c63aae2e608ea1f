/**
 * Three real nodes on loopback, each listing all three addresses in PEERS (itself included):
 * concurrent increments everywhere converge to the sum acknowledged, and a node killed with
 * SIGKILL under load and restarted on its database loses nothing acknowledged and catches up.
 */
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/eventually.js';
import { FAST_LIVENESS, useClusters } from '../helpers/cluster.js';
import { logLines } from '../helpers/cluster-node.js';
import { waitForConvergence, waitForMesh } from '../helpers/cluster-waits.js';
import { clusterStatus, increment, incrementBatch } from '../helpers/http-client.js';
import { startLoad, sum } from '../helpers/load.js';
import { reportTiming } from './timing.js';

const newCluster = useClusters();

const PAGES = ['home', 'about', 'blog/first-post', '日本語', 'pricing'];

describe('a three-node cluster', () => {
  it('converges on the sum of every acknowledged increment made concurrently on all nodes', async () => {
    // startNodes and waitForMesh apart (not startMesh), to report how long the mesh took to form.
    const nodes = await newCluster().startNodes(3, { env: FAST_LIVENESS });
    const meshMs = await waitForMesh(nodes);

    // Every node sees itself in its own PEERS list and says so.
    for (const node of nodes) {
      const status = await clusterStatus(node);
      expect(status.peers.find((p) => p.address === node.address)?.state).toBe('self');
    }
    const links = async () =>
      Object.fromEntries(
        (await Promise.all(nodes.map(clusterStatus))).flatMap((s) => s.peers.filter((p) => p.state === 'connected').map((p) => [`${s.node.name}->${p.name}`, p.since])),
      );
    const linksBefore = await links();
    expect(Object.keys(linksBefore)).toHaveLength(6);

    const load = startLoad(nodes, { pages: PAGES, clientsPerNode: 4, maxRequestsPerClient: 40 });
    // A few explicit ones too: a big `by` and a batch naming one page twice.
    const [a, b, c] = nodes;
    await Promise.all([
      increment(a, 'home', 1000),
      incrementBatch(b, [
        { page: 'about', by: 5 },
        { page: 'about', by: 6 },
        { page: 'only-on-c', by: 2 },
      ]),
      increment(c, 'only-on-c', 3),
    ]);
    await load.done;
    expect(load.errors, load.errors.join('\n')).toEqual([]);
    expect(load.answered).toBe(3 * 4 * 40);
    const expected = { ...load.acked };
    expected.home = (expected.home ?? 0) + 1000;
    expected.about = (expected.about ?? 0) + 11;
    expected['only-on-c'] = 5;

    const converged = await waitForConvergence(nodes);
    expect(converged.totals).toEqual(expected);
    // The same six sessions carried it all: no link dropped, flapped or was replaced under load.
    expect(await links()).toEqual(linksBefore);
    reportTiming('three nodes', { meshMs, convergeAfterLoadMs: converged.ms, views: sum(expected) });

    // Once converged, nobody is behind anybody: the lag figures agree with the digests.
    await eventually(async () => {
      for (const node of nodes) {
        for (const peer of (await clusterStatus(node)).peers.filter((p) => p.state === 'connected')) {
          expect({ node: node.name, peer: peer.name, lag: peer.lagSeqs, behind: peer.behindSeqs }).toEqual({
            node: node.name,
            peer: peer.name,
            lag: 0,
            behind: 0,
          });
        }
      }
    });
    // No handshake was refused for a protocol reason while the mesh formed (only self/duplicate).
    for (const node of nodes) {
      const refused = logLines(node, { msg: 'peer refused the connection' }).filter((l) => l.code !== 'self' && l.code !== 'duplicate');
      expect(refused).toEqual([]);
      expect(logLines(node, { msg: 'closing peer connection', level: 'warn' })).toEqual([]);
    }
  });

  it('loses nothing acknowledged when a node is killed with SIGKILL under load and restarted on its database', async () => {
    const nodes = await newCluster().startMesh(3, { env: FAST_LIVENESS });
    const c = nodes[2];

    const first = startLoad(nodes, { pages: PAGES, clientsPerNode: 3 });
    await eventually(() => expect(first.answered).toBeGreaterThanOrEqual(150), { timeoutMs: 20_000 });
    const exit = await c.kill9();
    expect(exit.signal).toBe('SIGKILL');
    // The survivors keep counting while c is down.
    const answeredAtKill = first.answered;
    await eventually(() => expect(first.answered).toBeGreaterThanOrEqual(answeredAtKill + 100), { timeoutMs: 20_000 });

    const restartStarted = performance.now();
    await c.start();
    const second = startLoad([c], { pages: PAGES, clientsPerNode: 3 });
    const rejoinMs = await waitForMesh(nodes);
    await eventually(() => expect(second.answered).toBeGreaterThanOrEqual(60), { timeoutMs: 20_000 });
    await Promise.all([first.stop(), second.stop()]);
    // Only c's clients may have failed, and only at the kill.
    const unexpected = [...first.errors.filter((e) => !e.startsWith(`${c.name}:`)), ...second.errors];
    expect(unexpected, unexpected.join('\n')).toEqual([]);

    // c's previous run crashed without announcing its departure; its membership entry goes as
    // soon as the new run's presence arrives, not after the 30 s awareness timeout.
    const cNow = (await clusterStatus(c)).node;
    for (const node of nodes) {
      await eventually(async () => {
        const members = (await clusterStatus(node)).membership;
        expect(members.filter((m) => m.name === c.name).map((m) => m.replicaId)).toEqual([cNow.replicaId]);
        expect(members).toHaveLength(3);
      });
    }

    const converged = await waitForConvergence(nodes);
    for (const page of PAGES) {
      const acked = (first.acked[page] ?? 0) + (second.acked[page] ?? 0);
      // Requests cut by the kill may have committed without an answer: at least, never less.
      expect(converged.totals[page] ?? 0).toBeGreaterThanOrEqual(acked);
    }
    const acked = sum(first.acked) + sum(second.acked);
    // Unacknowledged views cut by the kill: at most one request per client of c (by ≤ 3, batch ≤ 4).
    expect(sum(converged.totals) - acked).toBeLessThanOrEqual(3 * 4);
    reportTiming('kill -9 and restart', {
      restartToMeshMs: performance.now() - restartStarted,
      rejoinMs,
      convergeAfterLoadMs: converged.ms,
      acked,
      lostInFlight: sum(converged.totals) - acked,
    });
  });
});
