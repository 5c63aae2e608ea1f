-- Schema 1: one replica's G-Counter state, its version vector and its identity.
-- Page names compare with SQLite's default BINARY collation, which for TEXT stored as UTF-8 is
-- UTF-8 byte order: listPages pages in that order and the memory twin matches it.

-- Replica ids (32 hex characters) interned to small integers, so slots stay narrow.
-- `seq` is this node's version-vector entry for the replica: it holds every change of that
-- replica up to and including its commit `seq` (0: nothing known to be complete).
CREATE TABLE replicas (
  id INTEGER PRIMARY KEY,
  replica_id TEXT NOT NULL UNIQUE CHECK (length(replica_id) = 32),
  seq INTEGER NOT NULL DEFAULT 0 CHECK (seq >= 0)
);

-- One G-Counter slot per (page, replica): the replica's count for the page and the replica's
-- commit that last raised it.
CREATE TABLE slots (
  page TEXT NOT NULL,
  replica INTEGER NOT NULL REFERENCES replicas (id),
  count INTEGER NOT NULL CHECK (count >= 0),
  seq INTEGER NOT NULL CHECK (seq >= 0),
  PRIMARY KEY (page, replica)
) WITHOUT ROWID;

-- Serves "slots of replica R after cursor (seq, page)" for sync answers, in (seq, page) order.
CREATE INDEX slots_by_replica_seq ON slots (replica, seq, page);

-- Page totals (sum of the page's slots), maintained in the same transaction as the slots so
-- that reading a page is one lookup.
CREATE TABLE pages (
  page TEXT PRIMARY KEY,
  total INTEGER NOT NULL CHECK (total >= 0)
) WITHOUT ROWID;

-- The one-row identity: the replica this database counts under now, and the start epoch,
-- bumped at every start here and in the identity file beside the database (see identity.ts).
-- This replica's local seq is its version-vector entry in `replicas`.
CREATE TABLE meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  replica INTEGER NOT NULL REFERENCES replicas (id),
  epoch INTEGER NOT NULL CHECK (epoch >= 0)
);
