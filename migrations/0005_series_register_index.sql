-- Schema 5: one index fewer on every register a view raises (issue 16's throughput).

-- series_registers_by_t put every new register row into a second B-tree at a random leaf (its
-- t is the day × 16384 + a hashed index): measured, 28 of the 71 pages a commit of 32 views by
-- new visitors wrote. It served one query, rebuilding a day's site sketch after a reset. That now
-- goes through the pages with a sketch that day (sketches_by_day) and each page's registers of
-- the day (the primary key's (page, kind, t) range), so it needs no index over t.
DROP INDEX series_registers_by_t;

-- A page has a `sketches` row for a day exactly when it has registers of that day above 0 (the
-- store writes the row with the registers). Only an insert touches this index: a raise rewrites
-- the histogram, not (page, day).
CREATE INDEX sketches_by_day ON sketches (day, page);
