-- The quality guard keeps each campaign's last finished sends in memory (src/engine/quality.rs)
-- and reads those rows by key, so no index on the time a row finished is needed: every message
-- sent wrote an entry in it (about 3 us of PostgreSQL's CPU a message, a sixth of the outcome's
-- write).
DROP INDEX IF EXISTS recipients_finished;
