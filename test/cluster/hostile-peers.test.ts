/**
 * Hostile peers against running nodes, one test per attack of issue 12: each attack is performed
 * by a hand-driven peer (raw-peer.ts) that knows the secret where the attack needs it, against a
 * healthy pair a–b (or a line a–c–b). Each must leave the node serving, its counts correct and
 * converged with its honest peers.
 */
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { decodeFrame, encodeMessage } from '../../src/protocol/codec.js';
import type { Message } from '../../src/protocol/messages.js';
import { CLUSTER_PATH } from '../../src/transport/websocket-transport.js';
import type { ReplicaId } from '../../src/ids.js';
import { newReplicaId } from '../../src/ids.js';
import { MAX_MERGE_BATCH_SLOTS } from '../../src/replication/merge-queue.js';
import { MAX_FRAME_ENTRIES, PROTOCOL_VERSION } from '../../src/protocol/messages.js';
import { MAX_PRESENCE_STATE_BYTES, MAX_PRESENCE_STATES, MAX_UPDATE_STATES } from '../../src/replication/presence.js';
import { MESSAGE_TAGS } from '../../src/protocol/codec.js';
import { replicaIdToBytes } from '../../src/ids.js';
import { BOUNDED_DEGREE_ABOVE_NODES } from '../../src/replication/active-view.js';
import { MAX_HANDSHAKES_PER_SOURCE, NEW_REPLICA_BURST } from '../../src/replication/peer-limits.js';
import { eventually } from '../helpers/eventually.js';
import { METRIC_PREFIX } from '../../src/metrics.js';
import { FAST_LIVENESS, type TestCluster, useClusters } from '../helpers/cluster.js';
import { type ClusterNode, CLUSTER_SECRET } from '../helpers/cluster-node.js';
import { CONVERGENCE_TIMEOUT_MS, waitForConvergence } from '../helpers/cluster-waits.js';
import { SPREAD_INTERVAL_MS } from '../../src/replication/sync-sender.js';
import { clusterStatus, increment, incrementBatch, pageCount, peerAt, WRITER_HEADERS } from '../helpers/http-client.js';
import { DAY_MS, dayOf, hourOf, HOUR_MS, registerT, SERIES_DAY, SERIES_HOUR, SERIES_REGISTER } from '../../src/crdt/series.js';
import type { Slot } from '../../src/crdt/g-counter.js';
import { RawPeer } from './raw-peer.js';

const CLUSTER_NAME = 'hostile-test';
const newCluster = useClusters();

/** A Prometheus sample of the node's /metrics, `name` without the node's prefix (summed over label sets matching `labels`). */
async function metric(node: ClusterNode, name: string, labels: Readonly<Record<string, string>> = {}): Promise<number> {
  return metricIn(await (await fetch(`${node.privateUrl}/metrics`)).text(), name, labels);
}

/** A metric's value (summed over matching label sets) in one scrape's text. */
function metricIn(text: string, name: string, labels: Readonly<Record<string, string>> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== `${METRIC_PREFIX}${name}`) continue;
    const set = match[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) sum += Number(match[3]);
  }
  return sum;
}

/** a and b, linked; `stillLinked` proves b's session with a never broke and both still converge. */
async function healthyPair(env: Readonly<Record<string, string>> = {}): Promise<{ cluster: TestCluster; a: ClusterNode; b: ClusterNode; stillLinked: () => Promise<void> }> {
  const cluster = newCluster();
  const [a, b] = await cluster.startMesh(2, { env: { ...FAST_LIVENESS, CLUSTER_NAME, ...env }, names: ['a', 'b'] });
  const since = peerAt(await clusterStatus(b), a.address)?.since;
  expect(since).toBeDefined();
  let round = 0;
  const stillLinked = async () => {
    expect(peerAt(await clusterStatus(b), a.address)).toMatchObject({ state: 'connected', since });
    round++;
    await Promise.all([increment(a, 'steady'), increment(b, 'steady')]);
    const converged = await waitForConvergence([a, b]);
    expect(converged.totals.steady).toBe(2 * round);
    expect((await fetch(`${a.url}/healthz`)).status).toBe(200);
  };
  return { cluster, a, b, stillLinked };
}

async function joined(node: ClusterNode): Promise<RawPeer> {
  const peer = await RawPeer.connect(node.privateUrl);
  await peer.join(CLUSTER_NAME, CLUSTER_SECRET);
  return peer;
}

/** The awareness entries (client, clock, state) of an update. */
function awarenessEntries(update: Uint8Array): Array<{ client: number; clock: number; state: string }> {
  const decoder = decoding.createDecoder(update);
  const out = [];
  for (let n = decoding.readVarUint(decoder); n > 0; n--) {
    out.push({ client: decoding.readVarUint(decoder), clock: decoding.readVarUint(decoder), state: decoding.readVarString(decoder) });
  }
  return out;
}

function awarenessUpdate(entries: ReadonlyArray<{ client: number; clock: number; state: string }>): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, entries.length);
  for (const entry of entries) {
    encoding.writeVarUint(encoder, entry.client);
    encoding.writeVarUint(encoder, entry.clock);
    encoding.writeVarString(encoder, entry.state);
  }
  return encoding.toUint8Array(encoder);
}

const page = (name: string) => name as never;

/** A `slots` frame (round 1, index 0) of one replica, written by hand: encodeMessage refuses more than MAX_FRAME_ENTRIES. */
function encodeOverBound(slots: ReadonlyArray<{ page: string; replica: ReplicaId; count: number; seq: number }>): Uint8Array {
  const encoder = encoding.createEncoder();
  for (const n of [PROTOCOL_VERSION, MESSAGE_TAGS.slots, 1, 0, 1]) encoding.writeVarUint(encoder, n);
  encoding.writeVarUint8Array(encoder, replicaIdToBytes(slots[0]!.replica));
  encoding.writeVarUint(encoder, slots.length);
  for (const slot of slots) {
    encoding.writeVarString(encoder, slot.page);
    // table index, count, seq, epoch, kind (0: the page's total; PROTOCOL.md §4a)
    for (const n of [0, slot.count, slot.seq, 0, 0]) encoding.writeVarUint(encoder, n);
  }
  return encoding.toUint8Array(encoder);
}

describe('hostile peers', () => {
  it('relay: a party without the secret that shuttles a handshake between two nodes cannot send a frame either accepts', async () => {
    const { cluster, a, stillLinked } = await healthyPair();
    // The relay listens; node c dials it (it is in c's PEERS), and the relay dials a posing as c.
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0, path: CLUSTER_PATH, perMessageDeflate: false });
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    const fromC: Message[] = [];
    const cSocket = new Promise<WebSocket>((resolve) => {
      server.once('connection', (ws) => {
        ws.on('message', (data: Buffer) => {
          try {
            fromC.push(decodeFrame(new Uint8Array(data)));
          } catch {
            // sealed frames: the relay cannot read them
          }
        });
        resolve(ws);
      });
    });
    try {
      const c = await cluster.add({
        name: 'c',
        host: cluster.allocateHost(),
        port: a.port,
        clusterPort: a.clusterPort,
        env: { ...FAST_LIVENESS, CLUSTER_NAME, PEERS: `127.0.0.1:${(server.address() as AddressInfo).port}` },
      });
      await c.start();
      const toC = await cSocket;
      const cHello = await eventually(() => {
        const hello = fromC.find((m) => m.type === 'hello');
        if (hello?.type !== 'hello') throw new Error('no hello from c yet');
        return hello;
      });
      // To a: "I am c", with c's own nonce.
      const toA = await RawPeer.connect(a.privateUrl);
      toA.sendMessage({ ...cHello });
      const aHello = await toA.next('hello');
      // To c (which dialled, so proves first): "I am a", with a's nonce. c's proof is what a asks of c.
      toC.send(encodeMessage({ ...aHello }));
      const cAuth = await eventually(() => {
        const auth = fromC.find((m) => m.type === 'auth');
        if (auth?.type !== 'auth') throw new Error('no auth from c yet');
        return auth;
      });
      toA.sendMessage(cAuth);
      // a took the relayed proof and opened (the handshake alone cannot tell a relay from c)…
      await toA.next('auth');
      // …but every frame from here on needs c's session key, which the relay cannot derive.
      const rc = (await clusterStatus(c)).node.replicaId as ReplicaId;
      toA.sendMessage({ type: 'delta', range: { replica: rc, after: 0, upTo: 1 }, slots: [{ page: page('relayed'), count: 2 ** 53 - 1, seq: 1 }] });
      expect((await toA.closed).reason).toMatch(/does not verify/);
      expect(await pageCount(a, 'relayed')).toBe(0);
      toC.terminate();
      await stillLinked();
    } finally {
      server.close();
    }
  });

  it('forged and replayed frames: a flipped byte, or a frame of another session, closes the session and counts nothing', async () => {
    const { a, stillLinked } = await healthyPair();
    const first = await joined(a);
    const delta: Message = { type: 'delta', range: { replica: first.replica, after: 0, upTo: 1 }, slots: [{ page: page('sealed'), count: 5, seq: 1 }] };
    // Forged: the count changed after sealing.
    const forged = first.sealer!.seal(encodeMessage(delta));
    forged[forged.byteLength - 20]! ^= 0x01;
    first.send(forged);
    expect((await first.closed).reason).toMatch(/does not verify/);
    expect(await pageCount(a, 'sealed')).toBe(0);
    // Replayed: a frame sealed for one session, sent again on another (same peer identity).
    const second = await joined(a);
    const sealed = second.sealer!.seal(encodeMessage({ ...delta, range: { replica: second.replica, after: 0, upTo: 1 } }));
    second.send(sealed);
    await eventually(async () => expect(await pageCount(a, 'sealed')).toBe(5));
    second.close();
    const third = await joined(a);
    third.send(sealed);
    expect((await third.closed).reason).toMatch(/does not verify/);
    // …and in the same session, twice.
    const fourth = await joined(a);
    const again = fourth.sealer!.seal(encodeMessage({ type: 'ping', id: 9 }));
    fourth.send(again);
    fourth.send(again);
    expect((await fourth.closed).reason).toMatch(/does not verify/);
    expect(await pageCount(a, 'sealed')).toBe(5);
    await stillLinked();
  });

  it('false coverage: an empty delta claiming a replica range moves nothing, and a node behind a hub still gets that replica', async () => {
    // a and b reach each other only through c: a gets b's changes by anti-entropy from c, which
    // stops for good if a believes a lie about b's range.
    const nodes = await newCluster().startNodes(3, {
      env: { ...FAST_LIVENESS, CLUSTER_NAME },
      names: ['a', 'b', 'c'],
      perNode: (i, addresses): Record<string, string> => (i === 2 ? {} : { PEERS: addresses[2] as string }),
    });
    const [a, b] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    await waitForConvergence(nodes);
    const rb = (await clusterStatus(b)).node.replicaId as ReplicaId;
    const liar = await joined(a);
    liar.sendMessage({ type: 'delta', range: { replica: rb, after: 0, upTo: 2 ** 40 }, slots: [] });
    // The lie was read: the ping after it is answered.
    liar.sendMessage({ type: 'ping', id: 77 });
    await eventually(() => expect(liar.received.some((m) => m?.type === 'pong' && m.id === 77)).toBe(true));
    expect((await clusterStatus(a)).versionVector[rb] ?? 0).toBeLessThan(2 ** 40);
    for (let i = 0; i < 10; i++) await increment(b, 'behind-hub');
    const converged = await waitForConvergence(nodes);
    expect(converged.totals['behind-hub']).toBe(10);
    expect(await pageCount(a, 'behind-hub')).toBe(10);
    liar.close();
  });

  it('slots without coverage: slots a peer never covers (no covered, a delta past a gap) still reach every node of a line', async () => {
    // a and b reach each other only through c; the peer talks to a only and never covers its slots.
    const nodes = await newCluster().startNodes(3, {
      env: { ...FAST_LIVENESS, CLUSTER_NAME },
      names: ['a', 'b', 'c'],
      perNode: (i, addresses): Record<string, string> => (i === 2 ? {} : { PEERS: addresses[2] as string }),
    });
    const [a, b] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    await waitForConvergence(nodes);
    const peer = await joined(a);
    // A round's chunk with no `covered` after it, then a delta whose range starts past a gap.
    peer.sendMessage({ type: 'slots', round: 7, index: 0, slots: [{ page: page('uncovered'), replica: peer.replica, count: 4, seq: 3 }] });
    peer.sendMessage({ type: 'delta', range: { replica: peer.replica, after: 10, upTo: 11 }, slots: [{ page: page('gap'), count: 6, seq: 11 }] });
    await eventually(async () => expect(await pageCount(a, 'gap')).toBe(6));
    peer.close();
    // Slots nobody covers travel in sync answers (`spread`), to each session once and again only
    // after SPREAD_INTERVAL_MS: an answer that went out between the two frames above leaves the
    // second for the next spread, 30 s on (failed once in a CI rehearsal under load, at 15 s).
    const converged = await waitForConvergence(nodes, { timeoutMs: SPREAD_INTERVAL_MS + CONVERGENCE_TIMEOUT_MS });
    expect(converged.totals).toMatchObject({ uncovered: 4, gap: 6 });
    expect(await pageCount(b, 'uncovered')).toBe(4);
    // No vector took the peer's word: nothing covers its seqs anywhere.
    for (const node of nodes) expect((await clusterStatus(node)).versionVector[peer.replica] ?? 0).toBe(0);
    // And the line still carries new counts.
    await increment(b, 'after-spread');
    expect((await waitForConvergence(nodes)).totals['after-spread']).toBe(1);
  }, 2 * SPREAD_INTERVAL_MS + 3 * CONVERGENCE_TIMEOUT_MS);

  it('oversized vectors: covered ranges and slots for tens of thousands of fake replicas do not grow the vector past the new-id budget', async () => {
    const { a, stillLinked } = await healthyPair();
    const liar = await joined(a);
    const fakes = Array.from({ length: 30_000 }, () => newReplicaId());
    // Coverage for replicas it never delivered a slot of: justified by nothing.
    for (let i = 0; i < 2; i++) {
      liar.sendMessage({ type: 'covered', round: 100 + i, chunks: 0, ranges: fakes.slice(i * 15_000, (i + 1) * 15_000).map((replica) => ({ replica, after: 0, upTo: 5 })) });
    }
    // Slots of new replicas: only the budget's worth is taken.
    for (let i = 0; i < 5; i++) {
      const slots = fakes.slice(i * 4_000, (i + 1) * 4_000).map((replica) => ({ page: page('fake'), replica, count: 1, seq: 1 }));
      liar.sendMessage({ type: 'slots', round: 200, index: i, slots });
    }
    liar.sendMessage({ type: 'covered', round: 200, chunks: 5, ranges: fakes.slice(0, 20_000).map((replica) => ({ replica, after: 0, upTo: 1 })) });
    liar.sendMessage({ type: 'ping', id: 1 });
    await eventually(() => expect(liar.received.some((m) => m?.type === 'pong')).toBe(true));
    await eventually(async () => expect(await pageCount(a, 'fake')).toBeGreaterThan(0));
    const replicas = Object.keys((await clusterStatus(a)).versionVector).length;
    expect(replicas).toBeLessThanOrEqual(NEW_REPLICA_BURST + 10);
    expect(await pageCount(a, 'fake')).toBeLessThanOrEqual(NEW_REPLICA_BURST + 20);
    expect(await metric(a, 'replication_replicas_refused_total')).toBeGreaterThan(0);
    liar.close();
    // New sessions still open (a vector that no longer fits one frame killed every open before).
    const next = await joined(a);
    next.close();
    await stillLinked();
  });

  it('total overflow through merges: slots of two replicas summing past 2^53-1 leave every node at 2^53-1, converged, refusing increments', async () => {
    const { a, b, stillLinked } = await healthyPair();
    // Each slot a safe integer, each delta justified by its own slot; together 2^53 + 3 (summed
    // as doubles 2^53 + 4: the imprecise total of before). One lands on a, the other on b, so
    // each node meets the sum in the other order (concurrent `by` increments would do the same).
    const first = await joined(a);
    const second = await joined(b);
    first.sendMessage({ type: 'delta', range: { replica: first.replica, after: 0, upTo: 1 }, slots: [{ page: page('overflow'), count: 2 ** 52 + 1, seq: 1 }] });
    second.sendMessage({ type: 'delta', range: { replica: second.replica, after: 0, upTo: 1 }, slots: [{ page: page('overflow'), count: 2 ** 52 + 2, seq: 1 }] });
    const converged = await waitForConvergence([a, b]);
    expect(converged.totals.overflow).toBe(Number.MAX_SAFE_INTEGER);
    for (const node of [a, b]) expect(await pageCount(node, 'overflow')).toBe(Number.MAX_SAFE_INTEGER);
    expect((await metric(a, 'replication_pages_saturated_total')) + (await metric(b, 'replication_pages_saturated_total'))).toBeGreaterThanOrEqual(2);
    const refused = await fetch(`${a.url}/api/pages/overflow/views`, { method: 'POST', headers: WRITER_HEADERS });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('counter_overflow');
    // Neither raw peer was closed for it: nothing was refused that another node kept.
    first.sendMessage({ type: 'ping', id: 3 });
    await eventually(() => expect(first.received.some((m) => m?.type === 'pong' && m.id === 3)).toBe(true));
    first.close();
    second.close();
    await stillLinked();
  });

  it('awareness overwrite: a remote cannot rename the node or push its clock to 2^53', async () => {
    const { a, stillLinked } = await healthyPair();
    const liar = await joined(a);
    const full = await liar.next('awareness');
    const own = awarenessEntries(full.update).find((entry) => JSON.parse(entry.state)?.name === 'a');
    expect(own).toBeDefined();
    const renamed = JSON.stringify({ ...JSON.parse(own!.state), name: 'owned' });
    liar.sendMessage({ type: 'awareness', update: awarenessUpdate([{ client: own!.client, clock: own!.clock + 1, state: renamed }]) });
    liar.sendMessage({ type: 'ping', id: 5 });
    await eventually(() => expect(liar.received.some((m) => m?.type === 'pong' && m.id === 5)).toBe(true));
    const names = (await clusterStatus(a)).membership.map((m) => m.name);
    expect(names).toContain('a');
    expect(names).not.toContain('owned');
    // A clock near 2^53 (for any client) closes the liar's session, nothing else.
    liar.sendMessage({ type: 'awareness', update: awarenessUpdate([{ client: own!.client, clock: 2 ** 53 - 1, state: renamed }]) });
    expect((await liar.closed).reason).toMatch(/could not be applied|bad_frame/);
    await stillLinked();
    expect((await clusterStatus(a)).membership.find((m) => m.name === 'a')).toBeDefined();
  });

  it('presence flood: a peer adding states under client ids of its own making is closed past the update bound, the members stay the honest ones', async () => {
    const { a, stillLinked } = await healthyPair();
    const liar = await joined(a);
    const full = await liar.next('awareness');
    const template = JSON.parse(awarenessEntries(full.update).find((entry) => JSON.parse(entry.state)?.name === 'a')!.state) as Record<string, unknown>;
    // Each a live-looking member that claims no replica a session vouches for; together past the cap.
    const forged = Array.from({ length: MAX_PRESENCE_STATES + 5 }, (_, i) => ({
      client: 1_000_000 + i,
      clock: 1,
      state: JSON.stringify({ ...template, name: `forged-${i}`, address: `127.9.${i >> 8}.${i & 255}:1`, replicaId: String(i).padStart(32, 'f') }),
    }));
    // More entries than one update may carry (MAX_UPDATE_STATES) close the session.
    liar.sendMessage({ type: 'awareness', update: awarenessUpdate(forged) });
    expect((await liar.closed).reason).toMatch(/could not be applied|bad_frame/);
    // One state over the size bound is ignored (counted), the session kept: an old node relays
    // states bounded in characters only (review r18p #3).
    const big = await joined(a);
    await big.next('awareness');
    big.sendMessage({ type: 'awareness', update: awarenessUpdate([{ client: 7, clock: 1, state: JSON.stringify({ ...template, name: 'big', pad: 'x'.repeat(MAX_PRESENCE_STATE_BYTES) }) }]) });
    big.sendMessage({ type: 'ping', id: 6 });
    await eventually(() => expect(big.received.some((m) => m?.type === 'pong' && m.id === 6)).toBe(true));
    expect(await metric(a, 'replication_presence_ignored_total', { reason: 'size' })).toBe(1);
    big.close();
    await stillLinked();
    const names = (await clusterStatus(a)).membership.map((m) => m.name);
    expect(names.some((name) => name.startsWith('forged-') || name === 'big')).toBe(false);
    expect(names).toContain('a');
  });

  it('wide presence states (review h18 #4): states of 3-byte characters are bounded in bytes, and what a node relays never passes the frame limit', async () => {
    const { a, b, stillLinked } = await healthyPair();
    const liar = await joined(a);
    const full = await liar.next('awareness');
    const template = JSON.parse(awarenessEntries(full.update).find((entry) => JSON.parse(entry.state)?.name === 'a')!.state) as Record<string, unknown>;
    const member = (prefix: string, i: number) => ({ ...template, name: `${prefix}-${i}`, address: `127.9.${i >> 8}.${i & 255}:1`, replicaId: String(i).padStart(32, 'e') });
    // 450 states of 2,048 characters, ~6 KB of UTF-8 each, in frames of 150 (under the frame
    // limit). Counted in characters they passed, and the first 400-state part of the full update
    // a sends b (which holds fewer members) took 2.4 MB: past the frame limit, so every check cut
    // b's session.
    const wide = (i: number) => {
      const base = JSON.stringify({ ...member('wide', i), pad: '' });
      return JSON.stringify({ ...member('wide', i), pad: '\u4e00'.repeat(MAX_PRESENCE_STATE_BYTES - base.length) });
    };
    expect(wide(0).length).toBe(MAX_PRESENCE_STATE_BYTES);
    for (let f = 0; f < 3; f++) {
      liar.sendMessage({ type: 'awareness', update: awarenessUpdate(Array.from({ length: 150 }, (_, i) => ({ client: 2_000_000 + f * 150 + i, clock: 1, state: wide(f * 150 + i) }))) });
    }
    // 450 states of the largest size allowed (2,048 bytes) from another peer: a passes them all to
    // b, in parts within the frame limit, and b's session with a stays open throughout.
    const legal = (i: number) => {
      const base = JSON.stringify({ ...member('legal', i), pad: '' });
      return JSON.stringify({ ...member('legal', i), pad: 'x'.repeat(MAX_PRESENCE_STATE_BYTES - base.length) });
    };
    const honestLooking = await joined(a);
    for (let f = 0; f < 3; f++) {
      honestLooking.sendMessage({ type: 'awareness', update: awarenessUpdate(Array.from({ length: 150 }, (_, i) => ({ client: 3_000_000 + f * 150 + i, clock: 1, state: legal(f * 150 + i) }))) });
    }
    await eventually(async () => {
      const names = (await clusterStatus(b)).membership.map((m) => m.name);
      expect(names.filter((name) => name.startsWith('legal-'))).toHaveLength(450);
    }, { timeoutMs: 20_000 });
    // The wide states were ignored (counted), not held, not relayed; no session was closed for
    // them (the liar, which answers no heartbeat, may have timed out meanwhile).
    expect(await metric(a, 'replication_presence_ignored_total', { reason: 'size' })).toBe(450);
    expect(await metric(a, 'replication_peer_failures_total')).toBe(0);
    await stillLinked();
    const names = (await clusterStatus(b)).membership.map((m) => m.name);
    expect(names.some((name) => name.startsWith('wide-'))).toBe(false);
    liar.close();
    honestLooking.close();
  });

  it('presence cap (review r18p #1): a peer that fills a node with states gets no honest session closed; a newcomer is held everywhere and all converge', async () => {
    const { cluster, a, b } = await healthyPair();
    const bSince = peerAt(await clusterStatus(b), a.address)?.since;
    const hostile = await joined(a);
    const full = await hostile.next('awareness');
    const template = JSON.parse(awarenessEntries(full.update).find((entry) => JSON.parse(entry.state)?.name === 'a')!.state) as Record<string, unknown>;
    // Live-looking members that fill a to the cap exactly (with a and b), re-sent at the same
    // clock (a renewal) so they never time out.
    const fakes = Array.from({ length: MAX_PRESENCE_STATES - 2 }, (_, i) => ({
      client: 5_000_000 + i,
      clock: 1,
      state: JSON.stringify({ ...template, name: `fake-${i}`, address: `127.8.${i >> 8}.${i & 255}:1`, replicaId: String(i).padStart(32, 'd') }),
    }));
    const flood = () => {
      for (let i = 0; i < fakes.length; i += MAX_UPDATE_STATES) hostile.sendMessage({ type: 'awareness', update: awarenessUpdate(fakes.slice(i, i + MAX_UPDATE_STATES)) });
    };
    flood();
    const renewing = setInterval(flood, 2_000);
    try {
      const fakesAt = async (node: ClusterNode) => (await clusterStatus(node)).membership.filter((m) => m.name.startsWith('fake-')).length;
      // a is full; it sends b (which holds fewer members) its full update, and b fills up too.
      await eventually(async () => expect((await clusterStatus(a)).membership).toHaveLength(MAX_PRESENCE_STATES), { timeoutMs: 20_000 });
      await eventually(async () => expect(await fakesAt(b)).toBe(MAX_PRESENCE_STATES - 2), { timeoutMs: 20_000 });
      // A newcomer c dials both; its own state takes a fake's place at each.
      const c = await cluster.add({ name: 'c', host: cluster.allocateHost(), port: a.port, clusterPort: a.clusterPort, env: { ...FAST_LIVENESS, CLUSTER_NAME, PEERS: `${a.address},${b.address}` } });
      await c.start();
      await eventually(async () => {
        const status = await clusterStatus(c);
        for (const node of [a, b]) expect(peerAt(status, node.address)?.state).toBe('connected');
      }, { timeoutMs: 20_000 });
      const cSince = Object.fromEntries(await Promise.all([a, b].map(async (node) => [node.name, peerAt(await clusterStatus(c), node.address)?.since] as const)));
      for (const node of [a, b]) await eventually(async () => expect((await clusterStatus(node)).membership.map((m) => m.name)).toContain('c'), { timeoutMs: 20_000 });
      // The fake that made room for c, re-sent, finds none: ignored (counted).
      await eventually(async () => expect(await metric(a, 'replication_presence_ignored_total', { reason: 'cap' })).toBeGreaterThan(0), { timeoutMs: 20_000 });
      // c takes what a and b relay (their full updates: it holds fewer) up to the cap.
      await eventually(async () => expect((await clusterStatus(c)).membership).toHaveLength(MAX_PRESENCE_STATES), { timeoutMs: 20_000 });
      // Before: "presence would hold 2049 members" closed c's sessions with a at once, and b's
      // with a at a's next full update.
      expect(peerAt(await clusterStatus(b), a.address)).toMatchObject({ state: 'connected', since: bSince });
      const cStatus = await clusterStatus(c);
      for (const node of [a, b]) expect(peerAt(cStatus, node.address)).toMatchObject({ state: 'connected', since: cSince[node.name] });
      for (const node of [a, b, c]) expect(await metric(node, 'replication_peer_failures_total')).toBe(0);
      await Promise.all([increment(a, 'capped'), increment(b, 'capped'), increment(c, 'capped')]);
      expect((await waitForConvergence([a, b, c])).totals.capped).toBe(3);
      for (const node of [a, b, c]) expect((await clusterStatus(node)).membership.map((m) => m.name)).toEqual(expect.arrayContaining(['a', 'b', 'c']));
    } finally {
      clearInterval(renewing);
      hostile.close();
    }
  }, 120_000);

  it('removal flood (review h18 #5): removals of clients never held are bounded with the states, and a new session is sent no more than the bound', async () => {
    const cluster = newCluster();
    // a lists b and 17 addresses where nothing listens: 18 nodes as far as it knows, so it runs
    // in bounded-degree mode (sparse presence), where every entry held goes to each new session.
    const [a, b] = await cluster.startNodes(2, {
      env: { ...FAST_LIVENESS, CLUSTER_NAME },
      names: ['a', 'b'],
      perNode: (i, addresses): Record<string, string> => {
        if (i === 1) return { PEERS: addresses[0] as string };
        const port = (addresses[1] as string).split(':')[1];
        const dead = Array.from({ length: BOUNDED_DEGREE_ABOVE_NODES + 1 }, () => `${cluster.allocateHost()}:${port}`);
        return { PEERS: [addresses[1] as string, ...dead].join(',') };
      },
    });
    await eventually(async () => expect(peerAt(await clusterStatus(b), a.address)?.state).toBe('connected'), { timeoutMs: 20_000 });
    const flooder = await joined(a);
    // 20 frames of 400 removals of clients a never held: 8,000 entries the library would keep for ever.
    for (let f = 0; f < 20; f++) {
      flooder.sendMessage({ type: 'awareness', update: awarenessUpdate(Array.from({ length: 400 }, (_, i) => ({ client: 4_000_000 + f * 400 + i, clock: 1, state: 'null' }))) });
    }
    flooder.sendMessage({ type: 'ping', id: 9 });
    await eventually(() => expect(flooder.received.some((m) => m?.type === 'pong' && m.id === 9)).toBe(true));
    flooder.close();
    // A new session: a sends it every entry it holds at its next check, in one pass (b's state
    // among the first); a ping after that flushes the rest of the pass.
    const observer = await joined(a);
    const entriesSeen = () => observer.received.flatMap((m) => (m?.type === 'awareness' ? awarenessEntries(m.update) : []));
    await eventually(() => expect(entriesSeen().some((entry) => entry.state !== 'null' && JSON.parse(entry.state)?.name === 'b')).toBe(true), { timeoutMs: 15_000 });
    observer.sendMessage({ type: 'ping', id: 10 });
    await eventually(() => expect(observer.received.some((m) => m?.type === 'pong' && m.id === 10)).toBe(true));
    const seen = entriesSeen();
    // Bounded mode indeed: a's own state carries no mesh relay lists.
    const own = seen.filter((entry) => entry.state !== 'null' && JSON.parse(entry.state)?.name === 'a').at(-1);
    expect(JSON.parse(own!.state)).not.toHaveProperty('members');
    const removals = seen.filter((entry) => entry.state === 'null').length;
    expect(removals).toBeGreaterThan(0);
    expect(removals).toBeLessThanOrEqual(MAX_PRESENCE_STATES);
    observer.close();
    // No session was closed for the flood (both may dial at first, and the duplicate's close
    // changes the session's \`since\`: that is not a failure), and both still count and converge.
    for (const node of [a, b]) expect(await metric(node, 'replication_peer_failures_total')).toBe(0);
    expect(peerAt(await clusterStatus(b), a.address)?.state).toBe('connected');
    await Promise.all([increment(a, 'steady'), increment(b, 'steady')]);
    expect((await waitForConvergence([a, b])).totals.steady).toBe(2);
    expect((await clusterStatus(a)).membership.map((m) => m.name).sort()).toEqual(['a', 'b']);
  });

  it('huge frames: a frame over the entry bound closes the session; frames at it are merged in bounded transactions, every slot counted', async () => {
    const { a, b, stillLinked } = await healthyPair();
    // One slot more than a frame may list (decoding costs per entry): refused before it is decoded.
    const greedy = await joined(a);
    const over = Array.from({ length: MAX_FRAME_ENTRIES + 1 }, (_, i) => ({ page: page(`o${i}`), replica: greedy.replica, count: 1, seq: i + 1 }));
    greedy.send(greedy.sealer!.seal(encodeOverBound(over)));
    expect((await greedy.closed).reason).toMatch(/over 4096 per frame/);
    expect(await pageCount(a, 'o0')).toBe(0);
    const liar = await joined(a);
    const pages = MAX_FRAME_ENTRIES;
    const frames = 45;
    for (let f = 0; f < frames; f++) {
      const slots = Array.from({ length: pages }, (_, i) => ({ page: page(`h${f}-${i}`), replica: liar.replica, count: 2, seq: f * pages + i + 1 }));
      liar.sendMessage({ type: 'slots', round: 1, index: f, slots });
    }
    liar.sendMessage({ type: 'covered', round: 1, chunks: frames, ranges: [{ replica: liar.replica, after: 0, upTo: frames * pages }] });
    await eventually(async () => expect(await pageCount(a, `h${frames - 1}-${pages - 1}`)).toBe(2), { timeoutMs: 90_000 });
    // Every merge transaction held at most MAX_MERGE_BATCH_SLOTS slots.
    // One scrape for both: anti-entropy with b keeps merging, so two scrapes could differ by a batch.
    const scrape = await (await fetch(`${a.privateUrl}/metrics`)).text();
    const transactions = metricIn(scrape, 'replication_merge_batch_slots_count');
    const bounded = metricIn(scrape, 'replication_merge_batch_slots_bucket', { le: String(MAX_MERGE_BATCH_SLOTS) });
    expect(transactions).toBeGreaterThanOrEqual((frames * pages) / MAX_MERGE_BATCH_SLOTS);
    expect(bounded).toBe(transactions);
    // b gets them all from a through anti-entropy (180,000 slots: give a loaded machine time).
    // Wait for the whole state, not one page: chunks arrive in page order, not send order.
    const converged = await waitForConvergence([a, b], { timeoutMs: 90_000 });
    expect(converged.totals[`h${frames - 1}-${pages - 1}`]).toBe(2);
    liar.close();
    await stillLinked();
  }, 240_000);

  it('a peer that stops reading: sync answers wait for its send buffer instead of filling memory', async () => {
    const { a, stillLinked } = await healthyPair();
    // Give a about 12 MB of state (one replica, 50,000 slots of 220-byte page names).
    const feeder = await joined(a);
    const total = 50_000;
    const frames = Math.ceil(total / 4_000);
    for (let f = 0; f < frames; f++) {
      const slots = [];
      for (let i = f * 4_000; i < Math.min(total, (f + 1) * 4_000); i++) slots.push({ page: page(`s${i}-${'y'.repeat(210)}`), replica: feeder.replica, count: 1, seq: i + 1 });
      feeder.sendMessage({ type: 'slots', round: 1, index: f, slots });
    }
    feeder.sendMessage({ type: 'covered', round: 1, chunks: frames, ranges: [{ replica: feeder.replica, after: 0, upTo: total }] });
    await eventually(async () => expect(await pageCount(a, `s${total - 1}-${'y'.repeat(210)}`)).toBe(1), { timeoutMs: 30_000 });
    feeder.close();
    const stateBytes = total * 225;

    const reader = await joined(a);
    reader.stopReading();
    const asksBefore = await metric(a, 'replication_frames_total', { direction: 'received', type: 'vv' });
    // Ask for everything, again and again (a peer that does not read can still write).
    const asking = setInterval(() => reader.sendMessage({ type: 'vv', vv: new Map() }), 100);
    try {
      // Two hundred asks read by a later (one per 100 ms: about 20 s), answers that ignored the
      // bound would have queued the whole state many times over.
      await eventually(async () => expect(await metric(a, 'replication_frames_total', { direction: 'received', type: 'vv' })).toBeGreaterThan(asksBefore + 200), {
        timeoutMs: 60_000,
      });
    } finally {
      clearInterval(asking);
    }
    // What a sent as slots went to b (the feeder's state, once) and the reader: at most the send
    // bound (8 MiB), one chunk, and what the kernel's socket buffers took (tcp_rmem allows up to
    // 32 MiB for the paused reader's side, tcp_wmem 4 MiB for a's).
    const queued = await metric(a, 'replication_bytes_total', { direction: 'sent', type: 'slots' });
    expect(queued).toBeLessThan(stateBytes + (8 + 1 + 32 + 4) * 2 ** 20);
    reader.close();
    await stillLinked();
  });

  it('sockets that never say hello: over the per-host cap they are closed at once, the rest at the handshake deadline even while pinging', async () => {
    const { a, stillLinked } = await healthyPair();
    const sockets = await Promise.all(Array.from({ length: MAX_HANDSHAKES_PER_SOURCE + 4 }, () => RawPeer.connect(a.privateUrl)));
    const pinger = setInterval(() => {
      for (const s of sockets) if (s.ws.readyState === s.ws.OPEN) s.sendMessage({ type: 'ping', id: 1 });
    }, 200);
    try {
      const reasons = await Promise.all(sockets.map(async (s) => (await s.closed).reason));
      expect(reasons.filter((r) => /too many unauthenticated/.test(r))).toHaveLength(4);
      expect(reasons.filter((r) => /handshake timeout/.test(r))).toHaveLength(MAX_HANDSHAKES_PER_SOURCE);
    } finally {
      clearInterval(pinger);
    }
    await stillLinked();
  });

  it('id-rotation flood: claims of seqs of the node’s own fresh id close the liar and mint nothing', async () => {
    const { a, stillLinked } = await healthyPair();
    const before = (await clusterStatus(a)).node.replicaId;
    for (let i = 0; i < 20; i++) {
      const liar = await RawPeer.connect(a.privateUrl);
      const own = await liar.nodeReplica();
      await liar.join(CLUSTER_NAME, CLUSTER_SECRET);
      liar.sendMessage({ type: 'vv', vv: new Map([[own, 1_000_000 + i]]) });
      await liar.closed;
    }
    const status = await clusterStatus(a);
    expect(status.node.replicaId).toBe(before);
    expect(await metric(a, 'replication_identity_minted_total')).toBe(0);
    expect(Object.keys(status.versionVector).length).toBeLessThanOrEqual(4);
    await stillLinked();
  });
});

const MAX = Number.MAX_SAFE_INTEGER;
const ADMIN_TOKEN = 'test-admin-token-0123456789';

/** A public GET's JSON, expecting 200. */
async function getJson<T>(node: ClusterNode, path: string): Promise<T> {
  const response = await fetch(`${node.url}${path}`);
  expect(response.status, `${node.name} ${path}`).toBe(200);
  return (await response.json()) as T;
}

type Points = { points: Array<{ views: number; visitors?: number }> };
type Top = { pages: Array<{ page: string; views: number }> };

/**
 * A `delta` frame written by hand, the slots' keys unchecked: encodeMessage refuses what a node
 * would (a register's rank past 51), and these tests send it anyway.
 */
function encodeDeltaUnchecked(range: { replica: ReplicaId; after: number; upTo: number }, slots: ReadonlyArray<{ page: string; count: number; seq: number; kind?: number; t?: number }>): Uint8Array {
  const encoder = encoding.createEncoder();
  // origin 1 (the replica named), replica, upTo, span (PROTOCOL.md §4)
  for (const n of [PROTOCOL_VERSION, MESSAGE_TAGS.delta, 1]) encoding.writeVarUint(encoder, n);
  encoding.writeVarUint8Array(encoder, replicaIdToBytes(range.replica));
  for (const n of [range.upTo, range.upTo - range.after, slots.length]) encoding.writeVarUint(encoder, n);
  for (const slot of slots) {
    // page reference 0: the name follows, not kept in the session's page table (§4b)
    encoding.writeVarUint(encoder, 0);
    encoding.writeVarString(encoder, slot.page);
    // count, back = upTo − seq, head = kind at epoch 0[, t] (PROTOCOL.md §4, §4a)
    for (const n of [slot.count, range.upTo - slot.seq, slot.kind ?? 0]) encoding.writeVarUint(encoder, n);
    if (slot.kind !== undefined) encoding.writeVarUint(encoder, slot.t ?? 0);
  }
  return encoding.toUint8Array(encoder);
}

describe('hostile peers and the analytics (issue 16)', () => {
  it('bucket sums past 2^53-1: top pages, page and site series read 2^53-1 on every node (no 500), and a reset sums the saturated site buckets again', async () => {
    const { a, b, stillLinked } = await healthyPair({ ADMIN_TOKENS: ADMIN_TOKEN });
    await incrementBatch(a, [{ page: 'plain', by: 3 }]);
    const now = Date.now();
    const day = dayOf(now);
    const hour = hourOf(now);
    // 40 replicas (well within the new-id budget), each at 2^53-1 in the page's total, its hour
    // and its last 30 day buckets: a 30-day sum holds 1,200 of them (SQLite's sum() overflows 64 bits).
    const slots: Slot[] = [];
    const replicas = Array.from({ length: 40 }, () => newReplicaId());
    for (const replica of replicas) {
      slots.push({ page: page('flood'), replica, count: MAX, seq: 1 }, { page: page('flood'), replica, count: MAX, seq: 1, kind: SERIES_HOUR, t: hour });
      for (let d = day - 29; d <= day; d++) slots.push({ page: page('flood'), replica, count: MAX, seq: 1, kind: SERIES_DAY, t: d });
    }
    const flooder = await joined(a);
    flooder.sendMessage({ type: 'slots', round: 1, index: 0, slots });
    flooder.sendMessage({ type: 'covered', round: 1, chunks: 1, ranges: replicas.map((replica) => ({ replica, after: 0, upTo: 1 })) });
    // Nothing was refused: buckets near 2^53 are slots like any other.
    flooder.sendMessage({ type: 'ping', id: 4 });
    await eventually(() => expect(flooder.received.some((m) => m?.type === 'pong' && m.id === 4)).toBe(true));
    flooder.close();
    await eventually(async () => expect(await pageCount(b, 'flood')).toBe(MAX));
    await waitForConvergence([a, b]);
    const days = `from=${(day - 29) * DAY_MS}&to=${(day + 1) * DAY_MS}`;
    const hours = `from=${(hour - 1) * HOUR_MS}&to=${(hour + 1) * HOUR_MS}`;
    for (const node of [a, b]) {
      await eventually(async () => {
        // 30 whole days: one sum over 1,200 day buckets of 2^53-1 (a 500 "integer overflow" before).
        expect((await getJson<Top>(node, `/api/top?${days}`)).pages).toEqual([
          { page: 'flood', views: MAX },
          { page: 'plain', views: 3 },
        ]);
        // 40 × (2^53-1) per point: imprecise numbers past 2^53 before, now the cap.
        expect((await getJson<Points>(node, `/api/pages/flood/series?step=day&${days}`)).points.map((p) => p.views)).toEqual(Array(30).fill(MAX));
        expect((await getJson<Points>(node, `/api/series?step=day&${days}`)).points.map((p) => p.views)).toEqual(Array(30).fill(MAX));
        expect((await getJson<Points>(node, `/api/series?step=hour&${hours}`)).points.map((p) => p.views)).toEqual([0, MAX]);
      });
    }
    // The site buckets were saturated: a reset of the page cannot subtract from them, so they are
    // summed again from what is left (only `plain`'s 3 views), on the node that reset and the other.
    const reset = await fetch(`${a.url}/api/admin/pages/flood/reset`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(reset.status).toBe(200);
    for (const node of [a, b]) {
      await eventually(async () => {
        expect((await getJson<Points>(node, `/api/series?step=day&${days}`)).points.map((p) => p.views)).toEqual([...Array<number>(29).fill(0), 3]);
        expect((await getJson<Points>(node, `/api/series?step=hour&${hours}`)).points.map((p) => p.views)).toEqual([0, 3]);
        expect((await getJson<Top>(node, `/api/top?${days}`)).pages).toEqual([{ page: 'plain', views: 3 }]);
      });
    }
    await stillLinked();
  });

  it('a register rank past 51: the frame closes the session and nothing of it is merged, in a delta or a sync chunk', async () => {
    const { a, stillLinked } = await healthyPair();
    const day = dayOf(Date.now());
    const liar = await joined(a);
    // The page's total slot first, valid: refused with the rest of its frame.
    const frame = encodeDeltaUnchecked({ replica: liar.replica, after: 0, upTo: 1 }, [
      { page: 'ranked', count: 1, seq: 1 },
      { page: 'ranked', count: 10 ** 9, seq: 1, kind: SERIES_REGISTER, t: registerT(day, 9) },
    ]);
    liar.send(liar.sealer!.seal(frame));
    expect((await liar.closed).reason).toMatch(/rank must be 1–51, got 1000000000/);
    // 52, one past the highest rank a 64-bit hash gives, in a sync chunk of another replica.
    const other = await joined(a);
    const chunk = encoding.createEncoder();
    for (const n of [PROTOCOL_VERSION, MESSAGE_TAGS.slots, 1, 0, 1]) encoding.writeVarUint(chunk, n);
    encoding.writeVarUint8Array(chunk, replicaIdToBytes(newReplicaId()));
    encoding.writeVarUint(chunk, 2);
    encoding.writeVarString(chunk, 'ranked');
    for (const n of [0, 1, 1, 0, 0]) encoding.writeVarUint(chunk, n);
    encoding.writeVarString(chunk, 'ranked');
    for (const n of [0, 52, 1, 0, SERIES_REGISTER, registerT(day, 10)]) encoding.writeVarUint(chunk, n);
    other.send(other.sealer!.seal(encoding.toUint8Array(chunk)));
    expect((await other.closed).reason).toMatch(/rank must be 1–51, got 52/);
    expect(await pageCount(a, 'ranked')).toBe(0);
    expect((await getJson<Points>(a, `/api/pages/ranked/series?step=day&from=${day * DAY_MS}&to=${(day + 1) * DAY_MS}`)).points).toEqual([{ t: new Date(day * DAY_MS).toISOString(), views: 0, visitors: 0 }]);
    await stillLinked();
  });

  it('buckets above their total slot: every node lists top pages by views at most their totals, each limit a prefix of the next', async () => {
    const { a, b, stillLinked } = await healthyPair();
    await incrementBatch(a, [
      { page: 'honest', by: 5 },
      { page: 'second', by: 4 },
    ]);
    const now = Date.now();
    const liar = await joined(a);
    // Impossible for an honest replica (each view raises its total and one bucket of each kind),
    // accepted all the same: refusing it would depend on arrival order (a bucket may come first).
    liar.sendMessage({
      type: 'delta',
      range: { replica: liar.replica, after: 0, upTo: 1 },
      slots: [
        { page: page('inflated'), count: 1, seq: 1 },
        { page: page('inflated'), count: 1_000, seq: 1, kind: SERIES_HOUR, t: hourOf(now) },
        { page: page('inflated'), count: 1_000, seq: 1, kind: SERIES_DAY, t: dayOf(now) },
      ],
    });
    await eventually(async () => expect(await pageCount(b, 'inflated')).toBe(1));
    const range = `from=${(dayOf(now) - 29) * DAY_MS}&to=${(dayOf(now) + 1) * DAY_MS}`;
    const full = [
      { page: 'honest', views: 5 },
      { page: 'second', views: 4 },
      { page: 'inflated', views: 1 },
    ];
    for (const node of [a, b]) {
      await eventually(async () => {
        // Before, limit 3 read the inflated page (1,000 in its buckets) and put it first, limit 2 stopped before it.
        for (const limit of [1, 2, 3, 10]) expect((await getJson<Top>(node, `/api/top?limit=${limit}&${range}`)).pages, `${node.name} limit ${limit}`).toEqual(full.slice(0, limit));
        // The series show what the slots hold.
        expect((await getJson<Points>(node, `/api/pages/inflated/series?step=day&${range}`)).points.at(-1)?.views).toBe(1_000);
      });
    }
    liar.close();
    await stillLinked();
  });
});
