-- AEGIS schema version 2 (PostgreSQL): nothing changes. Version 2 moves SQLite's
-- transaction-id index into a table filled in bulk (migrations/sqlite/0002); PostgreSQL keeps
-- its hash index on transactions.id, whose 4-byte entries cost little at each commit
-- (docs/adr/0006-sqlite-deferred-id-index.md).
SELECT 1;
