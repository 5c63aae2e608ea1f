/** The page index's fan-out: each touched client corked once around all its changed pages; messages cached only for shared pages; one encode per change, one joined write per shared run. */
import { describe, expect, it } from 'vitest';
import type { PageName, ReplicaId } from '../../src/ids.js';
import { PageSubscriptions, type PageSubscriber } from '../../src/http/page-subscriptions.js';
import { realTimers } from '../../src/timers.js';

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
