-- Schema 3: what a start and a metrics scrape would otherwise count or scan, kept in one row, so
-- neither grows with the number of pages (issue 14: 4.5 s starts and 1.45 s scrapes at 1.1 M pages).

-- `pages` is the number of pages that count (total > 0: a page reset to zero keeps its row but is
-- left out, as in listings and stats), `slots` and `replicas` the row counts of those tables, all
-- kept by the triggers below in the same transaction as the rows. `digest` is the store's digest sum of every slot (32 hex
-- characters, see src/crdt/g-counter.ts: a term per counted slot at its epoch and one per reset
-- page's epoch): the store writes it at the end of each transaction that changes a slot. NULL means
-- "not known": any change of a slot's count or epoch, or of a page's epoch, sets it to NULL first, so
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
VALUES (1, (SELECT count(*) FROM pages WHERE total > 0), (SELECT count(*) FROM slots), (SELECT count(*) FROM replicas), NULL);

-- An upsert (INSERT … ON CONFLICT DO UPDATE) that updates fires the UPDATE triggers, not these.
-- A page counts while its total is above 0; a reset (total 0) leaves it out, its next view back in.
CREATE TRIGGER store_stats_page_added AFTER INSERT ON pages
WHEN NEW.total > 0
BEGIN UPDATE store_stats SET pages = pages + 1 WHERE id = 1; END;
CREATE TRIGGER store_stats_page_removed AFTER DELETE ON pages
WHEN OLD.total > 0
BEGIN UPDATE store_stats SET pages = pages - 1 WHERE id = 1; END;
CREATE TRIGGER store_stats_page_counted AFTER UPDATE OF total ON pages
WHEN (NEW.total > 0) <> (OLD.total > 0)
BEGIN UPDATE store_stats SET pages = pages + (NEW.total > 0) - (OLD.total > 0) WHERE id = 1; END;
-- A reset page's epoch is a term of the digest.
CREATE TRIGGER store_stats_page_epoch_added AFTER INSERT ON pages
WHEN NEW.epoch > 0
BEGIN UPDATE store_stats SET digest = NULL WHERE id = 1; END;
CREATE TRIGGER store_stats_page_epoch_removed AFTER DELETE ON pages
WHEN OLD.epoch > 0
BEGIN UPDATE store_stats SET digest = NULL WHERE id = 1; END;
CREATE TRIGGER store_stats_page_epoch_changed AFTER UPDATE OF epoch, page ON pages
WHEN NEW.epoch IS NOT OLD.epoch OR (NEW.page IS NOT OLD.page AND NEW.epoch > 0)
BEGIN UPDATE store_stats SET digest = NULL WHERE id = 1; END;

CREATE TRIGGER store_stats_replica_added AFTER INSERT ON replicas
BEGIN UPDATE store_stats SET replicas = replicas + 1 WHERE id = 1; END;
CREATE TRIGGER store_stats_replica_removed AFTER DELETE ON replicas
BEGIN UPDATE store_stats SET replicas = replicas - 1 WHERE id = 1; END;

CREATE TRIGGER store_stats_slot_added AFTER INSERT ON slots
BEGIN UPDATE store_stats SET slots = slots + 1, digest = NULL WHERE id = 1; END;
CREATE TRIGGER store_stats_slot_removed AFTER DELETE ON slots
BEGIN UPDATE store_stats SET slots = slots - 1, digest = NULL WHERE id = 1; END;
CREATE TRIGGER store_stats_slot_changed AFTER UPDATE OF count, epoch, page, replica ON slots
WHEN NEW.count IS NOT OLD.count OR NEW.epoch IS NOT OLD.epoch OR NEW.page IS NOT OLD.page OR NEW.replica IS NOT OLD.replica
BEGIN UPDATE store_stats SET digest = NULL WHERE id = 1 AND digest IS NOT NULL; END;
-- The digest hashes replica ids as text: renaming one changes every term of its slots.
CREATE TRIGGER store_stats_replica_renamed AFTER UPDATE OF replica_id ON replicas
WHEN NEW.replica_id IS NOT OLD.replica_id
BEGIN UPDATE store_stats SET digest = NULL WHERE id = 1; END;
