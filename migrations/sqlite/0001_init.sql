-- herald schema (SQLite). Times are UTC milliseconds since the epoch, so the same SQL runs on
-- PostgreSQL (migrations/postgres) through one store.

CREATE TABLE contacts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    address          TEXT NOT NULL UNIQUE,
    name             TEXT,
    lang             TEXT,
    tz               TEXT,
    consent          TEXT NOT NULL DEFAULT 'unknown',   -- unknown | opted_in | opted_out
    consent_at       BIGINT,
    last_inbound_at  BIGINT,
    marketing_stopped BIGINT NOT NULL DEFAULT 0,        -- WhatsApp user_preferences "stop"
    unreachable      TEXT,                              -- why the channel refuses this contact
    created_at       BIGINT NOT NULL
);

CREATE TABLE contact_labels (
    contact_id BIGINT NOT NULL REFERENCES contacts(id),
    label      TEXT NOT NULL,
    PRIMARY KEY (contact_id, label)
);
CREATE INDEX contact_labels_by_label ON contact_labels(label, contact_id);

CREATE TABLE contact_attrs (
    contact_id BIGINT NOT NULL REFERENCES contacts(id),
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (contact_id, key)
);

-- Consent history: rows are only ever added.
CREATE TABLE consent_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id BIGINT NOT NULL REFERENCES contacts(id),
    kind       TEXT NOT NULL,        -- opt_in | opt_out
    source     TEXT NOT NULL,        -- keyword | admin | import | telegram_start | whatsapp_preferences
    keyword    TEXT,
    at         BIGINT NOT NULL
);
CREATE INDEX consent_events_by_contact ON consent_events(contact_id, id);

-- Inbound messages already processed, so a redelivered webhook changes nothing.
CREATE TABLE inbound_seen (
    provider_id TEXT PRIMARY KEY,
    at          BIGINT NOT NULL
);

CREATE TABLE templates (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    name     TEXT NOT NULL,
    lang     TEXT NOT NULL,
    category TEXT NOT NULL,
    body     TEXT NOT NULL,
    params   BIGINT NOT NULL,
    UNIQUE (name, lang)
);

CREATE TABLE campaigns (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    title           TEXT NOT NULL,
    kind            TEXT NOT NULL DEFAULT 'one_time',   -- one_time | triggered
    status          TEXT NOT NULL DEFAULT 'draft',
    owner           TEXT,                               -- admin address told about progress
    audience        TEXT,
    text            TEXT,
    variants        TEXT NOT NULL DEFAULT '[]',         -- JSON array of extra texts
    template_name   TEXT,
    template_lang   TEXT,
    template_params TEXT NOT NULL DEFAULT '[]',         -- JSON array
    rate            DOUBLE PRECISION NOT NULL DEFAULT 20,
    delay_min_ms    BIGINT NOT NULL DEFAULT 0,
    delay_max_ms    BIGINT NOT NULL DEFAULT 0,
    batch_size      BIGINT NOT NULL DEFAULT 0,
    batch_pause_ms  BIGINT NOT NULL DEFAULT 0,
    scheduled_at    BIGINT,
    status_reason   TEXT,
    created_at      BIGINT NOT NULL,
    started_at      BIGINT,
    finished_at     BIGINT
);
CREATE INDEX campaigns_by_status ON campaigns(status, scheduled_at);

-- One row per campaign and contact. status: queued | claimed | sending | sent | delivered | read
-- | failed | skipped | unknown. `sending` is written before the channel is called: a row found in
-- it after a crash may have left, so it becomes `unknown` instead of being sent again.
CREATE TABLE recipients (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id     BIGINT NOT NULL REFERENCES campaigns(id),
    contact_id      BIGINT NOT NULL REFERENCES contacts(id),
    status          TEXT NOT NULL DEFAULT 'queued',
    reason          TEXT,
    error_code      TEXT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    lease_until     BIGINT,
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
    UNIQUE (campaign_id, contact_id)
);
CREATE INDEX recipients_due ON recipients(campaign_id, status, next_attempt_at);
CREATE INDEX recipients_by_contact ON recipients(contact_id, sent_at);
CREATE INDEX recipients_by_provider ON recipients(provider_id);

-- Business-initiated sends outside the service window, for the rolling-24 h tier limit.
CREATE TABLE tier_usage (
    contact_id BIGINT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX tier_usage_by_time ON tier_usage(at, contact_id);

CREATE TABLE triggers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    pattern     TEXT NOT NULL,
    is_regex    BIGINT NOT NULL,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id),
    created_at  BIGINT NOT NULL
);
