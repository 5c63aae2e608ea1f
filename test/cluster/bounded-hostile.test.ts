/**
 * The bounded-degree mode's security fixes (issue 18, review h18 #2 and #3) attacked on a real
 * node process. The node is given 20 PEERS entries — its own address and 19 loopback addresses
 * where nothing listens — so it counts 20 nodes and runs bounded (past 16): 3 dialled peers, at
 * most 8 sessions, at most 5 inbound, at most 2 from one host. The attackers and the honest party
 * are raw peers (raw-peer.ts) that know the secret, each from a loopback host of its own.
 *
 * - Forged copy (#2): a hostile relayer sends a delta under a genuine delta's id first, with a
 *   lowered count; the genuine delta arriving after it must still be merged (only a byte-identical
 *   copy is a duplicate).
 * - Eclipse (#3): one host opening many sessions under fresh replica ids gets 2 of the inbound
 *   slots; an honest dialler from another host still gets in and its increments count.
 * - Relay flood (#7): justified deltas under ids nobody saw but inside what the node holds, and
 *   copies of a held id that raise nothing, are merged; the first are relayed only within the
 *   sender's budget per second, the copies not at all; news still is.
 * - Forged covering range (r18c #1): a lowered copy under a wider id moves the vector first; the
 *   genuine delta, inside the vector then but raising a total, still goes on.
 */
import { describe, expect, it } from 'vitest';
import type { PageName, ReplicaId } from '../../src/ids.js';
import type { Message } from '../../src/protocol/messages.js';
import { MAX_INBOUND_PER_HOST } from '../../src/replication/active-view.js';
import { MAX_IDLE_RELAYS_PER_SECOND } from '../../src/replication/broadcast-tree.js';
import { eventually } from '../helpers/eventually.js';
import { FAST_LIVENESS, type TestCluster, useClusters } from '../helpers/cluster.js';
import { type ClusterNode, CLUSTER_SECRET } from '../helpers/cluster-node.js';
import { pageCount } from '../helpers/http-client.js';
import { RawPeer } from './raw-peer.js';

const CLUSTER_NAME = 'counters-bounded';
/** Addresses in PEERS where nothing listens: with the node's own, 20 > 16, so the node is bounded. */
const DEAD_PEERS = 19;

const newCluster = useClusters();

type Delta = Extract<Message, { type: 'delta' }>;

function delta(replica: ReplicaId, page: string, count: number, after = 0, upTo = 1): Delta {
  return { type: 'delta', range: { replica, after, upTo }, slots: [{ page: page as PageName, count, seq: upTo }] };
}

/** One node, bounded: its PEERS list itself and DEAD_PEERS loopback addresses of its subnet where nothing listens. */
async function boundedNode(): Promise<{ cluster: TestCluster; node: ClusterNode }> {
  const cluster = newCluster();
  const [node] = await cluster.startNodes(1, {
    env: { ...FAST_LIVENESS, CLUSTER_NAME },
    perNode: (_i, addresses) => {
      const port = addresses[0]!.split(':')[1]!;
      const dead = Array.from({ length: DEAD_PEERS }, (_, k) => `${cluster.subnet}.${200 + k}:${port}`);
      return { PEERS: [...addresses, ...dead].join(',') };
    },
  });
  return { cluster, node };
}

async function joined(node: ClusterNode, host: string): Promise<RawPeer> {
  const peer = await RawPeer.connect(node.privateUrl, { localAddress: host });
  await peer.join(CLUSTER_NAME, CLUSTER_SECRET);
  return peer;
}

describe('bounded degree against hostile peers (a real node)', () => {
  it('forged copy: a lowered copy sent first under a genuine delta id does not make the genuine delta a duplicate', async () => {
    const { cluster, node } = await boundedNode();
    const hostile = await joined(node, cluster.allocateHost());
    const honest = await joined(node, cluster.allocateHost());
    // The honest peer is the origin R of delta (R, 0, 1) raising `home` to 5; the hostile relayer
    // pre-empts its id with a copy claiming 1.
    const id = honest.replica;
    hostile.sendMessage(delta(id, 'home', 1));
    // Bounded mode: the node passes the first copy on along its tree (a mesh node relays no delta).
    const relayed = await honest.next('delta', 15_000);
    expect(relayed.range).toEqual({ replica: id, after: 0, upTo: 1 });
    expect(await eventually(async () => {
      const count = await pageCount(node, 'home');
      if (count !== 1) throw new Error(`home is ${count}`);
      return count;
    }, { timeoutMs: 15_000 })).toBe(1);
    honest.sendMessage(delta(id, 'home', 5));
    // Without the fix the genuine copy was dropped as a duplicate: `home` stayed at 1 for good.
    await eventually(async () => {
      const count = await pageCount(node, 'home');
      if (count !== 5) throw new Error(`home is ${count}, want 5`);
    }, { timeoutMs: 10_000 });
    // …and it went on to the node's other sessions (the hostile one), so the nodes the forged copy
    // reached get it too.
    await eventually(() => {
      const counts = hostile.received.flatMap((m) => (m?.type === 'delta' && m.range.replica === id ? m.slots.map((s) => s.count) : []));
      if (!counts.includes(5)) throw new Error(`hostile peer got ${JSON.stringify(counts)}`);
    }, { timeoutMs: 10_000 });
    hostile.close();
    honest.close();
  }, 90_000);

  it('forged covering range (r18c #1): a lowered copy under a wider id sent first does not stop the genuine delta going on', async () => {
    const { cluster, node } = await boundedNode();
    const hostile = await joined(node, cluster.allocateHost());
    const honest = await joined(node, cluster.allocateHost());
    const id = honest.replica;
    const countsTo = (peer: RawPeer) => peer.received.flatMap((m) => (m?.type === 'delta' && m.range.replica === id ? m.slots.map((s) => s.count) : []));
    // R's (0, 40] raising `home` to 1: news, relayed to the hostile peer.
    honest.sendMessage(delta(id, 'home', 1, 0, 40));
    await eventually(() => {
      if (!countsTo(hostile).includes(1)) throw new Error('not relayed');
    }, { timeoutMs: 15_000 });
    // The hostile relayer saw the genuine (R, 40, 41] coming and sends (R, 0, 41] first, with
    // `home` at 1, justified by its slot at seq 41: news by range, so the node's vector reaches 41.
    hostile.sendMessage(delta(id, 'home', 1, 0, 41));
    await eventually(() => {
      if (!honest.received.some((m) => m?.type === 'delta' && m.range.replica === id && m.range.upTo === 41)) throw new Error('forged copy not relayed');
    }, { timeoutMs: 15_000 });
    // The honest peer's copies raising nothing (ids inside the vector) spend its per-second budget
    // of such relays, then the genuine (R, 40, 41] with `home` at 5: inside the vector, but it raises.
    for (let k = 1; k <= MAX_IDLE_RELAYS_PER_SECOND; k++) honest.sendMessage(delta(id, 'home', 1, k, 41));
    honest.sendMessage(delta(id, 'home', 5, 40, 41));
    await eventually(async () => {
      const count = await pageCount(node, 'home');
      if (count !== 5) throw new Error(`home is ${count}, want 5`);
    }, { timeoutMs: 10_000 });
    // Without the fix it was merged here only: the hostile session (the rest of the tree) got [1, 1, …].
    await eventually(() => {
      if (!countsTo(hostile).includes(5)) throw new Error(`hostile peer (the rest of the tree) got ${JSON.stringify(countsTo(hostile))}`);
    }, { timeoutMs: 10_000 });
    hostile.close();
    honest.close();
  }, 90_000);

  it('eclipse: one host opening sessions under fresh replica ids gets 2 inbound slots; an honest dialler from another host gets in', async () => {
    const { cluster, node } = await boundedNode();
    const attackerHost = cluster.allocateHost();
    // More than the node's inbound cap (5 at 20 nodes), each under a fresh replica id.
    const attempts = 6;
    const hostile: RawPeer[] = [];
    const outcomes: Array<'open' | string> = [];
    for (let i = 0; i < attempts; i++) {
      const peer = await RawPeer.connect(node.privateUrl, { localAddress: attackerHost });
      hostile.push(peer);
      const outcome = await peer.tryJoin(CLUSTER_NAME, CLUSTER_SECRET);
      outcomes.push(outcome === 'open' ? 'open' : outcome.reason);
    }
    const open = outcomes.filter((o) => o === 'open');
    expect(open, JSON.stringify(outcomes)).toHaveLength(MAX_INBOUND_PER_HOST);
    for (const refused of outcomes.filter((o) => o !== 'open')) expect(refused).toMatch(/full/);
    // The attacker's sessions that were taken are still held: the honest dialler does not evict them.
    const honest = await RawPeer.connect(node.privateUrl, { localAddress: cluster.allocateHost() });
    const outcome = await honest.tryJoin(CLUSTER_NAME, CLUSTER_SECRET);
    // Without the per-host cap the attacker held every inbound slot and this was `full`.
    expect(outcome === 'open' ? 'open' : outcome.reason).toBe('open');
    honest.sendMessage(delta(honest.replica, 'honest', 3));
    await eventually(async () => {
      const count = await pageCount(node, 'honest');
      if (count !== 3) throw new Error(`honest is ${count}`);
    }, { timeoutMs: 15_000 });
    for (const peer of [...hostile, honest]) peer.close();
  }, 90_000);

  it('relay flood: deltas under fresh ids inside what the node holds, and copies raising nothing, are merged and relayed only within a budget', async () => {
    const { cluster, node } = await boundedNode();
    const hostile = await joined(node, cluster.allocateHost());
    const listener = await joined(node, cluster.allocateHost());
    const replica = hostile.replica;
    const relayedTo = () => listener.received.filter((m) => m?.type === 'delta' && m.range.replica === replica).length;
    // News: R's (0, 200] raising `flood` to 200 — relayed, and the node's vector holds R up to 200.
    hostile.sendMessage(delta(replica, 'flood', 200, 0, 200));
    await eventually(async () => {
      if (relayedTo() !== 1 || (await pageCount(node, 'flood')) !== 200) throw new Error(`relayed ${relayedTo()}`);
    }, { timeoutMs: 15_000 });
    // 199 ids nobody saw, (k, 200] each justified by its slot at seq 200 but inside what the node
    // holds and raising nothing, and 199 copies of (0, 200] with lower counts: without the rule,
    // 398 frames to each peer. With it the first go on only within the sender's budget per second
    // (the burst is read in well under 3 s), the copies not at all.
    for (let k = 1; k < 200; k++) hostile.sendMessage(delta(replica, 'flood', 200, k, 200));
    for (let count = 1; count < 200; count++) hostile.sendMessage(delta(replica, 'flood', count, 0, 200));
    // Then news again; frames arrive in order, so once it is relayed the flood was handled.
    hostile.sendMessage(delta(replica, 'flood', 201, 200, 201));
    await eventually(async () => {
      if ((await pageCount(node, 'flood')) !== 201) throw new Error('not merged yet');
      if (!listener.received.some((m) => m?.type === 'delta' && m.range.upTo === 201)) throw new Error('news not relayed');
    }, { timeoutMs: 15_000 });
    expect(relayedTo()).toBeGreaterThanOrEqual(2);
    expect(relayedTo()).toBeLessThanOrEqual(2 + 3 * MAX_IDLE_RELAYS_PER_SECOND);
    hostile.close();
    listener.close();
  }, 90_000);
});
