-- A large audience is resolved in two halves at once on PostgreSQL (issue 16): two
-- transactions, each writing pages of its own half of the contact ids, on two of the server's
-- cores. `resolve_cursor` now walks the lower half up to `resolve_mid`; `resolve_upper_cursor`
-- walks the upper half from `resolve_mid` up to `resolve_end`. Each half's pages and its cursor
-- move in one transaction, as before, and a campaign is resolved when both halves are. A
-- campaign resolving when this runs goes on in one half (its upper half is empty).
ALTER TABLE campaigns ADD COLUMN resolve_mid BIGINT;
ALTER TABLE campaigns ADD COLUMN resolve_upper_cursor BIGINT;
UPDATE campaigns SET resolve_mid = resolve_end, resolve_upper_cursor = resolve_end
    WHERE resolve_end IS NOT NULL;

-- Each connection takes recipient ids a thousand at a time instead of one by one (the
-- sequence's row was written for every 32 ids: a tenth of a page's time, measured). Ids stay
-- unique and are never given out twice; rows written by different connections interleave in
-- blocks, and ids a connection took but did not use are skipped.
ALTER SEQUENCE recipients_id_seq CACHE 1000;
