import { describe, expect, it } from 'vitest';
import { ANNOUNCE_WINDOW_MS, BroadcastTree, MAX_IDLE_RELAYS_PER_SECOND, MAX_MISSING_PER_PEER } from '../../src/replication/broadcast-tree.js';
import { VirtualTimers } from '../../src/virtual-timers.js';
import type { PeerSession } from '../../src/replication/peer-session.js';
import type { PageName, ReplicaId } from '../../src/ids.js';
import { MAX_ANNOUNCED_RANGES, type Message } from '../../src/protocol/messages.js';
import { decodeFrame } from '../../src/protocol/codec.js';

type Delta = Extract<Message, { type: 'delta' }>;
const delta = (replica: string, after: number, count: number): Delta => ({
  type: 'delta',
  range: { replica: replica as ReplicaId, after, upTo: after + 1 },
  slots: [{ page: 'home' as PageName, count, seq: after + 1 }],
});

const session = (name: string) => ({ name, phase: 'open' }) as unknown as PeerSession;

describe('the broadcast tree', () => {
  it('a bogus copy under a genuine delta id does not make the genuine copy a duplicate: it is merged and passed on once', () => {
    const timers = new VirtualTimers();
    const relayed: string[] = [];
    const tree = new BroadcastTree({
      timers,
      send: () => {},
      sendDelta: (to) => relayed.push((to as unknown as { name: string }).name),
    });
    const [hostile, honest, next] = [session('hostile'), session('honest'), session('next')];
    for (const s of [hostile, honest, next]) tree.opened(s);
    const forged = delta('b'.repeat(32), 4, 1);
    const genuine = delta('b'.repeat(32), 4, 9);
    expect(tree.received(hostile, forged)).toBe(true);
    expect(tree.received(honest, genuine)).toBe(true); // merged (was dropped as a duplicate)
    expect(relayed.filter((to) => to === 'next')).toHaveLength(2); // both copies reach the rest of the tree
    // Copies byte for byte equal to one taken are duplicates, from anyone, and not passed on again.
    expect(tree.received(next, genuine)).toBe(false);
    expect(tree.received(honest, forged)).toBe(false);
    expect(relayed.filter((to) => to === 'next')).toHaveLength(2);
    expect(tree.counts).toMatchObject({ received: 1, otherCopies: 1, duplicates: 2 });
  });

  it('a delta this node broadcast, sent back to it, is a duplicate', () => {
    const timers = new VirtualTimers();
    let relayed = 0;
    const tree = new BroadcastTree({ timers, send: () => {}, sendDelta: () => { relayed += 1; } });
    const peer = session('peer');
    tree.opened(peer);
    const own = delta('a'.repeat(32), 0, 1);
    tree.broadcast(own);
    expect(relayed).toBe(1);
    expect(tree.received(peer, own)).toBe(false);
    expect(relayed).toBe(1);
  });
});

describe('the broadcast tree passes on only news (review h18 #7, r18c #1)', () => {
  const replica = 'b'.repeat(32);
  /** A tree over a one-replica model of the store: its vector entry and held `home` count, merged as Replicator.apply does. */
  function tree(heldUpTo: number, heldCount = 0) {
    const relayed: Array<{ to: string; delta: Delta }> = [];
    const held = { upTo: heldUpTo, count: heldCount };
    const timers = new VirtualTimers();
    const built = new BroadcastTree({
      timers,
      send: () => {},
      sendDelta: (to, frame) => relayed.push({ to: (to as unknown as { name: string }).name, delta: decodeFrame(frame) as Delta }),
      heldUpTo: (r) => (r === replica ? held.upTo : 0),
      raisesHeld: (m) => m.slots.some((slot) => slot.count > held.count),
    });
    const [hostile, honest, next] = [session('hostile'), session('honest'), session('next')];
    for (const s of [hostile, honest, next]) built.opened(s);
    const take = (from: PeerSession, m: Delta): boolean => {
      if (!built.received(from, m)) return false;
      if (m.range.after <= held.upTo) held.upTo = Math.max(held.upTo, m.range.upTo);
      held.count = Math.max(held.count, ...m.slots.map((slot) => slot.count));
      return true;
    };
    const to = (name: string) => relayed.filter((r) => r.to === name).map((r) => r.delta);
    return { tree: built, timers, take, to, hostile, honest };
  }
  const ranged = (after: number, upTo: number, count: number): Delta => ({ type: 'delta', range: { replica: replica as ReplicaId, after, upTo }, slots: [{ page: 'home' as PageName, count, seq: upTo }] });

  it('justified deltas under unseen ids inside the vector, raising nothing, are relayed only within the sender budget per second', () => {
    const { tree: t, timers, take, to, hostile } = tree(10_000, 1);
    // Ids nobody saw, each justified by its slot, all inside what this node holds, none raising `home`.
    const flood = (from: number) => { for (let k = from; k < from + MAX_IDLE_RELAYS_PER_SECOND + 50; k++) expect(take(hostile, ranged(k, 10_000, 1))).toBe(true); };
    flood(0);
    expect(to('next')).toHaveLength(MAX_IDLE_RELAYS_PER_SECOND);
    expect(t.counts.notRelayed).toBe(50);
    // The next second brings a new budget, no more.
    timers.runDue(1_000);
    flood(1_000);
    expect(to('next')).toHaveLength(2 * MAX_IDLE_RELAYS_PER_SECOND);
    // A delta reaching past the vector is news: passed on, budget or not.
    expect(take(hostile, ranged(10_000, 10_001, 5))).toBe(true);
    expect(to('next')).toHaveLength(2 * MAX_IDLE_RELAYS_PER_SECOND + 1);
  });

  it('r18c #1: the genuine delta after a forged copy under a covering id (lower after, lowered count) still goes on, with no budget left', () => {
    const { take, to, hostile, honest } = tree(100, 1);
    // The honest sender's budget for copies raising nothing is spent (copies the tree brings after anti-entropy).
    for (let k = 0; k < MAX_IDLE_RELAYS_PER_SECOND; k++) expect(take(honest, ranged(k, 100, 1))).toBe(true);
    const before = to('next').length;
    expect(before).toBe(MAX_IDLE_RELAYS_PER_SECOND);
    take(hostile, ranged(0, 101, 1)); // forged R/0/101: lowered count, justified by its slot at seq 101, news by range
    take(honest, ranged(100, 101, 9)); // genuine R/100/101: inside the vector now, but it raises `home`
    expect(to('next').slice(before).map((d) => d.slots[0]!.count)).toEqual([1, 9]);
  });
});

describe('the broadcast tree: announcements waited for', () => {
  it('one peer announcing bogus ranges fills only its own share: an honest announcer is still grafted', () => {
    const timers = new VirtualTimers();
    const grafts: string[] = [];
    const tree = new BroadcastTree({
      timers,
      send: (to, message) => { if (message.type === 'graft') grafts.push((to as unknown as { name: string }).name); },
      sendDelta: () => {},
    });
    const [hostile, honest] = [session('hostile'), session('honest')];
    tree.opened(hostile);
    tree.opened(honest);
    const range = (replica: string, i: number) => ({ replica: replica as ReplicaId, after: i, upTo: i + 1 });
    for (let f = 0; f < 4_096 / 256; f++) tree.announced(hostile, Array.from({ length: 256 }, (_, i) => range('b'.repeat(32), f * 256 + i)));
    tree.announced(honest, [range('c'.repeat(32), 0)]);
    for (let t = 1; t <= 10; t++) timers.runDue(t * 100);
    expect(grafts.filter((to) => to === 'honest')).toHaveLength(1);
    expect(grafts.filter((to) => to === 'hostile')).toHaveLength(MAX_MISSING_PER_PEER);
  });
});

describe('announcements to lazy sessions are batched (issue 18: a burst costs a lazy link one frame per window)', () => {
  function lazyTree() {
    const timers = new VirtualTimers();
    const sent: Array<{ to: string; message: Message }> = [];
    const tree = new BroadcastTree({
      timers,
      send: (to, message) => sent.push({ to: (to as unknown as { name: string }).name, message }),
      sendDelta: () => {},
    });
    // Past MIN_EAGER eager links a duplicate prunes its sender: `lazy` becomes a lazy link.
    const eager = ['e1', 'e2', 'e3', 'e4'].map(session);
    const lazy = session('lazy');
    for (const s of [...eager, lazy]) tree.opened(s);
    const first = delta('c'.repeat(32), 0, 1);
    tree.received(eager[0]!, first);
    expect(tree.received(lazy, first)).toBe(false);
    expect(sent.map((s) => s.message.type)).toEqual(['prune']);
    sent.length = 0;
    return { timers, sent, tree, lazy };
  }
  const advance = (timers: VirtualTimers, ms: number) => {
    const until = timers.now() + ms;
    while (timers.runDue(until));
  };
  const ihaves = (sent: Array<{ to: string; message: Message }>) =>
    sent.filter((s) => s.message.type === 'ihave').map((s) => (s.message as Extract<Message, { type: 'ihave' }>).ranges.length);

  it('a burst of deltas goes to a lazy session as one ihave after ANNOUNCE_WINDOW_MS, each range once', () => {
    const { timers, sent, tree } = lazyTree();
    for (let i = 0; i < 10; i++) tree.broadcast(delta('a'.repeat(32), i, 1));
    tree.broadcast(delta('a'.repeat(32), 9, 1)); // the same range again (another copy): announced once
    expect(ihaves(sent)).toEqual([]);
    advance(timers, ANNOUNCE_WINDOW_MS);
    expect(ihaves(sent)).toEqual([10]);
    advance(timers, 10 * ANNOUNCE_WINDOW_MS);
    expect(ihaves(sent)).toEqual([10]);
  });

  it('a full batch (MAX_ANNOUNCED_RANGES) goes at once, the rest with the window', () => {
    const { timers, sent, tree } = lazyTree();
    for (let i = 0; i < MAX_ANNOUNCED_RANGES + 3; i++) tree.broadcast(delta('a'.repeat(32), i, 1));
    expect(ihaves(sent)).toEqual([MAX_ANNOUNCED_RANGES]);
    advance(timers, ANNOUNCE_WINDOW_MS);
    expect(ihaves(sent)).toEqual([MAX_ANNOUNCED_RANGES, 3]);
  });

  it('a session closed within the window is sent nothing, and stop() clears the window', () => {
    const { timers, sent, tree, lazy } = lazyTree();
    tree.broadcast(delta('a'.repeat(32), 0, 1));
    tree.closed(lazy);
    advance(timers, ANNOUNCE_WINDOW_MS);
    expect(ihaves(sent)).toEqual([]);
    tree.opened(lazy);
    tree.pruned(lazy);
    tree.broadcast(delta('a'.repeat(32), 1, 1));
    tree.stop();
    expect(timers.pending()).toBe(0);
  });
});
