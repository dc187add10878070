-- AEGIS schema version 2 (SQLite): the transaction-id index becomes a table filled in bulk.
-- An index on random keys (ids are hashes) made every commit rewrite about one index page per
-- transaction. `transaction_ids` is instead filled 100,000 ids at a time, sorted by key, into
-- level 1; a level that reaches its capacity is moved down into the next, larger level
-- (levels 1 to 4, each ten times the one above), one slice of the key space per merge, so a
-- merge rewrites a small level often and a big one rarely and a little at a time. Each level is its own key range of the one B-tree, and a lookup seeks
-- each level. The table covers every block up to transaction_ids_state.indexed_through; the
-- node finds the transactions of the blocks above that height through an in-memory map
-- (docs/adr/0006-sqlite-deferred-id-index.md).

DROP INDEX transactions_id_idx;

CREATE TABLE transaction_ids (
    level         INTEGER NOT NULL CHECK (level BETWEEN 1 AND 4),
    id_prefix     BLOB    NOT NULL,                -- substr(transactions.id, 1, 8)
    block_height  BIGINT  NOT NULL,
    tx_index      INTEGER NOT NULL,
    PRIMARY KEY (level, id_prefix, block_height, tx_index)
) WITHOUT ROWID;

CREATE TABLE transaction_ids_state (
    singleton        INTEGER NOT NULL PRIMARY KEY CHECK (singleton = 1),
    indexed_through  BIGINT  NOT NULL CHECK (indexed_through >= 0)
);

-- Entries per level, kept with every merge. A full level is moved down one slice of the key
-- space per merge: moving_slices is how many (0 when the level is not being moved),
-- moving_next the next one.
CREATE TABLE transaction_id_levels (
    level          INTEGER NOT NULL PRIMARY KEY CHECK (level BETWEEN 1 AND 4),
    entries        BIGINT  NOT NULL CHECK (entries >= 0),
    moving_slices  BIGINT  NOT NULL DEFAULT 0 CHECK (moving_slices >= 0),
    moving_next    BIGINT  NOT NULL DEFAULT 0 CHECK (moving_next >= 0)
);

-- What version 1 stored goes to the last level.
INSERT INTO transaction_ids (level, id_prefix, block_height, tx_index)
    SELECT 4, substr(id, 1, 8), block_height, tx_index FROM transactions ORDER BY 2, 3, 4;

INSERT INTO transaction_id_levels (level, entries)
    VALUES (1, 0), (2, 0), (3, 0), (4, (SELECT COUNT(*) FROM transaction_ids));

INSERT INTO transaction_ids_state (singleton, indexed_through)
    VALUES (1, (SELECT coalesce(max(height), 0) FROM blocks));
