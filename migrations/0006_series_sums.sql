-- Schema 6: the site's day buckets can be summed again from the slots (src/store/sqlite-series.ts).

-- A site bucket reads the sum of every page's buckets of its (kind, t), saturating at 2^53 - 1
-- (MAX_TOTAL, src/crdt/g-counter.ts). Raises keep it exactly (min(MAX, views + d)); a reset that
-- drops slots from a saturated bucket cannot subtract from it, so that bucket is summed again from
-- its slots: hour buckets through series_hours_by_t, day buckets through this index. Like the
-- others, only inserts touch it (a raise changes count and seq, not t).
CREATE INDEX series_days_by_t ON series_slots (t) WHERE kind = 2;
