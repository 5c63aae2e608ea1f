/**
 * `SyncSender.answer`: a vector that arrives while an answer is being written is answered next,
 * minus what the answer in flight covered (the peer sent it before reading our answer), and the
 * vector after that is answered as it comes. A real MemoryStore; the session is a recording
 * stand-in with a send buffer the test fills and drains.
 */
import { describe, expect, it } from 'vitest';
import type { Slot } from '../../src/crdt/g-counter.js';
import type { SeqRange, VersionVector } from '../../src/crdt/version-vector.js';
import type { PageName, ReplicaId } from '../../src/ids.js';
import { noLog } from '../../src/log.js';
import type { Message } from '../../src/protocol/messages.js';
import type { PeerSession } from '../../src/replication/peer-session.js';
import { noMetrics } from '../../src/replication/replication-metrics.js';
import { MAX_SEND_BUFFER_BYTES, SyncSender } from '../../src/replication/sync-sender.js';
import { MemoryStore, MemoryDisk } from '../../src/store/memory-store.js';
import { ManualTimers } from '../helpers/manual-timers.js';

const PAGES = 50;
const CHUNK_SLOTS = 10;

class RecordingSession {
  phase: 'open' | 'closed' = 'open';
  readonly peer = { name: 'peer' };
  buffered = 0;
  readonly sent: Message[] = [];
  readonly connection = { bufferedBytes: () => this.buffered };
  private round = 0;
  newRound(): number {
    return ++this.round;
  }
  send(message: Message): number {
    this.sent.push(message);
    return 0;
  }
  peerHolds(_range: SeqRange): void {}
  /** The slots sent so far, and the ranges claimed by `covered`, since the last call. */
  take(): { slots: Slot[]; covered: SeqRange[] } {
    const taken = this.sent.splice(0);
    return {
      slots: taken.flatMap((m) => (m.type === 'slots' ? m.slots : [])),
      covered: taken.flatMap((m) => (m.type === 'covered' ? m.ranges : [])),
    };
  }
}

async function storeWithPages(): Promise<MemoryStore> {
  // Totals only (no buckets or registers): the slots counted below are one per page.
  const store = MemoryStore.open(new MemoryDisk(), { random: (n) => new Uint8Array(n).fill(7), analytics: false });
  for (let i = 0; i < PAGES; i++) await store.increment([{ page: `p${i}` as PageName, by: 1 }]);
  return store;
}

/** Lets the answer's awaited steps (yields, drain polls of 20 ms) run. */
async function settle(timers: ManualTimers): Promise<void> {
  for (let i = 0; i < 20; i++) {
    await Promise.resolve();
    timers.advance(25);
  }
}

describe('SyncSender.answer', () => {
  it('answers a vector queued behind an answer without sending that answer again, and the next one in full', async () => {
    const store = await storeWithPages();
    const timers = new ManualTimers();
    const sender = new SyncSender({ store, timers, log: noLog, metrics: noMetrics, maxSendBufferBytes: MAX_SEND_BUFFER_BYTES, syncChunkSlots: CHUNK_SLOTS });
    const session = new RecordingSession();
    const asPeer = session as unknown as PeerSession;
    const empty: VersionVector = new Map();

    // The peer asks for everything; its send buffer is full, so the answer waits after a chunk…
    session.buffered = MAX_SEND_BUFFER_BYTES + 1;
    sender.answer(asPeer, empty);
    await settle(timers);
    expect(sender.busy()).toBe(true);
    // …and its anti-entropy timer sends the same empty vector again meanwhile.
    sender.answer(asPeer, empty);
    session.buffered = 0;
    await settle(timers);
    expect(sender.busy()).toBe(false);
    const first = session.take();
    expect(first.slots).toHaveLength(PAGES);
    expect(first.covered).toEqual([{ replica: store.replicaId, after: 0, upTo: PAGES }]);
    // Only the first answer's slots went out; the queued vector was answered with nothing to send.
    expect(first.slots.map((s) => s.page).sort()).toEqual(Array.from({ length: PAGES }, (_, i) => `p${i}`).sort());

    // A vector arriving on its own is answered in full: a peer that lost what we sent gets it again.
    sender.answer(asPeer, empty);
    await settle(timers);
    expect(session.take().slots).toHaveLength(PAGES);
  });

  it('still sends what is new since the answer in flight to a queued vector', async () => {
    const store = await storeWithPages();
    const timers = new ManualTimers();
    const sender = new SyncSender({ store, timers, log: noLog, metrics: noMetrics, maxSendBufferBytes: MAX_SEND_BUFFER_BYTES, syncChunkSlots: CHUNK_SLOTS });
    const session = new RecordingSession();
    const asPeer = session as unknown as PeerSession;
    session.buffered = MAX_SEND_BUFFER_BYTES + 1;
    sender.answer(asPeer, new Map());
    await settle(timers);
    sender.answer(asPeer, new Map());
    await store.increment([{ page: 'late' as PageName, by: 1 }]);
    session.buffered = 0;
    await settle(timers);
    const { slots } = session.take();
    // Whether the first answer already read `late` depends on where its cursor was; either way it
    // is sent, and nothing else twice.
    expect(slots.filter((s) => s.page === 'late').length).toBeGreaterThanOrEqual(1);
    expect(slots.filter((s) => s.page !== 'late')).toHaveLength(PAGES);
    const replica: ReplicaId = store.replicaId;
    expect(store.versionVector().get(replica)).toBe(PAGES + 1);
  });
});
