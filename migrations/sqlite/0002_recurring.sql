-- Recurring campaigns: the parent keeps the rule and its next run in `scheduled_at`; each run is a
-- child campaign (`parent_id`, `run_no`) with its own recipients, so "never twice" holds per run.
ALTER TABLE campaigns ADD COLUMN repeat_rule TEXT;
ALTER TABLE campaigns ADD COLUMN parent_id BIGINT REFERENCES campaigns(id);
ALTER TABLE campaigns ADD COLUMN run_no BIGINT NOT NULL DEFAULT 0;
CREATE INDEX campaigns_by_parent ON campaigns(parent_id);
