-- A queued recipient row costs less to write (issue 16: resolving a 1,000,000-contact audience).
--
-- 1. No foreign keys on `recipients`, as on PostgreSQL since 0005: checking them looked up the
--    contact and the campaign of every row written (a fifth of a page's time, measured). Only
--    herald writes these rows, from contacts and campaigns it has just read, and it deletes
--    neither. SQLite drops a constraint only by rebuilding the table: the rows, their ids and
--    the table's AUTOINCREMENT counter are kept as they are.
-- 2. `recipients_by_contact` holds sent rows only (a third of a page's time): it serves the
--    reply lookup, which reads sent rows; the lookups of a contact's pending rows (an opt-out, a
--    reply stopping drips) go through the unique `(campaign_id, contact_id)` pair of each
--    campaign that can still have some instead.
CREATE TABLE recipients_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id     BIGINT NOT NULL,
    contact_id      BIGINT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'queued',
    reason          TEXT,
    error_code      TEXT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    claimed_by      TEXT,
    variant         BIGINT,
    provider_id     TEXT,
    cost_category   TEXT,
    outside_window  BIGINT NOT NULL DEFAULT 0,
    queued_at       BIGINT NOT NULL,
    sent_at         BIGINT,
    delivered_at    BIGINT,
    read_at         BIGINT,
    replied_at      BIGINT,
    failed_at       BIGINT,
    work_due        INTEGER GENERATED ALWAYS AS (
        CASE
            WHEN status = 'queued' THEN next_attempt_at
            WHEN status IN ('claimed', 'sending') THEN -1
        END
    ) VIRTUAL,
    billed_category TEXT,
    pricing_model   TEXT,
    clicked         TEXT,
    UNIQUE (campaign_id, contact_id)
);

INSERT INTO recipients_new (id, campaign_id, contact_id, status, reason, error_code, attempts,
    next_attempt_at, claimed_by, variant, provider_id, cost_category, outside_window, queued_at,
    sent_at, delivered_at, read_at, replied_at, failed_at, billed_category, pricing_model, clicked)
SELECT id, campaign_id, contact_id, status, reason, error_code, attempts,
    next_attempt_at, claimed_by, variant, provider_id, cost_category, outside_window, queued_at,
    sent_at, delivered_at, read_at, replied_at, failed_at, billed_category, pricing_model, clicked
FROM recipients;

-- The counter, not the highest id left: ids of deleted rows are never given out again.
DELETE FROM sqlite_sequence WHERE name = 'recipients_new';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'recipients_new', seq FROM sqlite_sequence WHERE name = 'recipients';

DROP TABLE recipients;
ALTER TABLE recipients_new RENAME TO recipients;

CREATE INDEX recipients_by_contact ON recipients(contact_id, sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX recipients_finished ON recipients(campaign_id, (COALESCE(sent_at, failed_at)))
    WHERE COALESCE(sent_at, failed_at) IS NOT NULL;
CREATE INDEX recipients_by_provider ON recipients(provider_id) WHERE provider_id IS NOT NULL;
CREATE INDEX recipients_work ON recipients(campaign_id, work_due, id) WHERE work_due IS NOT NULL;
