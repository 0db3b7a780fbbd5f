-- Drip sequences: a drip is a campaign of kind 'drip' holding `stop_on_reply`; each step is a
-- child campaign of kind 'drip_step' (`parent_id`, `run_no` = step number) sent `step_delay_ms`
-- after the contact's previous step.
ALTER TABLE campaigns ADD COLUMN step_delay_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN stop_on_reply BIGINT NOT NULL DEFAULT 1;
