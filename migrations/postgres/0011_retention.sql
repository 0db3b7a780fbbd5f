-- Retention (README "Retention"): what grows with traffic is pruned or summarised, so a database
-- that has run for months is the size of its recent traffic plus its contacts.

-- De-duplication rows are pruned by age, oldest first, in small batches: this index finds them
-- without reading the table.
CREATE INDEX inbound_seen_by_at ON inbound_seen(at);

-- A campaign whose recipient rows were summarised (its report now reads `campaign_summaries`).
-- Set in the same transaction as the summary; its rows are then deleted in batches, and every
-- report leaves the rows of a summarised campaign out, so nothing is counted twice meanwhile.
ALTER TABLE campaigns ADD COLUMN summarised_at BIGINT;

-- What a finished campaign's recipient rows said, kept when the rows go: every count of its
-- report (`report`, JSON), the send times for its chart as [milliseconds, sends] pairs
-- (`send_times`, JSON), and its per-recipient CSV export as deflated JSON lines (`export`).
CREATE TABLE campaign_summaries (
    campaign_id   BIGINT PRIMARY KEY REFERENCES campaigns(id),
    report        TEXT NOT NULL,
    send_times    TEXT NOT NULL,
    export        BYTEA NOT NULL,
    recipients    BIGINT NOT NULL,
    summarised_at BIGINT NOT NULL
);
