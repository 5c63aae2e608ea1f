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
import type { Slot } from '../../src/crdt/g-counter.js';
import { decodeHistogram, HLL_REGISTERS, histogramOf } from '../../src/crdt/hyperloglog.js';
import { DAY_MS, registerT, SERIES_DAY, SERIES_HOUR, SERIES_REGISTER } from '../../src/crdt/series.js';
import type { PageName, ReplicaId } from '../../src/ids.js';
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

describe('the derived series tables of the SQLite store', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'series-derived-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

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
