-- Where a recipient stands in its campaign's work, as one indexed value: the time a queued one
-- is due, -1 for one in flight (claimed or sending), NULL once it is finished. The claim, the
-- "anything left?" checks and the next due time read it instead of `status`. (PostgreSQL needs
-- it to update rows in place when a delivery status arrives; SQLite keeps the same shape so both
-- run the same queries.)
ALTER TABLE recipients ADD COLUMN work_due INTEGER GENERATED ALWAYS AS (
    CASE
        WHEN status = 'queued' THEN next_attempt_at
        WHEN status IN ('claimed', 'sending') THEN -1
    END
) VIRTUAL;

DROP INDEX recipients_claim;
CREATE INDEX recipients_work ON recipients(campaign_id, work_due, id) WHERE work_due IS NOT NULL;

-- Only rows in flight hold a lease: every write that moves a row out of `claimed` or `sending`
-- clears it (a failure reported by a status webhook did not, before this).
UPDATE recipients SET lease_until = NULL
    WHERE lease_until IS NOT NULL AND status NOT IN ('claimed', 'sending');
DROP INDEX recipients_leased;
CREATE INDEX recipients_leased ON recipients(lease_until) WHERE lease_until IS NOT NULL;
