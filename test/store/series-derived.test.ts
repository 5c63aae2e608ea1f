/**
 * The SQLite store's derived series tables (migration 0004: site_buckets, site_registers,
 * sketches) are kept by the commits incrementally, some of it through caches held between
 * transactions (sqlite-series.ts). Whatever the order of local views, peer merges, resets and
 * reopens, they must equal what the series slots give from scratch: per (kind, t) the sum of every
 * page's buckets, per (day, register) the max over every page's and replica's register, and per
 * page-day (and the site's day) the histogram of the merged registers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Slot } from '../../src/crdt/g-counter.js';
import { stateDigest } from '../../src/crdt/digest.js';
import { decodeHistogram, HLL_MAX_RANK, HLL_REGISTERS, histogramOf } from '../../src/crdt/hyperloglog.js';
import { DAY_MS, registerT, SERIES_DAY, SERIES_HOUR, SERIES_REGISTER } from '../../src/crdt/series.js';
import type { PageName, ReplicaId } from '../../src/ids.js';
import { encodeMessage } from '../../src/protocol/codec.js';
import { planSyncAnswer } from '../../src/replication/sync-answer.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite-store.js';

const PAGES = ['a', 'b', 'c:d'] as PageName[];
const PEERS = ['a'.repeat(32), 'b'.repeat(32)] as ReplicaId[];
const BASE_DAY = 20_000;

type Op =
  | { kind: 'views'; views: { page: number; index: number; rank: number }[]; day: number }
  | { kind: 'merge'; peer: number; slots: { page: number; series: 1 | 2 | 3; day: number; index: number; count: number }[] }
  | { kind: 'reset'; page: number }
  | { kind: 'reopen' };

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('views' as const), day: fc.integer({ min: 0, max: 1 }), views: fc.array(fc.record({ page: fc.nat(PAGES.length - 1), index: fc.nat(15), rank: fc.integer({ min: 1, max: 6 }) }), { minLength: 1, maxLength: 6 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('merge' as const),
      peer: fc.nat(PEERS.length - 1),
      slots: fc.array(fc.record({ page: fc.nat(PAGES.length - 1), series: fc.constantFrom(1 as const, 2 as const, 3 as const), day: fc.integer({ min: 0, max: 1 }), index: fc.nat(15), count: fc.integer({ min: 1, max: 6 }) }), { minLength: 1, maxLength: 6 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reset' as const), page: fc.nat(PAGES.length - 1) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
);

/** What the derived tables hold against what the series slots give, as one text each (equal when right). */
function derivedAndRecomputed(path: string): { held: string; recomputed: string } {
  const db = new Database(path, { readonly: true });
  try {
    const rows = db.prepare('SELECT page, kind, t, count FROM series_slots').all() as { page: string; kind: number; t: number; count: number }[];
    const buckets = new Map<string, number>();
    const pageRegisters = new Map<string, Map<number, number>>();
    const siteRegisters = new Map<number, Map<number, number>>();
    const raise = (map: Map<number, number>, index: number, rank: number): void => {
      if (rank > (map.get(index) ?? 0)) map.set(index, rank);
    };
    for (const row of rows) {
      if (row.kind !== SERIES_REGISTER) {
        buckets.set(`${row.kind}:${row.t}`, (buckets.get(`${row.kind}:${row.t}`) ?? 0) + row.count);
        continue;
      }
      const day = Math.floor(row.t / HLL_REGISTERS);
      const index = row.t % HLL_REGISTERS;
      const key = `${day}|${row.page}`;
      if (!pageRegisters.has(key)) pageRegisters.set(key, new Map());
      raise(pageRegisters.get(key) as Map<number, number>, index, row.count);
      if (!siteRegisters.has(day)) siteRegisters.set(day, new Map());
      raise(siteRegisters.get(day) as Map<number, number>, index, row.count);
    }
    const sketches: string[] = [];
    for (const [key, registers] of pageRegisters) sketches.push(`${key}=${histogramOf(registers.values()).join(',')}`);
    for (const [day, registers] of siteRegisters) sketches.push(`${day}|=${histogramOf(registers.values()).join(',')}`);
    const recomputed = [
      ...[...buckets].filter(([, views]) => views > 0).map(([key, views]) => `bucket ${key}=${views}`),
      ...[...siteRegisters].flatMap(([day, registers]) => [...registers].map(([index, rank]) => `site ${day}:${index}=${rank}`)),
      ...sketches.map((text) => `sketch ${text}`),
    ].sort();
    const held = [
      ...(db.prepare('SELECT kind, t, views FROM site_buckets WHERE views > 0').all() as { kind: number; t: number; views: number }[]).map((r) => `bucket ${r.kind}:${r.t}=${r.views}`),
      ...(db.prepare('SELECT day, idx, rank FROM site_registers').all() as { day: number; idx: number; rank: number }[]).map((r) => `site ${r.day}:${r.idx}=${r.rank}`),
      ...(db.prepare('SELECT page, day, histogram FROM sketches').all() as { page: string; day: number; histogram: Buffer }[]).map((r) => `sketch ${r.day}|${r.page}=${decodeHistogram(r.histogram).join(',')}`),
    ].sort();
    return { held: held.join('\n'), recomputed: recomputed.join('\n') };
  } finally {
    db.close();
  }
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'series-derived-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('the derived series tables of the SQLite store', () => {
  it('equal a recount from the series slots after any views, merges, resets and reopens', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArbitrary, { minLength: 1, maxLength: 25 }), async (ops) => {
        const path = join(dir, `run-${run++}.db`);
        let clock = BASE_DAY * DAY_MS;
        const open = () => openSqliteStore({ path, now: () => clock, pruneIntervalMs: 0, writeHealthIntervalMs: 0, analytics: true });
        let store: SqliteStore = await open();
        const peerSeqs = PEERS.map(() => 0);
        try {
          for (const op of ops) {
            if (op.kind === 'views') {
              clock = (BASE_DAY + op.day) * DAY_MS + 3_600_000 * op.views.length;
              await Promise.all(op.views.map((view) => store.increment([{ page: PAGES[view.page] as PageName, by: 1, visitor: { index: view.index, rank: view.rank } }])));
            } else if (op.kind === 'merge') {
              const replica = PEERS[op.peer] as ReplicaId;
              const seq = (peerSeqs[op.peer] ?? 0) + 1;
              peerSeqs[op.peer] = seq;
              const slots: Slot[] = op.slots.map((s) => {
                const day = BASE_DAY + s.day;
                const t = s.series === SERIES_REGISTER ? registerT(day, s.index) : s.series === SERIES_DAY ? day : day * 24 + s.index;
                return { page: PAGES[s.page] as PageName, replica, count: s.series === SERIES_HOUR || s.series === SERIES_DAY ? s.count * 10 : s.count, seq, kind: s.series, t };
              });
              store.merge(slots, []);
            } else if (op.kind === 'reset') {
              store.reset([PAGES[op.page] as PageName]);
            } else {
              await store.close();
              store = await open();
            }
            const { held, recomputed } = derivedAndRecomputed(path);
            expect(held).toBe(recomputed);
          }
        } finally {
          await store.close();
        }
      }),
      { numRuns: 60 },
    );
  }, 120_000);
});

describe('migration 0007 (register ranks 1–51, series counts at least 1)', () => {
  it('clamps the ranks a schema-6 database merged above 51, drops counts below 1, and keeps the derived tables and sync answers right', async () => {
    const path = join(dir, 'old.db');
    const day = BASE_DAY;
    const open = () => openSqliteStore({ path, now: () => day * DAY_MS + 3_600_000, pruneIntervalMs: 0, writeHealthIntervalMs: 0, analytics: true });
    const [peer, other] = PEERS as [ReplicaId, ReplicaId];
    const [a, b] = PAGES as [PageName, PageName];
    // What a schema-6 node stored before the codec refused ranks above 51: its own views, and a
    // peer's registers above 51 merged by the store's own code (so its derived tables hold them
    // as that code wrote them), beside in-range ones of another peer on the same registers.
    const first = await open();
    await first.increment([{ page: a, by: 1, visitor: { index: 1, rank: 3 } }]);
    await first.increment([{ page: b, by: 1, visitor: { index: 2, rank: 5 } }]);
    const register = (page: PageName, replica: ReplicaId, index: number, count: number, seq: number): Slot => ({ page, replica, count, seq, kind: SERIES_REGISTER, t: registerT(day, index) });
    first.merge(
      [
        { page: a, replica: peer, count: 2, seq: 1 },
        { page: a, replica: peer, count: 20, seq: 1, kind: SERIES_DAY, t: day },
        { page: a, replica: peer, count: 20, seq: 1, kind: SERIES_HOUR, t: day * 24 + 1 },
        register(a, peer, 1, 60, 1),
        register(a, peer, 7, 200, 1),
        register(b, peer, 2, 52, 1),
      ],
      [{ replica: peer, after: 0, upTo: 1 }],
    );
    first.merge([{ page: a, replica: other, count: 1, seq: 1 }, register(a, other, 7, 30, 1), register(b, other, 9, 51, 1)], [{ replica: other, after: 0, upTo: 1 }]);
    await first.close();
    // Counts below 1 no code wrote, but a hostile or hand-edited file can hold (past the CHECKs).
    const raw = new Database(path);
    const interned = raw.prepare('SELECT id FROM replicas WHERE replica_id = ?').pluck().get(other) as number;
    raw.pragma('ignore_check_constraints = ON');
    const insert = raw.prepare('INSERT INTO series_slots (page, kind, t, replica, count, seq, epoch) VALUES (?, ?, ?, ?, ?, 1, 0)');
    insert.run(a, SERIES_HOUR, day * 24 + 1, interned, -5);
    insert.run(b, SERIES_DAY, day, interned, 0);
    insert.run(b, SERIES_REGISTER, registerT(day, 11), interned, 0);
    raw.pragma('user_version = 6');
    raw.close();
    expect(derivedAndRecomputed(path).held).not.toBe(derivedAndRecomputed(path).recomputed);

    const store = await open();
    try {
      // (a) The rows are fixed: ranks above 51 at 51 under their seq, counts below 1 gone.
      const db = new Database(path, { readonly: true });
      const series = db.prepare('SELECT page, kind, t, count, seq FROM series_slots WHERE replica = (SELECT id FROM replicas WHERE replica_id = ?) AND kind = 3 ORDER BY page, t').all(peer);
      const bad = db.prepare('SELECT count(*) FROM series_slots WHERE count < 1 OR (kind = 3 AND count > ?)').pluck().get(HLL_MAX_RANK);
      db.close();
      expect(series).toEqual([
        { page: a, kind: 3, t: registerT(day, 1), count: 51, seq: 1 },
        { page: a, kind: 3, t: registerT(day, 7), count: 51, seq: 1 },
        { page: b, kind: 3, t: registerT(day, 2), count: 51, seq: 1 },
      ]);
      expect(bad).toBe(0);
      // (b) A full sync answer encodes, and holds what the digest counts.
      const answer = planSyncAnswer(store, new Map());
      const slots: Slot[] = [];
      let index = 0;
      for (const chunk of answer.chunks) {
        expect(() => encodeMessage({ type: 'slots', round: 1, index: index++, slots: chunk })).not.toThrow();
        slots.push(...chunk);
      }
      expect(() => encodeMessage({ type: 'covered', round: 1, chunks: index, ranges: answer.ranges })).not.toThrow();
      expect(slots.filter((slot) => slot.kind === SERIES_REGISTER && slot.replica === peer).map((slot) => slot.count)).toEqual([51, 51, 51]);
      expect(store.digest()).toBe(stateDigest(slots));
      // (c) The derived tables equal a recount from the fixed slots.
      const { held, recomputed } = derivedAndRecomputed(path);
      expect(held).toBe(recomputed);
      expect(store.series({ page: a, step: 'day', from: day, to: day + 1 })).toEqual([{ t: day, views: 21, visitors: expect.any(Number) }]);
    } finally {
      await store.close();
    }
  });
});
