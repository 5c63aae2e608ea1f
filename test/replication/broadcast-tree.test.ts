import { describe, expect, it } from 'vitest';
import { BroadcastTree, MAX_MISSING_PER_PEER } from '../../src/replication/broadcast-tree.js';
import { VirtualTimers } from '../../src/virtual-timers.js';
import type { PeerSession } from '../../src/replication/peer-session.js';
import type { PageName, ReplicaId } from '../../src/ids.js';
import type { Message } from '../../src/protocol/messages.js';
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

describe('the broadcast tree passes on only news (review h18 #7)', () => {
  const replica = 'b'.repeat(32);
  function tree(heldUpTo: number) {
    const relayed: Delta[] = [];
    const decode = (frame: Uint8Array) => decodeFrame(frame) as Delta;
    const built = new BroadcastTree({
      timers: new VirtualTimers(),
      send: () => {},
      sendDelta: (_to, frame) => relayed.push(decode(frame)),
      heldUpTo: (r) => (r === replica ? heldUpTo : 0),
    });
    const [hostile, next] = [session('hostile'), session('next')];
    built.opened(hostile);
    built.opened(next);
    return { tree: built, relayed, hostile };
  }

  it('a justified delta under an unseen id whose range the vector covers is merged but not relayed', () => {
    const { tree: t, relayed, hostile } = tree(10);
    // Ids nobody saw, each justified by its slot, all inside what this node holds of the replica.
    for (let after = 0; after < 9; after++) expect(t.received(hostile, { ...delta(replica, after, 1), range: { replica: replica as ReplicaId, after, upTo: 10 }, slots: [{ page: 'home' as PageName, count: 1, seq: 10 }] })).toBe(true);
    expect(relayed).toHaveLength(0);
    expect(t.counts.notRelayed).toBe(9);
    // A delta reaching past the vector is news: passed on.
    expect(t.received(hostile, delta(replica, 10, 5))).toBe(true);
    expect(relayed).toHaveLength(1);
  });

  it('other copies of a held id are relayed only when they raise a counter over the copies taken', () => {
    const { tree: t, relayed, hostile } = tree(0);
    expect(t.received(hostile, delta(replica, 4, 1_000))).toBe(true);
    expect(relayed).toHaveLength(1);
    // 999 copies differing in their bytes, none above the first: each merged, none relayed.
    for (let count = 1; count < 1_000; count++) expect(t.received(hostile, delta(replica, 4, count))).toBe(true);
    expect(relayed).toHaveLength(1);
    expect(t.counts.notRelayed).toBe(999);
    // A copy raising the counter (the genuine one after a forged lower one) goes on, once…
    expect(t.received(hostile, delta(replica, 4, 1_009))).toBe(true);
    expect(relayed.map((d) => d.slots[0]!.count)).toEqual([1_000, 1_009]);
    // …and one raising another counter too; one at the max so far does not.
    t.received(hostile, { ...delta(replica, 4, 1), slots: [{ page: 'home' as PageName, count: 1_009, seq: 5 }, { page: 'other' as PageName, count: 1, seq: 5 }] });
    t.received(hostile, { ...delta(replica, 4, 1), slots: [{ page: 'other' as PageName, count: 1, seq: 5 }, { page: 'home' as PageName, count: 1_008, seq: 5 }] });
    expect(relayed).toHaveLength(3);
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
