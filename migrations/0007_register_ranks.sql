-- Schema 7: every stored series slot holds a value the codec sends (src/crdt/series.ts
-- `seriesSlotProblem`): a register's rank 1–51 (HLL_MAX_RANK), a bucket's count at least 1.

-- Before the codec refused them, a peer could have a register above rank 51 merged here. Such a
-- row stays, and every sync answer holding it then fails to encode: the session closes, for ever.
-- Out-of-range values are clamped into the range rather than dropped: a rank above 51 becomes 51,
-- a count below 1 (only past the CHECKs of 0004: a hand-edited or hostile file) becomes "no row"
-- (0, the value of an absent slot). Clamping is a monotone map
-- (clamp(max(a, b)) = max(clamp(a), clamp(b))), applied the same on every node, and the codec and
-- the recovery union refuse out-of-range values from now on: every node ends in the state it
-- would have reached had the values been in range from the start, and a version vector's promise
-- (every slot of R at least what R wrote by seq s) still holds of the clamped values. Dropping a
-- high register instead is not monotone: a node that merged 60 over 30 would drop to nothing, one
-- that kept 30 would keep 30, and the first never gets 30 back (its vector covers it).
-- Seqs and epochs stay: the slot is still the one of that commit.

-- The keys to fix, once (the only scan of series_slots: no index leads with count).
CREATE TEMP TABLE migration_0007_slots AS
  SELECT page, kind, t, replica FROM series_slots WHERE (kind = 3 AND count > 51) OR count < 1;

UPDATE series_slots SET count = 51
  WHERE kind = 3 AND count > 51 AND (page, kind, t, replica) IN (SELECT page, kind, t, replica FROM migration_0007_slots);
DELETE FROM series_slots
  WHERE count < 1 AND (page, kind, t, replica) IN (SELECT page, kind, t, replica FROM migration_0007_slots);
-- The digest follows by itself: the triggers of 0004 set it unknown, the next open recounts it.

-- Site buckets the dropped rows sat in: summed again from the slots, saturating as the store does
-- (sqlite-series.ts, MAX_TOTAL = 2^53 - 1), each kind through its partial index.
INSERT INTO site_buckets (kind, t, views)
  SELECT 1, b.t, (SELECT min(9007199254740991, total(s.count)) FROM series_slots s WHERE s.kind = 1 AND s.t = b.t)
  FROM (SELECT DISTINCT t FROM migration_0007_slots WHERE kind = 1) b WHERE true
  ON CONFLICT (kind, t) DO UPDATE SET views = excluded.views;
INSERT INTO site_buckets (kind, t, views)
  SELECT 2, b.t, (SELECT min(9007199254740991, total(s.count)) FROM series_slots s WHERE s.kind = 2 AND s.t = b.t)
  FROM (SELECT DISTINCT t FROM migration_0007_slots WHERE kind = 2) b WHERE true
  ON CONFLICT (kind, t) DO UPDATE SET views = excluded.views;

-- Sketches of the page-days whose registers changed, and the site's sketch of those days.
CREATE TEMP TABLE migration_0007_sketches (page TEXT NOT NULL, day INTEGER NOT NULL, PRIMARY KEY (page, day)) WITHOUT ROWID;
INSERT OR IGNORE INTO migration_0007_sketches SELECT page, t / 16384 FROM migration_0007_slots WHERE kind = 3;

-- A page-day's merged registers (the max over replicas), by its primary key's range, counted per rank.
CREATE TEMP TABLE migration_0007_ranks (page TEXT NOT NULL, day INTEGER NOT NULL, rank INTEGER NOT NULL, registers INTEGER NOT NULL, PRIMARY KEY (page, day, rank)) WITHOUT ROWID;
INSERT INTO migration_0007_ranks
  SELECT page, day, rank, count(*) FROM (
    SELECT d.page AS page, d.day AS day, max(s.count) AS rank
    FROM migration_0007_sketches d JOIN series_slots s ON s.page = d.page AND s.kind = 3 AND s.t >= d.day * 16384 AND s.t < (d.day + 1) * 16384
    GROUP BY d.page, d.day, s.t
  ) GROUP BY page, day, rank;

-- The site's registers of those days: the max over the pages with a sketch that day, as the
-- store rebuilds a day after a reset (sketches_by_day, then each page's registers of the day).
DELETE FROM site_registers WHERE day IN (SELECT day FROM migration_0007_sketches);
INSERT INTO site_registers (day, idx, rank)
  SELECT d.day, s.t - d.day * 16384, max(s.count)
  FROM (SELECT DISTINCT day FROM migration_0007_sketches) d
  JOIN sketches k ON k.day = d.day AND k.page <> ''
  JOIN series_slots s ON s.page = k.page AND s.kind = 3 AND s.t >= d.day * 16384 AND s.t < (d.day + 1) * 16384
  GROUP BY d.day, s.t;
INSERT OR IGNORE INTO migration_0007_sketches SELECT DISTINCT '', day FROM migration_0007_sketches;
INSERT INTO migration_0007_ranks
  SELECT '', day, rank, count(*) FROM site_registers WHERE day IN (SELECT day FROM migration_0007_sketches WHERE page = '') GROUP BY day, rank;

-- Each histogram as the store writes it (hyperloglog.ts `encodeHistogram`): 52 little-endian
-- u16, the count of registers at rank 0, 1, … 51; no row for a sketch with no register above 0.
-- (unhex and an ordered group_concat want SQLite 3.44 or newer; better-sqlite3 12 bundles 3.5x.)
DELETE FROM sketches WHERE (page, day) IN (SELECT page, day FROM migration_0007_sketches);
INSERT INTO sketches (page, day, histogram)
  WITH RECURSIVE ranks (rank) AS (SELECT 0 UNION ALL SELECT rank + 1 FROM ranks WHERE rank < 51),
  counts (page, day, rank, registers) AS (
    SELECT d.page, d.day, ranks.rank, CASE ranks.rank
      WHEN 0 THEN 16384 - coalesce((SELECT sum(r.registers) FROM migration_0007_ranks r WHERE r.page = d.page AND r.day = d.day), 0)
      ELSE coalesce((SELECT r.registers FROM migration_0007_ranks r WHERE r.page = d.page AND r.day = d.day AND r.rank = ranks.rank), 0) END
    FROM migration_0007_sketches d, ranks
  )
  SELECT page, day, unhex(group_concat(printf('%02X%02X', registers % 256, registers / 256), '' ORDER BY rank))
  FROM counts GROUP BY page, day HAVING min(CASE rank WHEN 0 THEN registers END) < 16384;

DROP TABLE migration_0007_ranks;
DROP TABLE migration_0007_sketches;
DROP TABLE migration_0007_slots;
