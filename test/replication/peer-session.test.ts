/**
 * `PeerSession.receive`: the one door for a peer's frames. Two sessions are wired back to back
 * through recording connections, so every frame one sends is a frame the other receives.
 */
import { describe, expect, it } from 'vitest';
import type { PageName, ReplicaId } from '../../src/ids.js';
import { decodeFrame, encodeMessage } from '../../src/protocol/codec.js';
import { PROTOCOL_VERSION, type Message } from '../../src/protocol/messages.js';
import { MAC_BYTES } from '../../src/protocol/session-mac.js';
import { noMetrics } from '../../src/replication/replication-metrics.js';
import { PeerSession, type SessionContext, type SessionEvent, VV_CHUNK_ENTRIES } from '../../src/replication/peer-session.js';
import type { Connection, ConnectionHandlers } from '../../src/transport/transport.js';

const A = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' as ReplicaId;
const B = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' as ReplicaId;
const page = (name: string) => name as PageName;

/** A connection that records what is sent on it and whether it was closed. */
class RecordingConnection implements Connection {
  readonly sent: Uint8Array[] = [];
  closedWith: string | undefined;
  constructor(
    readonly id: string,
    readonly direction: 'inbound' | 'outbound',
  ) {}
  readonly remoteAddress = 'peer:1';
  attach(_handlers: ConnectionHandlers): void {}
  send(frame: Uint8Array): void {
    if (this.closedWith === undefined) this.sent.push(frame);
  }
  bufferedBytes(): number {
    return 0;
  }
  close(reason: string): void {
    this.closedWith ??= reason;
  }
  get closed(): boolean {
    return this.closedWith !== undefined;
  }
  /** The messages sent since the last call (a sealed frame read without its MAC). */
  take(): Message[] {
    return this.sent.splice(0).map((frame) => {
      try {
        return decodeFrame(frame);
      } catch {
        return decodeFrame(frame.subarray(0, frame.byteLength - MAC_BYTES));
      }
    });
  }
}

function context(replica: ReplicaId, overrides: Partial<SessionContext> = {}): SessionContext {
  let next = replica === A ? 1 : 101;
  return {
    cluster: 'test',
    secret: 'secret',
    replicaId: () => replica,
    nodeName: `node-${replica[0]}`,
    randomBytes: (n) => Uint8Array.from({ length: n }, () => next++ & 0xff),
    metrics: noMetrics,
    admitReplica: () => true,
    ...overrides,
  };
}

function session(replica: ReplicaId, overrides: Partial<SessionContext> = {}): { session: PeerSession; connection: RecordingConnection } {
  const connection = new RecordingConnection(`c-${replica[0]}`, replica === A ? 'outbound' : 'inbound');
  const peerSession = new PeerSession(connection, context(replica, overrides), 0);
  peerSession.send(peerSession.hello());
  return { session: peerSession, connection };
}

/** Delivers what `from` sent to `to`, returning the events `to` produced. */
function deliver(from: RecordingConnection, to: PeerSession): SessionEvent[] {
  return from.sent.splice(0).map((frame) => to.receive(frame, 1));
}

/** Two sessions through their handshake. */
function openPair(overrides: Partial<SessionContext> = {}) {
  const a = session(A, overrides);
  const b = session(B);
  // a dials: hellos both ways, a proves first, b proves only once a's proof verified.
  expect(deliver(a.connection, b.session)).toEqual([{ kind: 'none' }]);
  expect(deliver(b.connection, a.session)).toEqual([{ kind: 'none' }]);
  expect(deliver(a.connection, b.session)).toEqual([{ kind: 'open' }]);
  expect(deliver(b.connection, a.session)).toEqual([{ kind: 'open' }]);
  /** What a makes of `message` sent by b (sealed with b's session key). */
  const fromB = (message: Message): SessionEvent => {
    b.session.send(message);
    const events = deliver(b.connection, a.session);
    expect(events).toHaveLength(1);
    return events[0]!;
  };
  return { a, b, fromB };
}

describe('PeerSession.receive', () => {
  it('runs the handshake both ways and opens with the peer identified', () => {
    const { a, b } = openPair();
    expect(a.session.phase).toBe('open');
    expect(b.session.phase).toBe('open');
    expect(a.session.peer).toMatchObject({ replica: B, name: 'node-b' });
    expect(b.session.peer).toMatchObject({ replica: A, name: 'node-a' });
  });

  it('answers a ping itself, in either phase, and leaves nothing to do', () => {
    const a = session(A);
    a.connection.take();
    expect(a.session.receive(encodeMessage({ type: 'ping', id: 7 }), 1)).toEqual({ kind: 'none' });
    expect(a.connection.take()).toEqual([{ type: 'pong', id: 7 }]);

    const pair = openPair();
    expect(pair.fromB({ type: 'ping', id: 8 })).toEqual({ kind: 'none' });
    expect(pair.a.connection.take()).toEqual([{ type: 'pong', id: 8 }]);
  });

  it('refuses an undecodable frame with a reason, closes, and ignores what follows', () => {
    const { a, fromB } = openPair();
    const event = a.session.receive(Uint8Array.from([PROTOCOL_VERSION, 200, 3]), 1);
    expect(event).toMatchObject({ kind: 'closed', by: 'us', code: 'bad_frame', inHandshake: false });
    expect(a.connection.take()).toEqual([expect.objectContaining({ type: 'reject', code: 'bad_frame' })]);
    expect(a.connection.closed).toBe(true);
    expect(fromB({ type: 'vv', vv: new Map() })).toEqual({ kind: 'none' });
  });

  it('refuses another protocol version, another cluster, itself and data before the handshake', () => {
    const cases: Array<[frame: Uint8Array, code: string, reason: RegExp]> = [
      [Uint8Array.from([1, 0, 0, 0]), 'protocol_version', new RegExp(`this node speaks protocol version ${PROTOCOL_VERSION}, the peer version 1`)],
      [encodeMessage({ type: 'hello', cluster: 'other', replica: B, node: 'b', nonce: new Uint8Array(16) }), 'cluster', /cluster "test", not "other"/],
      [encodeMessage({ type: 'hello', cluster: 'test', replica: A, node: 'a', nonce: new Uint8Array(16) }), 'self', /itself/],
      [encodeMessage({ type: 'vv', vv: new Map() }), 'bad_frame', /before the handshake finished/],
    ];
    for (const [frame, code, reason] of cases) {
      const a = session(A);
      expect(a.session.receive(frame, 1)).toMatchObject({ kind: 'closed', by: 'us', code, reason: expect.stringMatching(reason), inHandshake: true });
      expect(a.session.ending).toMatchObject({ by: 'us', code });
      expect(a.connection.closed).toBe(true);
    }
  });

  it('refuses a wrong secret at auth', () => {
    const a = session(A);
    const b = session(B, { secret: 'other' });
    deliver(a.connection, b.session);
    deliver(b.connection, a.session);
    // a dialled, so a proved first; b refuses that proof and never sends one of its own.
    const events = deliver(a.connection, b.session);
    expect(events.at(-1)).toMatchObject({ kind: 'closed', by: 'us', code: 'auth', reason: expect.stringMatching(/CLUSTER_SECRET/) });
    expect(b.connection.take().map((m) => m.type)).toEqual(['reject']);
  });

  it('closes on a reject from the peer, recording that the peer ended it', () => {
    const a = session(A);
    expect(a.session.receive(encodeMessage({ type: 'reject', code: 'duplicate', reason: 'already connected' }), 1)).toEqual({
      kind: 'closed',
      by: 'peer',
      code: 'duplicate',
      reason: 'already connected',
      inHandshake: true,
    });
    expect(a.connection.closedWith).toBe('refused by peer (duplicate): already connected');
  });

  it('turns data into events, and lets a round cover its ranges only once every chunk arrived', () => {
    const { a, fromB } = openPair();
    const slot = { page: page('p'), replica: B, count: 3, seq: 2 };
    expect(fromB({ type: 'vv', vv: new Map([[B, 1]]) })).toEqual({ kind: 'vv', vv: new Map([[B, 1]]) });
    expect(fromB({ type: 'slots', round: 1, index: 1, slots: [slot] })).toEqual({ kind: 'slots', slots: [slot] });
    const ranges = [{ replica: B, after: 1, upTo: 2 }];
    // Chunk 0 of 2 never came: the end of the round claims nothing.
    expect(fromB({ type: 'covered', round: 1, chunks: 2, ranges })).toEqual({ kind: 'none' });
    fromB({ type: 'slots', round: 2, index: 0, slots: [slot] });
    expect(fromB({ type: 'covered', round: 2, chunks: 1, ranges })).toEqual({ kind: 'covered', ranges });
    const delta = { type: 'delta', range: { replica: B, after: 2, upTo: 3 }, slots: [{ page: page('p'), count: 4, seq: 3 }] } as const;
    // Justified, every slot admitted: passed on as it came (the broadcast tree's relay).
    expect(fromB(delta)).toEqual({
      kind: 'delta',
      ranges: [{ replica: B, after: 2, upTo: 3 }],
      slots: [{ page: page('p'), replica: B, count: 4, seq: 3 }],
      relay: delta,
    });
    // What the peer holds moved on with what it sent.
    expect(a.session.peerVv?.get(B)).toBe(3);
  });

  it('lets a claim of coverage move nothing its slots do not justify', () => {
    const { fromB } = openPair();
    const C = 'cccccccccccccccccccccccccccccccc' as ReplicaId;
    // An empty delta "covering" (0, 2^48] of another replica: merged (nothing), advancing nothing.
    expect(fromB({ type: 'delta', range: { replica: C, after: 0, upTo: 2 ** 48 }, slots: [] })).toEqual({ kind: 'delta', ranges: [], slots: [] });
    // A delta whose slots stop short of its end.
    const short = fromB({ type: 'delta', range: { replica: C, after: 0, upTo: 9 }, slots: [{ page: page('p'), count: 1, seq: 4 }] });
    expect(short).toMatchObject({ kind: 'delta', ranges: [] });
    // A round whose chunk holds C only up to seq 5 justifies C's range up to 5, not a fake replica's.
    const D = 'dddddddddddddddddddddddddddddddd' as ReplicaId;
    fromB({ type: 'slots', round: 7, index: 0, slots: [{ page: page('p'), replica: C, count: 2, seq: 5 }] });
    const covered = fromB({ type: 'covered', round: 7, chunks: 1, ranges: [{ replica: C, after: 0, upTo: 5 }, { replica: D, after: 0, upTo: 1_000 }] });
    expect(covered).toEqual({ kind: 'covered', ranges: [{ replica: C, after: 0, upTo: 5 }] });
    // Seqs near 2^53 are refused outright.
    expect(fromB({ type: 'vv', vv: new Map([[C, 2 ** 53 - 1]]) })).toMatchObject({ kind: 'closed', code: 'bad_frame' });
  });

  it('drops the slots of replicas the peer may not introduce, and their coverage with them', () => {
    const C = 'cccccccccccccccccccccccccccccccc' as ReplicaId;
    const { fromB } = openPair({ admitReplica: (replica) => replica !== C });
    const slots = [
      { page: page('p'), replica: B, count: 1, seq: 1 },
      { page: page('p'), replica: C, count: 1, seq: 1 },
    ];
    expect(fromB({ type: 'slots', round: 1, index: 0, slots })).toEqual({ kind: 'slots', slots: [slots[0]] });
    const ranges = [{ replica: B, after: 0, upTo: 1 }, { replica: C, after: 0, upTo: 1 }];
    expect(fromB({ type: 'covered', round: 1, chunks: 1, ranges })).toEqual({ kind: 'covered', ranges: [ranges[0]] });
  });

  it('refuses a forged, a replayed and a reordered frame after the handshake', () => {
    for (const attack of ['forged', 'replayed', 'reordered'] as const) {
      const { a, b } = openPair();
      b.session.send({ type: 'ping', id: 1 });
      b.session.send({ type: 'ping', id: 2 });
      const [first, second] = b.connection.sent.splice(0) as [Uint8Array, Uint8Array];
      let frames: Uint8Array[];
      if (attack === 'forged') {
        const flipped = first.slice();
        flipped[1]! ^= 1;
        frames = [flipped];
      } else if (attack === 'replayed') {
        frames = [first, first];
      } else {
        frames = [second, first];
      }
      const events = frames.map((frame) => a.session.receive(frame, 1));
      expect([attack, events.find((e) => e.kind !== "none")]).toMatchObject([attack, { kind: "closed", code: "bad_frame", reason: expect.stringMatching(/does not verify/) }]);
      // An unsealed frame after the handshake is refused the same way.
      const plain = openPair();
      expect(plain.a.session.receive(encodeMessage({ type: 'ping', id: 3 }), 1)).toMatchObject({ kind: 'closed', code: 'bad_frame' });
    }
  });

  it('sends a vector too big for one frame in parts, and reads it back whole', () => {
    const { a, b } = openPair();
    const vv = new Map(Array.from({ length: 70_000 }, (_, i) => [i.toString(16).padStart(32, '0') as ReplicaId, i + 1]));
    b.session.sendVv(vv);
    const parts = Math.ceil(vv.size / VV_CHUNK_ENTRIES);
    expect(b.connection.sent).toHaveLength(parts);
    const events = deliver(b.connection, a.session);
    expect(events.slice(0, parts - 1)).toEqual(Array.from({ length: parts - 1 }, () => ({ kind: 'none' })));
    expect(events[parts - 1]).toEqual({ kind: 'vv', vv });
  });

  it('refuses a second handshake after open', () => {
    const { fromB } = openPair();
    expect(fromB({ type: 'auth', proof: new Uint8Array(32) })).toMatchObject({
      kind: 'closed',
      code: 'bad_frame',
      reason: '"auth" after the handshake',
      inHandshake: false,
    });
  });
});

describe('PeerSession.sendDelta', () => {
  it('each session keeps its own page tables: two links carrying 3,000 deltas over 2,000 pages each read every page right', () => {
    const links = [openPair(), openPair()];
    let seed = 7;
    const next = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    let upTo = 0;
    for (let i = 0; i < 3_000; i++) {
      upTo += 1;
      // Each link its own pages in its own order, past the 1,024 entries of a table.
      for (const [l, link] of links.entries()) {
        const names = [`/l${l}/${next(2_000)}`, `/l${l}/${next(2_000)}`];
        const message: Extract<Message, { type: 'delta' }> = { type: 'delta', range: { replica: A, after: upTo - 1, upTo }, slots: names.map((name) => ({ page: page(name), count: upTo, seq: upTo })) };
        link.a.session.sendDelta(message);
        const [event] = deliver(link.a.connection, link.b.session);
        expect(event).toMatchObject({ kind: 'delta', ranges: [{ replica: A, after: upTo - 1, upTo }] });
        expect((event as Extract<SessionEvent, { kind: 'delta' }>).slots.map((slot) => slot.page)).toEqual(names);
      }
    }
    for (const link of links) expect([link.a.session.phase, link.b.session.phase]).toEqual(['open', 'open']);
  });
});
