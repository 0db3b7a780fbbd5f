-- A large audience is resolved in two halves at once on PostgreSQL (issue 16). SQLite has one
-- writer, so it resolves one half only: `resolve_mid` is `resolve_end` and the upper half is
-- empty. The columns are the same on both backends so the queries are.
ALTER TABLE campaigns ADD COLUMN resolve_mid INTEGER;
ALTER TABLE campaigns ADD COLUMN resolve_upper_cursor INTEGER;
UPDATE campaigns SET resolve_mid = resolve_end, resolve_upper_cursor = resolve_end
    WHERE resolve_end IS NOT NULL;
