/**
 * `SessionTable.heartbeat`: a silent peer is closed, but not one whose socket this node paused
 * itself (merge backpressure). One real session pair, wired through recording connections, on a
 * hand-moved clock.
 */
import { describe, expect, it } from 'vitest';
import type { ReplicaId } from '../../src/ids.js';
import { noLog } from '../../src/log.js';
import { noMetrics } from '../../src/replication/replication-metrics.js';
import { PeerSession, type SessionContext } from '../../src/replication/peer-session.js';
import { SessionTable } from '../../src/replication/session-table.js';
import type { Timers } from '../../src/timers.js';
import type { Connection, ConnectionHandlers } from '../../src/transport/transport.js';

const A = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' as ReplicaId;
const B = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' as ReplicaId;
const TIMEOUT_MS = 5_000;

class RecordingConnection implements Connection {
  readonly sent: Uint8Array[] = [];
  closedWith: string | undefined;
  handlers: ConnectionHandlers | undefined;
  readonly remoteAddress = 'peer:1';
  constructor(
    readonly id: string,
    readonly direction: 'inbound' | 'outbound',
  ) {}
  attach(handlers: ConnectionHandlers): void {
    this.handlers = handlers;
  }
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
}

function context(replica: ReplicaId): SessionContext {
  let next = replica === A ? 1 : 101;
  return {
    cluster: 'test',
    secret: 'secret',
    replicaId: () => replica,
    nodeName: `node-${replica[0]}`,
    randomBytes: (n) => Uint8Array.from({ length: n }, () => next++ & 0xff),
    metrics: noMetrics,
    admitReplica: () => true,
  };
}

/** B's table with one open session, accepted from A (a hand-driven PeerSession). */
function openSession() {
  const clock = { now: 0 };
  const timers: Timers = { now: () => clock.now, setTimeout: () => 0 as never, clearTimeout: () => {}, yield: () => Promise.resolve(), wallTime: (t) => t };
  let opened: PeerSession | undefined;
  const table = new SessionTable({
    context: context(B),
    timers,
    log: noLog,
    metrics: noMetrics,
    directory: { sessionStarted() {}, identified() {}, sessionOpened() {}, sessionClosed() {}, uncovered() {} },
    onOpen: (session) => (opened = session),
    onMessage: () => {},
    onClose: () => {},
  });
  const inbound = new RecordingConnection('in', 'inbound');
  table.attach(inbound, undefined);
  const dialler = new RecordingConnection('out', 'outbound');
  const peer = new PeerSession(dialler, context(A), 0);
  peer.send(peer.hello());
  for (let round = 0; round < 4 && opened === undefined; round++) {
    for (const frame of dialler.sent.splice(0)) inbound.handlers!.message(frame);
    for (const frame of inbound.sent.splice(0)) peer.receive(frame, clock.now);
  }
  expect(opened?.phase).toBe('open');
  return { table, clock, session: opened!, inbound };
}

describe('SessionTable.heartbeat', () => {
  it('closes a session silent for longer than the timeout', () => {
    const { table, clock, inbound } = openSession();
    clock.now = TIMEOUT_MS - 1;
    table.heartbeat(TIMEOUT_MS);
    expect(inbound.closedWith).toBeUndefined();
    clock.now = TIMEOUT_MS + 1;
    table.heartbeat(TIMEOUT_MS);
    expect(inbound.closedWith).toMatch(/heartbeat timeout/);
  });

  it('does not count the time a session was paused by the merge queue; its silence counts again from the last tick while paused', () => {
    const { table, clock, session, inbound } = openSession();
    session.pause();
    for (clock.now = 1_000; clock.now <= 60_000; clock.now += 1_000) table.heartbeat(TIMEOUT_MS);
    expect(inbound.closedWith).toBeUndefined();
    clock.now = 60_000;
    session.resume();
    clock.now = 60_000 + TIMEOUT_MS - 1;
    table.heartbeat(TIMEOUT_MS);
    expect(inbound.closedWith).toBeUndefined();
    clock.now = 60_000 + TIMEOUT_MS + 1;
    table.heartbeat(TIMEOUT_MS);
    expect(inbound.closedWith).toMatch(/heartbeat timeout/);
  });
});
