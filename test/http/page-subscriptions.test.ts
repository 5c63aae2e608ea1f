/** The page index's fan-out: each touched client corked once around all its changed pages; messages cached only for shared pages; one encode per change, one joined write per shared run. */
import { describe, expect, it } from 'vitest';
import type { PageName, ReplicaId } from '../../src/ids.js';
import { PageSubscriptions, type PageSubscriber } from '../../src/http/page-subscriptions.js';
import { realTimers } from '../../src/timers.js';
import { eventually } from '../helpers/eventually.js';

const page = (name: string) => name as PageName;

class Recorder implements PageSubscriber {
  readonly events: string[] = [];
  readonly held: readonly Buffer[] = [];
  constructor(readonly pages: readonly PageName[]) {}
  pageChanged(changed: PageName): void {
    this.events.push(`page ${changed}`);
  }
  cork(): void {
    this.events.push('cork');
  }
  uncork(): void {
    this.events.push('uncork');
  }
}

/** A follower that takes each changed page's message, as LiveClient does, and records what it is written. */
class Follower implements PageSubscriber {
  held: Buffer[] = [];
  readonly written: Buffer[] = [];
  constructor(
    readonly pages: readonly PageName[],
    private readonly subs: () => PageSubscriptions<Follower>,
  ) {}
  pageChanged(changed: PageName): void {
    this.held.push(this.subs().message(changed));
  }
  cork(): void {
    this.held = [];
  }
  uncork(joined?: Buffer): void {
    this.written.push(...(joined !== undefined ? [joined] : this.held));
    this.held = [];
  }
}

function subscriptions(): PageSubscriptions<Recorder> {
  // Every read of the slots shows one more view, so two builds always differ.
  let builds = 0;
  const store = { count: () => builds, pageSlots: (p: PageName) => [{ page: p, replica: 'aa'.repeat(16) as ReplicaId, count: ++builds, seq: builds }] };
  return new PageSubscriptions<Recorder>(store, realTimers);
}

describe('PageSubscriptions', () => {
  it('corks each touched client once around every page of one change, and leaves others alone', () => {
    const subs = subscriptions();
    const both = new Recorder([page('a'), page('b')]);
    const onlyB = new Recorder([page('b')]);
    const other = new Recorder([page('z')]);
    for (const s of [both, onlyB, other]) subs.add(s);
    subs.changed([
      { page: page('a'), count: 1 },
      { page: page('b'), count: 1 },
      { page: page('c'), count: 1 },
    ]);
    expect(both.events).toEqual(['cork', 'page a', 'page b', 'uncork']);
    expect(onlyB.events).toEqual(['cork', 'page b', 'uncork']);
    expect(other.events).toEqual([]);
  });

  it('caches a page message only while two or more clients follow the page', () => {
    const subs = subscriptions();
    const alone = new Recorder([page('a')]);
    subs.add(alone);
    // Each build reads the slots anew (the fake store counts reads): no cache for one subscriber.
    const encoded = subs.stats.pageFramesEncoded;
    expect(subs.message(page('a'))).not.toEqual(subs.message(page('a')));
    expect(subs.stats.pageFramesEncoded - encoded).toBe(2);
    const second = new Recorder([page('a')]);
    subs.add(second);
    const shared = subs.message(page('a'));
    expect(subs.message(page('a'))).toBe(shared);
    subs.remove(second);
    expect(subs.message(page('a'))).not.toBe(shared);
  });

  it('encodes a change of a page once for all its followers, and writes one joined run to those that hold the same one', () => {
    const slots = [{ page: page('a'), replica: 'aa'.repeat(16) as ReplicaId, count: 7, seq: 1 }];
    const subs = new PageSubscriptions<Follower>({ count: () => 7, pageSlots: () => slots }, realTimers);
    const same = Array.from({ length: 50 }, () => new Follower([page('a'), page('b'), page('c')], () => subs));
    const onlyA = new Follower([page('a')], () => subs);
    for (const f of [...same, onlyA]) subs.add(f);
    const before = subs.stats;
    subs.changed([
      { page: page('a'), count: 7 },
      { page: page('b'), count: 7 },
      { page: page('c'), count: 7 },
    ]);
    // Three pages changed: three encodings, not 151.
    expect(subs.stats.pageFramesEncoded - before.pageFramesEncoded).toBe(3);
    // The 50 alike got one write each, of one and the same Buffer: the three frames joined once.
    const joined = same[0]?.written[0] as Buffer;
    for (const f of same) {
      expect(f.written).toHaveLength(1);
      expect(f.written[0]).toBe(joined);
    }
    expect(subs.stats.runsShared - before.runsShared).toBe(1);
    // The lone follower of a shares a's very frame, not a copy, and nothing was joined for it.
    expect(onlyA.written).toHaveLength(1);
    expect(joined.subarray(0, onlyA.written[0]?.length).equals(onlyA.written[0] as Buffer)).toBe(true);
    expect(JSON.parse((onlyA.written[0] as Buffer).subarray(2).toString('utf8'))).toMatchObject({ type: 'page', page: 'a', count: 7 });
  });
});

/** realTimers that note, at each yield (the end of a slice), how many deliveries and writes were made so far. */
function turnsOf(counters: () => { deliveries: number; writes: number }): { timers: typeof realTimers; turns: Array<{ deliveries: number; writes: number }> } {
  const turns: Array<{ deliveries: number; writes: number }> = [];
  return { turns, timers: { ...realTimers, yield: () => (turns.push({ ...counters() }), realTimers.yield()) } };
}

describe('PageSubscriptions fan-out in slices', () => {
  it('spreads a large fan-out over loop turns of bounded deliveries and bytes, each client still written once', async () => {
    let deliveries = 0;
    let writes = 0;
    const { timers, turns } = turnsOf(() => ({ deliveries, writes }));
    const slots = [{ page: page('a'), replica: 'aa'.repeat(16) as ReplicaId, count: 7, seq: 1 }];
    const subs = new PageSubscriptions<Follower>({ count: () => 7, pageSlots: (p) => slots.map((s) => ({ ...s, page: p })) }, timers, undefined, undefined, undefined, { sliceDeliveries: 10, sliceBytes: 1 });
    class Counting extends Follower {
      override pageChanged(changed: PageName): void {
        deliveries++;
        super.pageChanged(changed);
      }
      override uncork(joined?: Buffer): void {
        if (this.held.length > 0) writes++;
        super.uncork(joined);
      }
    }
    const followers = Array.from({ length: 30 }, () => new Counting([page('a'), page('b')], () => subs));
    for (const f of followers) subs.add(f);
    subs.changed([
      { page: page('a'), count: 7 },
      { page: page('b'), count: 7 },
    ]);
    // The first slice ran in the commit's turn; the rest are left for later turns.
    expect(deliveries).toBe(10);
    expect(writes).toBe(0);
    await eventually(() => expect(writes).toBe(30));
    expect(deliveries).toBe(60);
    // Six gathering slices of ten deliveries, then (a one-byte budget) one client written per slice.
    let previous = { deliveries: 0, writes: 0 };
    for (const turn of [...turns, { deliveries, writes }]) {
      expect(turn.deliveries - previous.deliveries).toBeLessThanOrEqual(10);
      expect(turn.writes - previous.writes).toBeLessThanOrEqual(1);
      previous = turn;
    }
    for (const f of followers) {
      expect(f.written).toHaveLength(2);
      expect(f.written.map((frame) => (JSON.parse(frame.subarray(2).toString('utf8')) as { page: string }).page)).toEqual(['a', 'b']);
    }
    expect(subs.stats).toMatchObject({ fanOuts: 1, pendingPages: 0 });
    expect(subs.stats.fanOutSlices).toBeGreaterThanOrEqual(30);
  });

  it('coalesces changes that arrive during a fan-out into one more, per page, with the latest state', async () => {
    let count = 0;
    const slots = (p: PageName) => [{ page: p, replica: 'aa'.repeat(16) as ReplicaId, count, seq: count }];
    const subs = new PageSubscriptions<Follower>({ count: () => count, pageSlots: slots }, realTimers, undefined, undefined, undefined, { sliceDeliveries: 5 });
    const followers = Array.from({ length: 20 }, () => new Follower([page('a')], () => subs));
    for (const f of followers) subs.add(f);
    count = 1;
    subs.changed([{ page: page('a'), count }]);
    // Under way (5 of 20 told): ten more commits of the page wait as one.
    for (let i = 0; i < 10; i++) subs.changed([{ page: page('a'), count: ++count }]);
    expect(subs.stats).toMatchObject({ fanOuts: 1, changesCoalesced: 9, pendingPages: 1 });
    await eventually(() => {
      for (const f of followers) expect(f.written.length).toBeGreaterThanOrEqual(2);
    });
    expect(subs.stats).toMatchObject({ fanOuts: 2, pendingPages: 0 });
    const counts = (f: Follower) => f.written.map((frame) => (JSON.parse(frame.subarray(2).toString('utf8')) as { count: number }).count);
    for (const f of followers) {
      // Two messages, never lower than the one before, the last one the latest state.
      expect(counts(f)).toHaveLength(2);
      expect(counts(f)[1]).toBe(11);
      expect(counts(f)[1]).toBeGreaterThanOrEqual(counts(f)[0] as number);
    }
  });

  it('stop() drops the fan-out under way and what is pending, leaving no client corked', async () => {
    const subs = new PageSubscriptions<Follower>({ count: () => 1, pageSlots: (p) => [{ page: p, replica: 'aa'.repeat(16) as ReplicaId, count: 1, seq: 1 }] }, realTimers, undefined, undefined, undefined, { sliceDeliveries: 3 });
    const followers = Array.from({ length: 10 }, () => new Follower([page('a')], () => subs));
    for (const f of followers) subs.add(f);
    subs.changed([{ page: page('a'), count: 1 }]);
    subs.changed([{ page: page('a'), count: 1 }]);
    subs.stop();
    await realTimers.yield();
    await realTimers.yield();
    expect(subs.stats).toMatchObject({ fanOuts: 1, pendingPages: 0 });
    for (const f of followers) expect(f.held).toHaveLength(0);
    subs.changed([{ page: page('a'), count: 1 }]);
    expect(subs.stats.fanOuts).toBe(1);
  });
});
