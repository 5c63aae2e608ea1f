-- Schema 4: views over time and unique visitors (src/crdt/series.ts, src/crdt/hyperloglog.ts).

-- The series slots of a page, beside its total slots: per replica, its count in an hour bucket
-- (kind 1, t = hours since the epoch, UTC), a day bucket (kind 2, t = days since the epoch) or its
-- rank in a register of the day's visitor sketch (kind 3, t = day × 16384 + register index). Like
-- `slots`: owned by the replica, max-merged, the replica's commit that last raised it, the page's
-- reset epoch. Sparse: a row exists only once it counts (count >= 1).
CREATE TABLE series_slots (
  page TEXT NOT NULL,
  kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 3),
  t INTEGER NOT NULL CHECK (t >= 0),
  replica INTEGER NOT NULL REFERENCES replicas (id),
  count INTEGER NOT NULL CHECK (count >= 1),
  seq INTEGER NOT NULL CHECK (seq >= 1),
  epoch INTEGER NOT NULL DEFAULT 0 CHECK (epoch >= 0),
  PRIMARY KEY (page, kind, t, replica)
) WITHOUT ROWID;

-- "Everything of R after s" for sync answers, in (seq, page, kind, t) order, as slots_by_replica_seq.
CREATE INDEX series_slots_by_replica_seq ON series_slots (replica, seq, page, kind, t);
-- Pruning hour buckets past the retention, and rebuilding a day's site sketch after a reset,
-- without a scan. Only inserts touch them (a raise changes count and seq, not t).
CREATE INDEX series_hours_by_t ON series_slots (t) WHERE kind = 1;
CREATE INDEX series_registers_by_t ON series_slots (t) WHERE kind = 3;

-- Site-wide views per bucket (kind 1 hour, 2 day): the sum of every page's buckets, kept in the
-- same transaction as the series slots (like `pages.total`), so the site's series is a range read.
CREATE TABLE site_buckets (
  kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 2),
  t INTEGER NOT NULL,
  views INTEGER NOT NULL CHECK (views >= 0),
  PRIMARY KEY (kind, t)
) WITHOUT ROWID;

-- The site's visitor sketch per day: per register, the max over every page's registers (the
-- visitor key does not depend on the page, so the union of the pages' sketches is the site's).
CREATE TABLE site_registers (
  day INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  rank INTEGER NOT NULL CHECK (rank >= 1),
  PRIMARY KEY (day, idx)
) WITHOUT ROWID;

-- Per (page, day), and per day for the site (page ''), how many registers of the merged sketch
-- hold each rank (hyperloglog.ts, 52 little-endian u16): the estimate without reading registers.
CREATE TABLE sketches (
  page TEXT NOT NULL,
  day INTEGER NOT NULL,
  histogram BLOB NOT NULL,
  PRIMARY KEY (page, day)
) WITHOUT ROWID;

-- The digest counts day buckets and registers (not hour buckets, which expire by the clock): a
-- change by anything but the store leaves it unknown, as for `slots` (migration 0003).
CREATE TRIGGER store_stats_series_added AFTER INSERT ON series_slots
WHEN NEW.kind <> 1
BEGIN UPDATE store_stats SET digest = NULL WHERE id = 1 AND digest IS NOT NULL; END;
CREATE TRIGGER store_stats_series_removed AFTER DELETE ON series_slots
WHEN OLD.kind <> 1
BEGIN UPDATE store_stats SET digest = NULL WHERE id = 1 AND digest IS NOT NULL; END;
CREATE TRIGGER store_stats_series_changed AFTER UPDATE OF count, epoch, page, replica, kind, t ON series_slots
WHEN NEW.kind <> 1 OR OLD.kind <> 1
BEGIN UPDATE store_stats SET digest = NULL WHERE id = 1 AND digest IS NOT NULL; END;

-- A store of schema 3 had no series: the digest it stored stays right.
