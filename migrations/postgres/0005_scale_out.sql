-- Scale-out and large campaigns: indexes shaped for the dispatcher's hot queries, so a window
-- costs the same on a 1,000,000-recipient campaign as on a small one.

-- Claiming reads due queued rows of one campaign in (next_attempt_at, id) order: with `id` in
-- the index the LIMIT stops after one window instead of sorting every queued row.
DROP INDEX recipients_due;
CREATE INDEX recipients_claim ON recipients(campaign_id, status, next_attempt_at, id);

-- Lease recovery looks only at rows in flight, a handful even on a huge campaign.
CREATE INDEX recipients_leased ON recipients(lease_until) WHERE status IN ('claimed', 'sending');

-- The quality guard reads a campaign's last finished attempts.
CREATE INDEX recipients_finished ON recipients(campaign_id, (COALESCE(sent_at, failed_at)))
    WHERE COALESCE(sent_at, failed_at) IS NOT NULL;

-- Only sent rows have a provider id; queued rows need no entry (cheaper fan-out).
DROP INDEX recipients_by_provider;
CREATE INDEX recipients_by_provider ON recipients(provider_id) WHERE provider_id IS NOT NULL;

-- Starting a campaign writes one recipient row per audience contact in one INSERT ... SELECT
-- from `contacts` and the campaign row it just updated, so both references hold by construction,
-- and neither contacts nor campaigns are ever deleted. Checking them again row by row through
-- foreign-key triggers doubled the time to resolve a 1,000,000-contact audience. (SQLite checks
-- its foreign keys far more cheaply and cannot drop a constraint without rebuilding the table.)
ALTER TABLE recipients DROP CONSTRAINT recipients_campaign_id_fkey;
ALTER TABLE recipients DROP CONSTRAINT recipients_contact_id_fkey;
