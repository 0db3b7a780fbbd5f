-- Leases move out of `recipients` into a table of their own, one row per claim, so that claiming
-- a recipient changes no indexed value and PostgreSQL can write it in place (a HOT update, with
-- no new index entries). Before, a claim and its outcome each added an entry to every index of
-- `recipients`; sending at full speed spent about a third of the database's work on that.

-- One row per claim: whose it is, until when, and the recipients it took (a JSON array of ids).
-- A heartbeat extends the claim's row, not every recipient's; recovery reads the claims that
-- ran out and looks at their recipients alone.
CREATE TABLE leases (
    id            BIGSERIAL PRIMARY KEY,
    worker        TEXT NOT NULL,
    until         BIGINT NOT NULL,
    recipient_ids TEXT NOT NULL
);
CREATE INDEX leases_by_until ON leases(until);

-- Rows in flight at the upgrade keep their lease, as one claim per worker and lease end.
INSERT INTO leases (worker, until, recipient_ids)
    SELECT claimed_by, lease_until, json_agg(id ORDER BY id)::text
    FROM recipients
    WHERE status IN ('claimed', 'sending') AND claimed_by IS NOT NULL AND lease_until IS NOT NULL
    GROUP BY claimed_by, lease_until;
ALTER TABLE recipients DROP COLUMN lease_until;

-- `work_due` now keeps a row's due time while it is in flight: a claim changes `status` alone,
-- which no index holds. The claim and the next due time look for `status = 'queued'` among the
-- due rows (the rows in flight are the first few of them); "anything left?" counts both.
ALTER TABLE recipients DROP COLUMN work_due;
ALTER TABLE recipients ADD COLUMN work_due BIGINT GENERATED ALWAYS AS (
    CASE WHEN status IN ('queued', 'claimed', 'sending') THEN next_attempt_at END
) STORED;
CREATE INDEX recipients_work ON recipients(campaign_id, work_due, id) WHERE work_due IS NOT NULL;

-- A recipient is written up to four times after it is queued (claim, outcome, delivered, read);
-- the in-place ones need room on the row's own page. Half of each new page is left free.
ALTER TABLE recipients SET (fillfactor = 50);
