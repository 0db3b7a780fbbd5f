-- The image, video or document a campaign sends (issue 14): JSON, `{"kind":"image","link":"https://…"}`
-- for media Meta and Telegram fetch themselves, or `{"kind":"image","file":{"sha256":…,"name":…,
-- "mime":…,"size":…}}` for a file an admin attached; NULL for none. Runs of a recurring campaign
-- copy it with the rest of the campaign.
ALTER TABLE campaigns ADD COLUMN media TEXT;

-- Attached files by their SHA-256: a file attached to several campaigns (or copied to a recurring
-- campaign's runs) is stored once. The channels upload it once per process and reuse the id they
-- are given; the bytes stay here so a restart, a second process or an expired WhatsApp media id
-- (30 days) can upload it again.
CREATE TABLE media_files (
    sha256     TEXT PRIMARY KEY,
    bytes      BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
