-- The WhatsApp Business account (SPEC section 6): templates synced from Meta next to declared
-- ones, the messaging limit and quality Meta reports, restrictions in force, and what Meta billed
-- for each message. Everything here survives a restart: a tier Meta lowered must not come back
-- as the configured one, nor a restriction be forgotten, because herald was restarted.

-- A synced template keeps Meta's whole description (`spec`, JSON: header, body, footer, buttons,
-- parameter format); a declared one (`/template add`) has none. Only APPROVED ones are sent.
ALTER TABLE templates ADD COLUMN status TEXT NOT NULL DEFAULT 'APPROVED';
ALTER TABLE templates ADD COLUMN source TEXT NOT NULL DEFAULT 'declared';  -- declared | synced
ALTER TABLE templates ADD COLUMN spec TEXT;

-- A campaign's mapping of a synced template: NAMED parameters' names (JSON list, in the order of
-- `template_params`), the TEXT header's parameter and the URL button's suffix.
ALTER TABLE campaigns ADD COLUMN template_names TEXT NOT NULL DEFAULT '[]';
ALTER TABLE campaigns ADD COLUMN template_header TEXT;
ALTER TABLE campaigns ADD COLUMN template_url TEXT;

-- Meta's `pricing` of the message a recipient got: the category it billed, or `free`.
ALTER TABLE recipients ADD COLUMN billed_category TEXT;
ALTER TABLE recipients ADD COLUMN pricing_model TEXT;

-- One row (id = 1). `tier` is the messaging limit Meta reported (a number or `unlimited`); while
-- it is NULL the configured WHATSAPP_TIER holds.
CREATE TABLE business_account (
    id             BIGINT PRIMARY KEY,
    tier           TEXT,
    tier_at        BIGINT,
    quality_event  TEXT,
    quality_at     BIGINT,
    account_event  TEXT,
    account_at     BIGINT,
    synced_at      BIGINT,
    sync_error     TEXT
);

-- Restrictions Meta placed on the account; a new ACCOUNT_RESTRICTION replaces them all.
-- `expires_at` NULL: until Meta lifts it.
CREATE TABLE account_restrictions (
    kind       TEXT PRIMARY KEY,
    expires_at BIGINT,
    since      BIGINT NOT NULL
);
