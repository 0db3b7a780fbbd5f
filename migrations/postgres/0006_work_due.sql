-- Where a recipient stands in its campaign's work, as one indexed value: the time a queued one
-- is due, -1 for one in flight (claimed or sending), NULL once it is finished. The claim, the
-- "anything left?" checks and the next due time read it instead of `status`.
--
-- Why not index `status` itself: every delivery status (sent -> delivered -> read) changes
-- `status`, and PostgreSQL can update a row in place (a HOT update, with no new index entries)
-- only when no indexed value changes. This value stays NULL through all of them, so a status
-- webhook's write touches the table alone; with `status` in the index, each one inserted an entry
-- into every index of the table, which was most of the database's work under a webhook flood.
ALTER TABLE recipients ADD COLUMN work_due BIGINT GENERATED ALWAYS AS (
    CASE
        WHEN status = 'queued' THEN next_attempt_at
        WHEN status IN ('claimed', 'sending') THEN -1
    END
) STORED;

DROP INDEX recipients_claim;
CREATE INDEX recipients_work ON recipients(campaign_id, work_due, id) WHERE work_due IS NOT NULL;

-- Only rows in flight hold a lease: every write that moves a row out of `claimed` or `sending`
-- clears it (a failure reported by a status webhook did not, before this). Keyed on the lease
-- alone for the same reason as above.
UPDATE recipients SET lease_until = NULL
    WHERE lease_until IS NOT NULL AND status NOT IN ('claimed', 'sending');
DROP INDEX recipients_leased;
CREATE INDEX recipients_leased ON recipients(lease_until) WHERE lease_until IS NOT NULL;

-- An in-place update needs room on the row's own page: leave a tenth of each page free for the
-- delivery statuses that follow a send.
ALTER TABLE recipients SET (fillfactor = 90);
