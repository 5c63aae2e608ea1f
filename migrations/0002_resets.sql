-- Schema 2: resets (src/crdt/reset.ts). Every slot counts in its page's reset epoch; a page
-- holds the slots of its highest epoch only. Existing rows are epoch 0 (never reset).
ALTER TABLE slots ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0 CHECK (epoch >= 0);

-- The page's reset epoch (the epoch of all its slots), beside its total, so an increment learns
-- both in one lookup. A page reset to zero keeps its row with total 0 (with its tombstone slot):
-- listings skip it until it counts again.
ALTER TABLE pages ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0 CHECK (epoch >= 0);
