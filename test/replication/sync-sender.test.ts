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
import { decodeFrame, encodeMessage } from '../../src/protocol/codec.js';
import { PageTableIn, PageTableOut } from '../../src/protocol/page-table.js';
import { MAX_OUTBOX_BYTES, MAX_SEND_BUFFER_BYTES, OUTBOX_POLL_MAX_MS, OUTBOX_POLL_MS, SyncSender } from '../../src/replication/sync-sender.js';
import type { Delta } from '../../src/store/store.js';
import { MemoryStore, MemoryDisk } from '../../src/store/memory-store.js';
import { ManualTimers } from '../helpers/manual-timers.js';

const PAGES = 50;
const CHUNK_SLOTS = 10;

class RecordingSession {
  phase: 'open' | 'closed' = 'open';
  readonly peer = { name: 'peer' };
  buffered = 0;
  readonly sent: Message[] = [];
  /** The raw frames sendFrame was given. */
  readonly frames: Uint8Array[] = [];
  /** The replica this side's hello named (undefined: none, every delta names its replica). */
  localReplica: ReplicaId | undefined;
  readonly connection = { bufferedBytes: () => this.buffered };
  private round = 0;
  newRound(): number {
    return ++this.round;
  }
  send(message: Message): number {
    this.sent.push(message);
    return 0;
  }
  readonly held: SeqRange[] = [];
  peerHolds(range: SeqRange): void {
    this.held.push(range);
  }
  sendFrame(frame: Uint8Array): void {
    this.frames.push(frame);
    this.sent.push(decodeFrame(frame, { sender: this.localReplica }));
  }
  /** Both ends of the link's page tables, as a PeerSession and its peer hold them. */
  private readonly pagesOut = new PageTableOut();
  private readonly pagesIn = new PageTableIn();
  sendDelta(message: Extract<Message, { type: 'delta' }>): void {
    const frame = encodeMessage(message, { sender: this.localReplica, pagesOut: this.pagesOut });
    this.frames.push(frame);
    this.sent.push(decodeFrame(frame, { sender: this.localReplica, pagesIn: this.pagesIn }));
  }
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

describe('SyncSender.push: coalesced deltas', () => {
  it('with a coalescing window (bench only), a link carries at most one delta frame per window: deltas within it wait and merge', async () => {
    const { store, timers, session, commit } = await setUp(10);
    await commit('a');
    expect(session.sent).toHaveLength(1); // the first goes at once
    timers.advance(1);
    await commit('a');
    timers.advance(1);
    await commit('b');
    expect(session.sent).toHaveLength(1); // within 10 ms of the last frame: waiting
    timers.advance(7);
    expect(session.sent).toHaveLength(1);
    timers.advance(1); // 10 ms after the first frame
    expect(session.sent).toHaveLength(2);
    expect(session.sent[1]).toMatchObject({ type: 'delta', range: { replica: store.replicaId, after: 1, upTo: 3 } });
    // The window runs from that frame: a commit 5 ms later waits 5 ms, one 10 ms after goes at once.
    timers.advance(5);
    await commit('c');
    expect(session.sent).toHaveLength(2);
    timers.advance(5);
    expect(session.sent).toHaveLength(3);
    timers.advance(10);
    await commit('d');
    expect(session.sent).toHaveLength(4);
  });

  it("leaves our replica out of the delta to a session whose hello named it, at once and from the outbox; names it to a session opened under another (rotated) replica", async () => {
    const { store, timers, session, commit } = await setUp();
    session.localReplica = store.replicaId;
    await commit('a');
    session.buffered = 100;
    await commit('b');
    session.buffered = 0;
    timers.advance(OUTBOX_POLL_MAX_MS);
    expect(session.sent.map((m) => (m.type === 'delta' ? m.range.replica : undefined))).toEqual([store.replicaId, store.replicaId]);
    // Without the session's sender, the frames say nothing about whose they are: refused.
    for (const frame of session.frames) expect(() => decodeFrame(frame)).toThrow(/outside a session/);
    session.localReplica = 'f'.repeat(32) as ReplicaId;
    await commit('c');
    // Page 'c' is new to the session: defined in this frame, readable by a table of its own.
    expect(decodeFrame(session.frames.at(-1)!, { pagesIn: new PageTableIn() })).toMatchObject({ type: 'delta', range: { replica: store.replicaId }, slots: [{ page: 'c' }] });
  });

  async function setUp(coalesceWindowMs?: number) {
    const store = MemoryStore.open(new MemoryDisk(), { random: (n) => new Uint8Array(n).fill(7), analytics: false });
    const deltas: Delta[] = [];
    store.onCommit((delta) => deltas.push(delta));
    const timers = new ManualTimers();
    let skipped = 0;
    const metrics = { ...noMetrics, deltaSkipped: () => void skipped++ };
    const sender = new SyncSender({ store, timers, log: noLog, metrics, maxSendBufferBytes: MAX_SEND_BUFFER_BYTES, syncChunkSlots: CHUNK_SLOTS, ...(coalesceWindowMs !== undefined ? { coalesceWindowMs } : {}) });
    const session = new RecordingSession();
    const commit = async (page: string, by = 1): Promise<Delta> => {
      await store.increment([{ page: page as PageName, by }]);
      const delta = deltas.at(-1)!;
      sender.push(delta, [session as unknown as PeerSession]);
      return delta;
    };
    return { store, timers, sender, session, commit, skipped: () => skipped };
  }

  it('sends at once on an empty send buffer; merges contiguous deltas while it is not, and sends them when it drained', async () => {
    const { store, timers, sender, session, commit } = await setUp();
    await commit('a');
    expect(session.sent).toHaveLength(1);
    session.buffered = 100;
    await commit('a', 2);
    await commit('b');
    await commit('a', 4);
    timers.advance(OUTBOX_POLL_MS);
    // Still buffered: nothing more went.
    expect(session.sent).toHaveLength(1);
    session.buffered = 0;
    timers.advance(OUTBOX_POLL_MAX_MS);
    expect(session.sent).toHaveLength(2);
    const merged = session.sent[1]!;
    expect(merged).toMatchObject({ type: 'delta', range: { replica: store.replicaId, after: 1, upTo: 4 } });
    const slots = merged.type === 'delta' ? merged.slots.map((s) => [s.page, s.count, s.seq]).sort() : [];
    // One slot per page, each at its value as of seq 4.
    expect(slots).toEqual([
      ['a', 7, 4],
      ['b', 1, 3],
    ]);
    expect(session.held.at(-1)).toEqual({ replica: store.replicaId, after: 1, upTo: 4 });
    expect(sender.counts.coalesced).toBe(2);
    // Drained and empty: the next delta goes at once again.
    await commit('c');
    expect(session.sent).toHaveLength(3);
  });

  it('holds at most MAX_OUTBOX_BYTES per session: a delta past it is skipped (counted), as over the send-buffer bound', async () => {
    const { timers, session, commit, skipped } = await setUp();
    session.buffered = 100;
    // Distinct long pages: every delta grows the outbox.
    const page = (i: number) => `${'x'.repeat(200)}-${i}`;
    let i = 0;
    while (skipped() === 0 && i < 10_000) await commit(page(i++));
    expect(skipped()).toBe(1);
    expect(i).toBeLessThan(10_000);
    expect(i * 200).toBeGreaterThan(MAX_OUTBOX_BYTES * 0.8);
    session.buffered = 0;
    timers.advance(OUTBOX_POLL_MAX_MS);
    const sent = session.sent.flatMap((m) => (m.type === 'delta' ? m.slots : []));
    expect(sent).toHaveLength(i - 1);
  });
  it('r18c #5: a peer that stops reading is looked at a few times a second, not every ms; past the send-buffer bound its outbox is dropped and no timer lives on', async () => {
    const { timers, session, commit, skipped } = await setUp();
    let looks = 0;
    (session as unknown as { connection: { bufferedBytes(): number } }).connection = { bufferedBytes: () => (looks++, session.buffered) };
    session.buffered = 100;
    await commit('a');
    await commit('b');
    await Promise.resolve();
    looks = 0;
    // Ten seconds of a buffer that never shrinks: at most one look per OUTBOX_POLL_MAX_MS once backed off.
    for (let t = 0; t < 10_000; t += 10) timers.advance(10);
    expect(looks).toBeGreaterThan(0);
    expect(looks).toBeLessThanOrEqual(10_000 / OUTBOX_POLL_MAX_MS + 10);
    expect(session.sent).toHaveLength(0);
    // The buffer passes the bound: the outbox's deltas are dropped (counted as skipped), and nothing looks any more.
    session.buffered = MAX_SEND_BUFFER_BYTES + 1;
    const before = skipped();
    timers.advance(OUTBOX_POLL_MAX_MS);
    expect(skipped()).toBe(before + 1);
    looks = 0;
    timers.advance(60_000);
    expect(looks).toBe(0);
    // Drained: the next delta goes at once, and anti-entropy owes the peer the dropped one.
    session.buffered = 0;
    await commit('c');
    expect(session.sent).toHaveLength(1);
  });
});
