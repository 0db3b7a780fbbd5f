-- A campaign's audience is resolved into recipient rows in pages while it sends (issue 16),
-- instead of in one statement before the first message. A page is a range of contact ids;
-- `resolve_cursor` is the last contact id resolved, written in the same transaction as the
-- page's rows, so a crash loses a page whole or keeps it whole and the next page starts after
-- it. `resolve_end` is the highest contact id when the campaign started: contacts created
-- later are not in this send, as they were not when the whole audience was resolved at once.
-- Both NULL (every campaign before this, and audiences of listed addresses, resolved at once)
-- means there is nothing left to resolve; so does resolve_cursor >= resolve_end.
ALTER TABLE campaigns ADD COLUMN resolve_cursor BIGINT;
ALTER TABLE campaigns ADD COLUMN resolve_end BIGINT;
