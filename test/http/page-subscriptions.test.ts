/** The page index's fan-out: each touched client corked once around all its changed pages; messages cached only for shared pages. */
import { describe, expect, it } from 'vitest';
import type { PageName, ReplicaId } from '../../src/ids.js';
import { PageSubscriptions, type PageSubscriber } from '../../src/http/page-subscriptions.js';
import { realTimers } from '../../src/timers.js';

const page = (name: string) => name as PageName;

class Recorder implements PageSubscriber {
  readonly events: string[] = [];
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

function subscriptions(): PageSubscriptions<Recorder> {
  // Every read of a page's slots sees one more view: a message built anew differs from the last.
  let builds = 0;
  const store = {
    count: () => builds,
    pageSlots: (name: PageName) => [{ page: name, replica: 'r'.repeat(32) as ReplicaId, count: ++builds, seq: builds }],
  };
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
    expect(subs.message(page('a'))).not.toEqual(subs.message(page('a')));
    const second = new Recorder([page('a')]);
    subs.add(second);
    const shared = subs.message(page('a'));
    expect(subs.message(page('a'))).toBe(shared);
    subs.remove(second);
    expect(subs.message(page('a'))).not.toBe(shared);
  });
});
