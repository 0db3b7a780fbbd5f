-- A queued recipient row costs less to write (issue 16: resolving a 1,000,000-contact audience).
-- `recipients_by_contact` serves the reply lookup, which reads sent rows only; the lookups of
-- a contact's pending rows (an opt-out, a reply stopping drips) go through the unique
-- `(campaign_id, contact_id)` pair of each campaign that can still have some instead. So only
-- sent rows need an entry: a queued row is written with one index entry fewer, and claiming it
-- (an update that moves its row) adds none there either.
DROP INDEX recipients_by_contact;
CREATE INDEX recipients_by_contact ON recipients(contact_id, sent_at) WHERE sent_at IS NOT NULL;
