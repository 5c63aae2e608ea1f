/**
 * `SyncSource`, the rule of who gets this node's version vector while it catches up: one source
 * at a time, the others once we hold what they advertised, a failed source replaced within a
 * bound. Sessions are stand-ins (phase and peer are all it reads); the clock is virtual.
 */
import { describe, expect, it } from 'vitest';
import type { VersionVector } from '../../src/crdt/version-vector.js';
import type { ReplicaId } from '../../src/ids.js';
import { noLog } from '../../src/log.js';
import type { PeerSession } from '../../src/replication/peer-session.js';
import { CATCH_UP_BOUND_MS, MAX_SYNC_SOURCES, SOURCE_CHECK_MS, SOURCE_DEADLINE_MS, SOURCE_STALL_MS, SyncSource } from '../../src/replication/sync-source.js';
import { STARTUP_SYNC_TIMEOUT_MS } from '../../src/replication/catch-up.js';
import { VirtualTimers } from '../../src/virtual-timers.js';

const OWN = '00000000000000000000000000000000' as ReplicaId;
const R = 'ffffffffffffffffffffffffffffffff' as ReplicaId;

interface FakeSession {
  phase: 'open' | 'closed';
  readonly peer: { readonly replica: ReplicaId; readonly name: string };
}

/** `boundMs`: the whole catch-up's bound; the rule's other tests run it far out of their way. */
function harness(boundMs = 10 * SOURCE_DEADLINE_MS) {
  const timers = new VirtualTimers();
  const local = new Map<ReplicaId, number>();
  const sessions = new Map<ReplicaId, FakeSession>();
  const sentTo: string[] = [];
  let holdingUp = false;
  const source = new SyncSource({
    timers,
    random: () => 0,
    log: noLog,
    localVv: () => local,
    localReplica: () => OWN,
    openSessions: () => [...sessions.values()].filter((s) => s.phase === 'open') as unknown as PeerSession[],
    sessionOf: (replica) => sessions.get(replica) as unknown as PeerSession | undefined,
    sendVv: (session) => sentTo.push(session.peer!.name),
    holdingUp: () => holdingUp,
    boundMs,
  });
  let next = 1;
  const open = (name: string): PeerSession => {
    const replica = (next++).toString(16).padStart(32, '0') as ReplicaId;
    const session: FakeSession = { phase: 'open', peer: { replica, name } };
    sessions.set(replica, session);
    source.opened(session as unknown as PeerSession);
    return session as unknown as PeerSession;
  };
  const close = (session: PeerSession) => {
    (session as unknown as FakeSession).phase = 'closed';
    sessions.delete(session.peer!.replica);
    source.closed(session);
  };
  /** A second connection of the same peer wins the duplicate rule: registered first, then the loser closes, then it is greeted. */
  const duplicate = (loser: PeerSession): PeerSession => {
    const survivor: FakeSession = { phase: 'open', peer: loser.peer! };
    sessions.set(loser.peer!.replica, survivor);
    (loser as unknown as FakeSession).phase = 'closed';
    source.closed(loser);
    source.opened(survivor as unknown as PeerSession);
    return survivor as unknown as PeerSession;
  };
  const advance = (ms: number) => {
    const until = timers.now() + ms;
    while (timers.runDue(until));
  };
  return {
    source,
    local,
    sentTo,
    open,
    close,
    duplicate,
    advance,
    holdUp: (on: boolean) => (holdingUp = on),
    vv: (entries: Array<[ReplicaId, number]>): VersionVector => new Map(entries),
  };
}

describe('SyncSource: one copy on join', () => {
  it('sends the vector to the first session only; the others get it once the source is done and none is ahead', () => {
    const h = harness();
    const a = h.open('a');
    const b = h.open('b');
    const c = h.open('c');
    expect(h.sentTo).toEqual(['a']);
    expect(h.source.current).toBe(a.peer!.replica);
    h.source.vvReceived(b, h.vv([[R, 5]]));
    h.source.vvReceived(c, h.vv([[R, 5]]));
    h.source.vvReceived(a, h.vv([[R, 5]]));
    expect(h.sentTo).toEqual(['a']);
    // a's answer merged: we hold what every peer advertised.
    h.local.set(R, 5);
    h.source.roundMerged(a, true);
    expect(h.sentTo).toEqual(['a', 'b', 'c']);
    expect(h.source.catchingUp).toBe(false);
    // Caught up: a later session gets the vector at once.
    h.open('d');
    expect(h.sentTo).toEqual(['a', 'b', 'c', 'd']);
  });

  it('asks at once a waiting peer whose advertised vector it already holds', () => {
    const h = harness();
    h.open('a');
    const b = h.open('b');
    h.local.set(R, 3);
    h.source.vvReceived(b, h.vv([[R, 2], [OWN, 9]]));
    expect(h.sentTo).toEqual(['a', 'b']);
    expect(h.source.catchingUp).toBe(true);
  });

  it('after a source that lacked something, asks one peer still ahead, not all', () => {
    const h = harness();
    const a = h.open('a');
    const b = h.open('b');
    const c = h.open('c');
    h.source.vvReceived(a, h.vv([[R, 3]]));
    h.source.vvReceived(b, h.vv([[R, 7]]));
    h.source.vvReceived(c, h.vv([[R, 7]]));
    h.local.set(R, 3);
    h.source.roundMerged(a, true);
    expect(h.sentTo).toEqual(['a', 'b']);
    expect(h.source.current).toBe(b.peer!.replica);
    h.local.set(R, 7);
    h.source.roundMerged(b, true);
    expect(h.sentTo).toEqual(['a', 'b', 'c']);
    expect(h.source.catchingUp).toBe(false);
  });

  it('takes a whole round as done from a source that advertised no vector (it is catching up too)', () => {
    const h = harness();
    const a = h.open('a');
    h.open('b');
    h.source.roundMerged(a, true);
    expect(h.sentTo).toEqual(['a', 'b']);
  });

  it('takes a round whose ranges were not all justified for done at once, and asks the next peer still ahead (after a reset a vector names seqs no slot carries)', () => {
    const h = harness();
    const a = h.open('a');
    const b = h.open('b');
    h.source.vvReceived(a, h.vv([[R, 5]]));
    h.source.vvReceived(b, h.vv([[R, 5]]));
    h.source.answerArrived(a);
    h.source.roundMerged(a, false);
    // No stall to wait out: b, still ahead of us, is the next source.
    expect(h.sentTo).toEqual(['a', 'b']);
    expect(h.source.current).toBe(b.peer!.replica);
  });

  it('keeps a source that is slow only because this node holds it up (its socket paused, merges queued)', () => {
    const h = harness();
    const a = h.open('a');
    h.open('b');
    h.holdUp(true);
    h.advance(3 * SOURCE_STALL_MS);
    expect(h.source.current).toBe(a.peer!.replica);
    h.holdUp(false);
    h.advance(SOURCE_STALL_MS + 250);
    expect(h.source.current).not.toBe(a.peer!.replica);
  });

  it('replaces a source that trickles its answer once the deadline passed', () => {
    const h = harness();
    const a = h.open('a');
    h.open('b');
    for (let t = 1_000; t < SOURCE_DEADLINE_MS; t += 1_000) {
      h.source.answerArrived(a);
      h.advance(1_000);
    }
    expect(h.source.current).toBe(a.peer!.replica);
    h.source.answerArrived(a);
    h.advance(1_000);
    expect(h.source.current).not.toBe(a.peer!.replica);
  });

  it(`asks every peer once catching up has taken ${CATCH_UP_BOUND_MS} ms, however the source trickles (before the start-up gate opens)`, () => {
    const h = harness(CATCH_UP_BOUND_MS);
    const a = h.open('a');
    h.open('b');
    h.open('c');
    for (let t = 0; t < CATCH_UP_BOUND_MS - 500; t += 500) {
      h.source.answerArrived(a);
      h.advance(500);
    }
    expect(h.sentTo).toEqual(['a']);
    h.source.answerArrived(a);
    h.advance(500 + SOURCE_CHECK_MS);
    expect(h.sentTo).toEqual(['a', 'b', 'c']);
    expect(h.source.catchingUp).toBe(false);
    expect(CATCH_UP_BOUND_MS + SOURCE_CHECK_MS).toBeLessThan(STARTUP_SYNC_TIMEOUT_MS);
  });

  it(`asks every peer at once after ${MAX_SYNC_SOURCES} sources failed`, () => {
    const h = harness();
    const sessions = Array.from({ length: MAX_SYNC_SOURCES + 2 }, (_, i) => h.open(`p${i}`));
    for (const s of sessions) h.source.vvReceived(s, h.vv([[R, 5]]));
    for (let i = 0; i < MAX_SYNC_SOURCES; i++) {
      expect(h.source.catchingUp).toBe(true);
      h.advance(SOURCE_STALL_MS + 250);
    }
    expect(h.source.catchingUp).toBe(false);
    expect(new Set(h.sentTo)).toEqual(new Set(sessions.map((s) => s.peer!.name)));
  });

  it('replaces a source that closed at once, but keeps the same peer when its second connection survived the duplicate rule', () => {
    const h = harness();
    const a = h.open('a');
    const b = h.open('b');
    const survivor = h.duplicate(a);
    expect(h.source.current).toBe(a.peer!.replica);
    expect(h.sentTo).toEqual(['a', 'a']);
    // Now it closes for good: the next peer takes over.
    h.close(survivor);
    expect(h.source.current).toBe(b.peer!.replica);
    expect(h.sentTo).toEqual(['a', 'a', 'b']);
  });

  it('catches up again when its last session closed', () => {
    const h = harness();
    const a = h.open('a');
    h.source.roundMerged(a, true);
    expect(h.source.catchingUp).toBe(false);
    h.close(a);
    expect(h.source.catchingUp).toBe(true);
    h.open('b');
    h.open('c');
    expect(h.sentTo).toEqual(['a', 'b']);
  });
});
