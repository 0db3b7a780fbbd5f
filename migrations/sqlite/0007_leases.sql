-- Leases move out of `recipients` into a table of their own, one row per claim (PostgreSQL then
-- writes a claimed recipient in place; SQLite keeps the same shape so both run the same queries).

-- One row per claim: whose it is, until when, and the recipients it took (a JSON array of ids).
CREATE TABLE leases (
    id            INTEGER PRIMARY KEY,
    worker        TEXT NOT NULL,
    until         INTEGER NOT NULL,
    recipient_ids TEXT NOT NULL
);
CREATE INDEX leases_by_until ON leases(until);

-- Rows in flight at the upgrade keep their lease, as one claim per worker and lease end.
INSERT INTO leases (worker, until, recipient_ids)
    SELECT claimed_by, lease_until, json_group_array(id)
    FROM recipients
    WHERE status IN ('claimed', 'sending') AND claimed_by IS NOT NULL AND lease_until IS NOT NULL
    GROUP BY claimed_by, lease_until;
DROP INDEX recipients_leased;
ALTER TABLE recipients DROP COLUMN lease_until;

-- `work_due` keeps its meaning here (-1 while in flight): SQLite has no in-place updates to win,
-- and the claim would pass over the rows in flight one by one. PostgreSQL's keeps the due time;
-- the queries read both alike (they look for `status = 'queued'` among rows due from 0 on).
