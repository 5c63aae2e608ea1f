-- Schema 2: what a start and a metrics scrape would otherwise count or scan, kept in one row, so
-- neither grows with the number of pages (issue 14: 4.5 s starts and 1.45 s scrapes at 1.1 M pages).

-- `pages`, `slots` and `replicas` are the row counts of those tables, kept by the triggers below
-- in the same transaction as the rows. `digest` is the store's digest sum of every slot (32 hex
-- characters, see src/crdt/g-counter.ts): the store writes it at the end of each transaction that
-- changes a slot. NULL means "not known": any change of a slot's count sets it to NULL first, so
-- a write that does not come from the store (the sqlite3 shell, an older tool) can never leave a
-- stale digest behind; the store then rescans once at its next open and stores the sum again.
CREATE TABLE store_stats (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  pages INTEGER NOT NULL CHECK (pages >= 0),
  slots INTEGER NOT NULL CHECK (slots >= 0),
  replicas INTEGER NOT NULL CHECK (replicas >= 0),
  digest TEXT CHECK (digest IS NULL OR length(digest) = 32)
);

-- Counted once here (the last time), digest unknown until the store's first open scans it.
INSERT INTO store_stats (id, pages, slots, replicas, digest)
VALUES (1, (SELECT count(*) FROM pages), (SELECT count(*) FROM slots), (SELECT count(*) FROM replicas), NULL);

-- An upsert (INSERT … ON CONFLICT DO UPDATE) that updates fires the UPDATE triggers, not these.
CREATE TRIGGER store_stats_page_added AFTER INSERT ON pages
BEGIN UPDATE store_stats SET pages = pages + 1 WHERE id = 1; END;
CREATE TRIGGER store_stats_page_removed AFTER DELETE ON pages
BEGIN UPDATE store_stats SET pages = pages - 1 WHERE id = 1; END;

CREATE TRIGGER store_stats_replica_added AFTER INSERT ON replicas
BEGIN UPDATE store_stats SET replicas = replicas + 1 WHERE id = 1; END;
CREATE TRIGGER store_stats_replica_removed AFTER DELETE ON replicas
BEGIN UPDATE store_stats SET replicas = replicas - 1 WHERE id = 1; END;

CREATE TRIGGER store_stats_slot_added AFTER INSERT ON slots
BEGIN UPDATE store_stats SET slots = slots + 1, digest = NULL WHERE id = 1; END;
CREATE TRIGGER store_stats_slot_removed AFTER DELETE ON slots
BEGIN UPDATE store_stats SET slots = slots - 1, digest = NULL WHERE id = 1; END;
CREATE TRIGGER store_stats_slot_changed AFTER UPDATE OF count, page, replica ON slots
WHEN NEW.count IS NOT OLD.count OR NEW.page IS NOT OLD.page OR NEW.replica IS NOT OLD.replica
BEGIN UPDATE store_stats SET digest = NULL WHERE id = 1 AND digest IS NOT NULL; END;
-- The digest hashes replica ids as text: renaming one changes every term of its slots.
CREATE TRIGGER store_stats_replica_renamed AFTER UPDATE OF replica_id ON replicas
WHEN NEW.replica_id IS NOT OLD.replica_id
BEGIN UPDATE store_stats SET digest = NULL WHERE id = 1; END;
