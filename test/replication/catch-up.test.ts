import { describe, expect, it } from 'vitest';
import type { ReplicaId } from '../../src/ids.js';
import { CatchUp, type CatchUpSource } from '../../src/replication/catch-up.js';
import type { TargetView } from '../../src/replication/replicator.js';
import { ManualTimers } from '../helpers/manual-timers.js';

const A = 'a'.repeat(32) as ReplicaId;
const B = 'b'.repeat(32) as ReplicaId;
const silent = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };

class FakeSource implements CatchUpSource {
  targets: TargetView[] = [];
  readonly synced = new Set<ReplicaId>();
  private listener: (() => void) | undefined;
  onFirstSync(listener: () => void): () => void {
    this.listener = listener;
    return () => (this.listener = undefined);
  }
  syncedWith(replica: ReplicaId): boolean {
    return this.synced.has(replica);
  }
  dialTargets(): TargetView[] {
    return this.targets;
  }
  sync(replica: ReplicaId): void {
    this.synced.add(replica);
    this.listener?.();
  }
}

function setup(timeoutMs = 5_000, needsOnePeer = false) {
  const timers = new ManualTimers();
  const source = new FakeSource();
  let slots = 10;
  const catchUp = new CatchUp({ source, timers, timeoutMs, log: silent, slots: () => slots, needsOnePeer });
  return { timers, source, catchUp, setSlots: (n: number) => (slots = n) };
}

describe('CatchUp', () => {
  it('serves at once without peers', () => {
    const { catchUp } = setup();
    catchUp.start(false);
    expect(catchUp.ready).toBe(true);
  });

  it('waits for discovery, then for a full round from every reachable peer, and reports the slots brought', async () => {
    const { source, catchUp, setSlots, timers } = setup();
    source.targets = [
      { address: 'a:1', state: 'connected', replica: A, lastError: undefined },
      { address: 'b:1', state: 'connecting', replica: undefined, lastError: undefined },
      { address: 'self:1', state: 'self', replica: undefined, lastError: undefined },
    ];
    catchUp.start(true);
    source.sync(A);
    expect(catchUp.ready).toBe(false); // discovery has not spoken yet
    catchUp.peersDiscovered();
    expect(catchUp.ready).toBe(false); // b not answered yet
    source.targets[1] = { address: 'b:1', state: 'connected', replica: B, lastError: undefined };
    timers.advance(100);
    expect(catchUp.ready).toBe(false); // connected, round not merged
    setSlots(35);
    source.sync(B);
    expect(catchUp.ready).toBe(true);
    await catchUp.wait();
    expect(catchUp.result).toMatchObject({ slotsBrought: 25, synced: ['a:1', 'b:1'], unreached: [], timedOut: false });
  });

  it('does not wait for a peer whose dial failed before any handshake', () => {
    const { source, catchUp } = setup();
    source.targets = [{ address: 'down:1', state: 'disconnected', replica: undefined, lastError: 'ECONNREFUSED' }];
    catchUp.start(true);
    catchUp.peersDiscovered();
    expect(catchUp.ready).toBe(true);
    expect(catchUp.result).toMatchObject({ unreached: ['down:1'], timedOut: false });
  });

  it('with a copy known stale, takes neither an empty peer list nor a failed dial for caught up: one full round, or the timeout', () => {
    const { source, catchUp, timers } = setup(1_000, true);
    catchUp.start(true);
    catchUp.peersDiscovered(); // the first DNS answer named nobody else
    timers.advance(100);
    expect(catchUp.ready).toBe(false);
    source.targets = [
      { address: 'restarting:1', state: 'disconnected', replica: undefined, lastError: 'ECONNREFUSED' },
      { address: 'up:1', state: 'connected', replica: A, lastError: undefined },
    ];
    timers.advance(100);
    expect(catchUp.ready).toBe(false);
    source.sync(A);
    expect(catchUp.ready).toBe(true);
    expect(catchUp.result).toMatchObject({ synced: ['up:1'], unreached: ['restarting:1'], timedOut: false });

    const alone = setup(1_000, true);
    alone.catchUp.start(true);
    alone.catchUp.peersDiscovered();
    alone.timers.advance(999);
    expect(alone.catchUp.ready).toBe(false);
    alone.timers.advance(1);
    expect(alone.catchUp.result).toMatchObject({ timedOut: true });
  });

  it('serves after the timeout with what it has, naming the peers not reached', () => {
    const { source, catchUp, timers } = setup(1_000);
    source.targets = [{ address: 'slow:1', state: 'connected', replica: A, lastError: undefined }];
    catchUp.start(true);
    catchUp.peersDiscovered();
    timers.advance(999);
    expect(catchUp.ready).toBe(false);
    timers.advance(1);
    expect(catchUp.ready).toBe(true);
    expect(catchUp.result).toMatchObject({ unreached: ['slow:1'], timedOut: true });
    expect(timers.pending()).toBe(0);
  });
});
