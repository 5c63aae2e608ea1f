import { describe, expect, it } from 'vitest';
import { BroadcastTree, MAX_MISSING_PER_PEER } from '../../src/replication/broadcast-tree.js';
import { VirtualTimers } from '../../src/virtual-timers.js';
import type { PeerSession } from '../../src/replication/peer-session.js';
import type { PageName, ReplicaId } from '../../src/ids.js';
import type { Message } from '../../src/protocol/messages.js';

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
