/**
 * Bad peers against a running node: nodes of another cluster or with another secret are refused
 * with the reason visible on both sides and exchange no counts; raw WebSocket clients sending
 * garbage, truncated, oversized, out-of-range, other-version or text frames lose their own
 * connection and nothing else. Throughout, the node keeps serving and a real peer stays
 * connected (the same session, never redialled) and converging.
 */
import * as encoding from 'lib0/encoding';
import { describe, expect, it } from 'vitest';
import { replicaIdToBytes } from '../../src/ids.js';
import { encodeMessage } from '../../src/protocol/codec.js';
import { MAX_FRAME_BYTES, PROTOCOL_VERSION } from '../../src/protocol/messages.js';
import { PAGE_TABLE_ENTRIES } from '../../src/protocol/page-table.js';
import { eventually } from '../helpers/eventually.js';
import { FAST_LIVENESS, type TestCluster, useClusters } from '../helpers/cluster.js';
import { type ClusterNode, CLUSTER_SECRET, logLines } from '../helpers/cluster-node.js';
import { waitForConvergence } from '../helpers/cluster-waits.js';
import { clusterStatus, increment, pageCount, peerAt } from '../helpers/http-client.js';
import { RawPeer } from './raw-peer.js';

const CLUSTER_NAME = 'counters-test';
/** WebSocket close codes (RFC 6455 §7.4.1). */
const CLOSE_UNSUPPORTED_DATA = 1003;
const CLOSE_MESSAGE_TOO_BIG = 1009;
const PROTOCOL_VERSION_BYTE = PROTOCOL_VERSION;
const DELTA_TAG = 6;

const newCluster = useClusters();

/** Starts a and b (a healthy pair) and returns a probe proving b's session with a never broke. */
async function healthyPair(): Promise<{ cluster: TestCluster; a: ClusterNode; b: ClusterNode; stillLinked: () => Promise<void> }> {
  const cluster = newCluster();
  const [a, b] = await cluster.startMesh(2, { env: { ...FAST_LIVENESS, CLUSTER_NAME }, names: ['a', 'b'] });
  const since = peerAt(await clusterStatus(b), a.address)?.since;
  expect(since).toBeDefined();
  let round = 0;
  const stillLinked = async () => {
    const entry = peerAt(await clusterStatus(b), a.address);
    expect(entry).toMatchObject({ state: 'connected', since });
    // …and still converging: a view on each side reaches the other.
    round++;
    await Promise.all([increment(a, 'steady'), increment(b, 'steady')]);
    expect((await waitForConvergence([a, b])).totals.steady).toBe(2 * round);
    expect((await fetch(`${a.url}/healthz`)).status).toBe(200);
  };
  return { cluster, a, b, stillLinked };
}

/** A deterministic byte soup (an LCG), starting with the current protocol version. */
function garbage(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let state = seed;
  for (let i = 0; i < length; i++) {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    out[i] = state & 0xff;
  }
  out[0] = PROTOCOL_VERSION_BYTE;
  return out;
}

/**
 * A delta as on the wire (version 6, PROTOCOL.md §4, §4b): upTo, span = upTo − after, then one
 * slot: its page reference (0: the name follows; 1 … E: a table entry; E + 1 … 2E: a definition,
 * then the bytes it shares with the previous definition, `shared` (0 unless given), and the
 * name), count, back = upTo − seq and head (0 unless given: the total at epoch 0; 4–7: `epoch`
 * follows), unchecked.
 */
function handBuiltDelta(replica: Uint8Array, range: { upTo: number; span: number }, slot: { page: string; count: number; back: number; ref?: number; shared?: number; head?: number; epoch?: number }, origin = 1): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, PROTOCOL_VERSION_BYTE);
  encoding.writeVarUint(encoder, DELTA_TAG);
  encoding.writeVarUint(encoder, origin); // 1: the replica named
  encoding.writeVarUint8Array(encoder, replica);
  encoding.writeVarUint(encoder, range.upTo);
  encoding.writeVarUint(encoder, range.span);
  encoding.writeVarUint(encoder, 1);
  const ref = slot.ref ?? 0;
  encoding.writeVarUint(encoder, ref);
  if (ref > PAGE_TABLE_ENTRIES) encoding.writeVarUint(encoder, slot.shared ?? 0); // a definition: bytes shared with the previous one
  if (ref === 0 || ref > PAGE_TABLE_ENTRIES) encoding.writeVarString(encoder, slot.page);
  encoding.writeVarUint(encoder, slot.count);
  encoding.writeVarUint(encoder, slot.back);
  const head = slot.head ?? 0; // kind 0 (the page's total), epoch 0
  encoding.writeVarUint(encoder, head);
  if (head >= 4) encoding.writeVarUint(encoder, slot.epoch ?? 0);
  return encoding.toUint8Array(encoder);
}

/** Origin 2: the sender's replica, after = `gap` past its previous origin-2/3 upTo (0 on a new session), span 1, page 'p' literal, count 5. */
function ownDeltaAfterGap(gap: number): Uint8Array {
  const encoder = encoding.createEncoder();
  for (const n of [PROTOCOL_VERSION_BYTE, DELTA_TAG, 2, gap, 1, 1, 0]) encoding.writeVarUint(encoder, n);
  encoding.writeVarString(encoder, 'p');
  for (const n of [5, 0, 0]) encoding.writeVarUint(encoder, n); // count, back, head
  return encoding.toUint8Array(encoder);
}

/**
 * One 256-byte page defined, then referred to by 4,095 more slots: 16 KB on the wire, 1.06 MB
 * with its names written out (what the broadcast tree would relay).
 */
function expandingDelta(replica: Uint8Array): Uint8Array {
  const encoder = encoding.createEncoder();
  for (const n of [PROTOCOL_VERSION_BYTE, DELTA_TAG, 1]) encoding.writeVarUint(encoder, n);
  encoding.writeVarUint8Array(encoder, replica);
  for (const n of [1, 1, 4_096, PAGE_TABLE_ENTRIES + 1, 0]) encoding.writeVarUint(encoder, n); // upTo, span, slots; entry 0 defined, nothing shared
  encoding.writeVarString(encoder, 'q'.repeat(256));
  for (const n of [1, 0, 0]) encoding.writeVarUint(encoder, n); // count, back, head
  for (let i = 1; i < 4_096; i++) for (const n of [1, 1, 0, 0]) encoding.writeVarUint(encoder, n); // entry 0, count, back, head
  return encoding.toUint8Array(encoder);
}

describe('bad peers', () => {
  it('refuses a node with another CLUSTER_SECRET and one of another CLUSTER_NAME, with the reason on both sides, counting nothing across', async () => {
    const { cluster, a, b, stillLinked } = await healthyPair();
    const [wrongSecret, otherCluster] = await Promise.all([
      cluster.add({ name: 'wrong-secret', host: cluster.allocateHost(), port: a.port, clusterPort: a.clusterPort, env: { ...FAST_LIVENESS, CLUSTER_NAME, CLUSTER_SECRET: 'not-the-secret-but-long-enough-0123456789', PEERS: a.address } }),
      cluster.add({ name: 'other-cluster', host: cluster.allocateHost(), port: a.port, clusterPort: a.clusterPort, env: { ...FAST_LIVENESS, CLUSTER_NAME: 'another-cluster', PEERS: a.address } }),
    ]);
    await Promise.all([wrongSecret.start(), otherCluster.start()]);
    await Promise.all([increment(wrongSecret, 'intruder', 7), increment(otherCluster, 'intruder', 9), increment(a, 'inside', 1)]);

    const refusals = (code: string) => a.logs.filter((line) => line.level === 'warn' && line.code === code).length;
    const [authBefore, clusterBefore] = [refusals('auth'), refusals('cluster')];
    // The diallers show why, on the peer entry for a.
    await eventually(async () => expect(peerAt(await clusterStatus(wrongSecret), a.address)?.lastError).toMatch(/CLUSTER_SECRET/));
    await eventually(async () => expect(peerAt(await clusterStatus(otherCluster), a.address)?.lastError).toMatch(/cluster "(counters-test|another-cluster)"/));
    // The listener logs a warning with the code, again at each redial (so after the increments too).
    await eventually(() => expect(refusals('auth')).toBeGreaterThan(authBefore), { timeoutMs: 15_000 });
    await eventually(() => expect(refusals('cluster')).toBeGreaterThan(clusterBefore), { timeoutMs: 15_000 });

    expect(await pageCount(a, 'intruder')).toBe(0);
    expect(await pageCount(b, 'intruder')).toBe(0);
    expect(await pageCount(wrongSecret, 'inside')).toBe(0);
    expect(await pageCount(otherCluster, 'inside')).toBe(0);
    const status = await clusterStatus(a);
    for (const outsider of await Promise.all([wrongSecret, otherCluster].map(clusterStatus))) {
      expect(Object.keys(status.versionVector)).not.toContain(outsider.node.replicaId);
      expect(status.membership.map((m) => m.replicaId)).not.toContain(outsider.node.replicaId);
      expect(outsider.peers.filter((p) => p.state === 'connected')).toEqual([]);
    }
    await stillLinked();
  });

  it('closes only the offending connection for garbage, truncated, oversized, out-of-range, other-version and text frames', async () => {
    const { a, stillLinked } = await healthyPair();
    const closedWith = async (peer: RawPeer) => {
      const closed = await peer.closed;
      peer.close();
      return closed;
    };

    // Garbage that starts like a frame of this version.
    let peer = await RawPeer.connect(a.privateUrl);
    peer.send(garbage(64, 42));
    await closedWith(peer);
    expect(peer.received.find((m) => m?.type === 'reject')).toMatchObject({ code: 'bad_frame' });
    await stillLinked();

    // A valid hello cut short.
    peer = await RawPeer.connect(a.privateUrl);
    const hello = encodeMessage({ type: 'hello', cluster: CLUSTER_NAME, replica: peer.replica, node: 'raw', nonce: peer.nonce });
    peer.send(hello.slice(0, hello.byteLength - 5));
    await closedWith(peer);
    expect(peer.received.find((m) => m?.type === 'reject')).toMatchObject({ code: 'bad_frame', reason: expect.stringMatching(/frame ends inside/) });
    await stillLinked();

    // One byte over the frame limit: the WebSocket layer refuses it before any decoding.
    peer = await RawPeer.connect(a.privateUrl);
    const big = new Uint8Array(MAX_FRAME_BYTES + 1);
    big[0] = PROTOCOL_VERSION_BYTE;
    peer.send(big);
    expect((await closedWith(peer)).code).toBe(CLOSE_MESSAGE_TOO_BIG);
    await stillLinked();

    // Out-of-range values from an authenticated peer: a count past 2^53-1, a slot outside its
    // range (seq 0 = after), a range reaching below seq 0 (span past upTo), an origin none of 0–3.
    for (const [frame, problem] of [
      [handBuiltDelta(replicaIdToBytes(peer.replica), { upTo: 1, span: 1 }, { page: 'p', count: 2 ** 53, back: 0 }), /exceeds 2\^53-1/],
      [handBuiltDelta(replicaIdToBytes(peer.replica), { upTo: 1, span: 1 }, { page: 'p', count: 5, back: 1 }), /outside its range/],
      [handBuiltDelta(replicaIdToBytes(peer.replica), { upTo: 2, span: 3 }, { page: 'p', count: 5, back: 0 }), /span 3/],
      [handBuiltDelta(replicaIdToBytes(peer.replica), { upTo: 1, span: 1 }, { page: 'p', count: 5, back: 0 }, 4), /origin 4/],
      // Page references (version 6): an entry the peer never defined, and one past the table.
      [handBuiltDelta(replicaIdToBytes(peer.replica), { upTo: 1, span: 1 }, { page: 'p', count: 5, back: 0, ref: 5 }), /entry 4, which this session never defined/],
      [handBuiltDelta(replicaIdToBytes(peer.replica), { upTo: 1, span: 1 }, { page: 'p', count: 5, back: 0, ref: 2 * PAGE_TABLE_ENTRIES + 1 }), /past the page table/],
      // A definition claiming more shared bytes than the previous name has (none: the first).
      [handBuiltDelta(replicaIdToBytes(peer.replica), { upTo: 1, span: 1 }, { page: 'p', count: 5, back: 0, ref: PAGE_TABLE_ENTRIES + 1, shared: 3 }), /shares 3 bytes with the previous definition of 0/],
      // Heads: past 7, and epoch 0 written out.
      [handBuiltDelta(replicaIdToBytes(peer.replica), { upTo: 1, span: 1 }, { page: 'p', count: 5, back: 0, head: 8 }), /kind and epoch 8/],
      [handBuiltDelta(replicaIdToBytes(peer.replica), { upTo: 1, span: 1 }, { page: 'p', count: 5, back: 0, head: 4, epoch: 0 }), /epoch 0 written out/],
      // References that would grow the frame past the limit when relayed.
      [expandingDelta(replicaIdToBytes(peer.replica)), /with its names written out/],
      // Origin 2 (the sender's own replica, after its previous delta) with a gap past 2^53-1.
      [ownDeltaAfterGap(Number.MAX_SAFE_INTEGER), /passes 2\^53-1/],
    ] as const) {
      peer = await RawPeer.connect(a.privateUrl);
      await peer.join(CLUSTER_NAME, CLUSTER_SECRET);
      peer.send(peer.sealer!.seal(frame));
      await closedWith(peer);
      expect(peer.received.find((m) => m?.type === 'reject')).toMatchObject({ code: 'bad_frame', reason: expect.stringMatching(problem) });
      expect(await pageCount(a, 'p')).toBe(0);
    }
    await stillLinked();

    // The same references used as meant: entry 7 defined in one frame, referred to in the next
    // (the name that follows a reference is read only for a literal or a definition).
    peer = await RawPeer.connect(a.privateUrl);
    await peer.join(CLUSTER_NAME, CLUSTER_SECRET);
    const own = replicaIdToBytes(peer.replica);
    peer.send(peer.sealer!.seal(handBuiltDelta(own, { upTo: 1, span: 1 }, { page: 'tabled', count: 3, back: 0, ref: PAGE_TABLE_ENTRIES + 1 + 7 })));
    peer.send(peer.sealer!.seal(handBuiltDelta(own, { upTo: 2, span: 1 }, { page: 'unread', count: 4, back: 0, ref: 1 + 7 })));
    await eventually(async () => expect(await pageCount(a, 'tabled')).toBe(4));
    expect(await pageCount(a, 'unread')).toBe(0);
    peer.close();

    // A frame of protocol version 1 (a node from before resets and authenticated sessions): answered
    // with a reject naming the version problem, before anything in it is read.
    peer = await RawPeer.connect(a.privateUrl);
    peer.send(Uint8Array.from([1, 0, 0, 0]));
    const closed = await closedWith(peer);
    expect(peer.received.find((m) => m?.type === 'reject')).toMatchObject({ code: 'protocol_version' });
    expect(closed.reason).toMatch(/protocol_version/);
    await stillLinked();

    // A text frame.
    peer = await RawPeer.connect(a.privateUrl);
    peer.send('{"type":"hello"}');
    expect((await closedWith(peer)).code).toBe(CLOSE_UNSUPPORTED_DATA);
    await stillLinked();

    // Each refusal was logged as a warning by the node, with its code.
    expect(logLines(a, { msg: 'closing peer connection', level: 'warn', code: 'bad_frame' }).length).toBeGreaterThanOrEqual(5);
    expect(logLines(a, { msg: 'closing peer connection', level: 'warn', code: 'protocol_version' })).toHaveLength(1);
    expect(logLines(a, { msg: 'closing peer connection: text frame', level: 'warn' })).toHaveLength(1);
    expect(logLines(a, { msg: 'closing peer connection: WebSocket protocol error', level: 'warn' })).toEqual([
      expect.objectContaining({ error: expect.stringMatching(/max payload/i) }),
    ]);
  });
});
