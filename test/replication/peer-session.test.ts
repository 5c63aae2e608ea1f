/**
 * `PeerSession.receive`: the one door for a peer's frames. Two sessions are wired back to back
 * through recording connections, so every frame one sends is a frame the other receives.
 */
import { describe, expect, it } from 'vitest';
import type { PageName, ReplicaId } from '../../src/ids.js';
import { decodeFrame, encodeMessage } from '../../src/protocol/codec.js';
import { PROTOCOL_VERSION, type Message } from '../../src/protocol/messages.js';
import { noMetrics } from '../../src/replication/replication-metrics.js';
import { PeerSession, type SessionContext, type SessionEvent } from '../../src/replication/peer-session.js';
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
  /** The messages sent since the last call. */
  take(): Message[] {
    return this.sent.splice(0).map((frame) => decodeFrame(frame));
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
  expect(deliver(a.connection, b.session)).toEqual([{ kind: 'none' }]);
  expect(deliver(b.connection, a.session)).toEqual([{ kind: 'none' }, { kind: 'open' }]);
  expect(deliver(a.connection, b.session)).toEqual([{ kind: 'open' }]);
  return { a, b };
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
    expect(pair.a.session.receive(encodeMessage({ type: 'ping', id: 8 }), 1)).toEqual({ kind: 'none' });
    expect(pair.a.connection.take()).toEqual([{ type: 'pong', id: 8 }]);
  });

  it('refuses an undecodable frame with a reason, closes, and ignores what follows', () => {
    const { a } = openPair();
    const event = a.session.receive(Uint8Array.from([PROTOCOL_VERSION, 200, 3]), 1);
    expect(event).toMatchObject({ kind: 'closed', by: 'us', code: 'bad_frame', inHandshake: false });
    expect(a.connection.take()).toEqual([expect.objectContaining({ type: 'reject', code: 'bad_frame' })]);
    expect(a.connection.closed).toBe(true);
    expect(a.session.receive(encodeMessage({ type: 'vv', vv: new Map() }), 2)).toEqual({ kind: 'none' });
  });

  it('refuses another protocol version, another cluster, itself and data before the handshake', () => {
    const cases: Array<[frame: Uint8Array, code: string, reason: RegExp]> = [
      [Uint8Array.from([1, 0, 0, 0]), 'protocol_version', /this node speaks protocol version 2, the peer version 1/],
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
    const events = deliver(b.connection, a.session);
    expect(events.at(-1)).toMatchObject({ kind: 'closed', by: 'us', code: 'auth', reason: expect.stringMatching(/CLUSTER_SECRET/) });
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
    const { a } = openPair();
    const slot = { page: page('p'), replica: B, count: 3, seq: 2 };
    expect(a.session.receive(encodeMessage({ type: 'vv', vv: new Map([[B, 1]]) }), 1)).toEqual({ kind: 'vv', vv: new Map([[B, 1]]) });
    expect(a.session.receive(encodeMessage({ type: 'slots', round: 1, index: 1, slots: [slot] }), 1)).toEqual({ kind: 'slots', slots: [slot] });
    const ranges = [{ replica: B, after: 1, upTo: 2 }];
    // Chunk 0 of 2 never came: the end of the round claims nothing.
    expect(a.session.receive(encodeMessage({ type: 'covered', round: 1, chunks: 2, ranges }), 1)).toEqual({ kind: 'none' });
    a.session.receive(encodeMessage({ type: 'slots', round: 2, index: 0, slots: [slot] }), 1);
    expect(a.session.receive(encodeMessage({ type: 'covered', round: 2, chunks: 1, ranges }), 1)).toEqual({ kind: 'covered', ranges });
    expect(a.session.receive(encodeMessage({ type: 'delta', range: { replica: B, after: 2, upTo: 3 }, slots: [{ page: page('p'), count: 4, seq: 3 }] }), 1)).toEqual({
      kind: 'delta',
      ranges: [{ replica: B, after: 2, upTo: 3 }],
      slots: [{ page: page('p'), replica: B, count: 4, seq: 3 }],
    });
    // What the peer holds moved on with what it sent.
    expect(a.session.peerVv?.get(B)).toBe(3);
  });

  it('lets a claim of coverage move nothing its slots do not justify', () => {
    const { a } = openPair();
    const C = 'cccccccccccccccccccccccccccccccc' as ReplicaId;
    // An empty delta "covering" (0, 2^48] of another replica: merged (nothing), advancing nothing.
    expect(a.session.receive(encodeMessage({ type: 'delta', range: { replica: C, after: 0, upTo: 2 ** 48 }, slots: [] }), 1)).toEqual({ kind: 'delta', ranges: [], slots: [] });
    // A delta whose slots stop short of its end.
    const short = a.session.receive(encodeMessage({ type: 'delta', range: { replica: C, after: 0, upTo: 9 }, slots: [{ page: page('p'), count: 1, seq: 4 }] }), 1);
    expect(short).toMatchObject({ kind: 'delta', ranges: [] });
    // A round whose chunk holds C only up to seq 5 justifies C's range up to 5, not a fake replica's.
    const D = 'dddddddddddddddddddddddddddddddd' as ReplicaId;
    a.session.receive(encodeMessage({ type: 'slots', round: 7, index: 0, slots: [{ page: page('p'), replica: C, count: 2, seq: 5 }] }), 1);
    const covered = a.session.receive(
      encodeMessage({ type: 'covered', round: 7, chunks: 1, ranges: [{ replica: C, after: 0, upTo: 5 }, { replica: D, after: 0, upTo: 1_000 }] }),
      1,
    );
    expect(covered).toEqual({ kind: 'covered', ranges: [{ replica: C, after: 0, upTo: 5 }] });
    // Seqs near 2^53 are refused outright.
    expect(a.session.receive(encodeMessage({ type: 'vv', vv: new Map([[C, 2 ** 53 - 1]]) }), 1)).toMatchObject({ kind: 'closed', code: 'bad_frame' });
  });

  it('drops the slots of replicas the peer may not introduce, and their coverage with them', () => {
    const C = 'cccccccccccccccccccccccccccccccc' as ReplicaId;
    const { a } = openPair({ admitReplica: (replica) => replica !== C });
    const slots = [
      { page: page('p'), replica: B, count: 1, seq: 1 },
      { page: page('p'), replica: C, count: 1, seq: 1 },
    ];
    expect(a.session.receive(encodeMessage({ type: 'slots', round: 1, index: 0, slots }), 1)).toEqual({ kind: 'slots', slots: [slots[0]] });
    const ranges = [{ replica: B, after: 0, upTo: 1 }, { replica: C, after: 0, upTo: 1 }];
    expect(a.session.receive(encodeMessage({ type: 'covered', round: 1, chunks: 1, ranges }), 1)).toEqual({ kind: 'covered', ranges: [ranges[0]] });
  });

  it('refuses a second handshake after open', () => {
    const { a } = openPair();
    expect(a.session.receive(encodeMessage({ type: 'auth', proof: new Uint8Array(32) }), 1)).toMatchObject({
      kind: 'closed',
      code: 'bad_frame',
      reason: '"auth" after the handshake',
      inHandshake: false,
    });
  });
});
