-- One spelling per thing: a phone number is one contact at `wa:<digits>` however it was typed, and
-- console names, labels and attribute keys are case-insensitive, so they are stored lower-case.
-- Before, one number could be two or three contacts: `+15550001` (typed on the console), `15550001`
-- (a CSV import) and `wa:15550001` (WhatsApp), each with part of its history, so an opt-out sent
-- from WhatsApp did not stop a campaign that had the number from a file.
--
-- The contacts whose addresses spell one canonical address become one: the contact already at the
-- canonical address if there is one, else the oldest (lowest id), which then takes that address. It
-- gets every consent event, every label and tier-use row, the attributes it lacks (its own value
-- wins on a shared key), a name, language, time zone and unreachable reason if it had none, the
-- latest inbound message, any marketing stop and the earliest creation time. Its consent is the
-- most recent one (by `consent_at`); on a tie an opt-out beats an opt-in beats unknown, and an
-- opt-out with no time is never passed over: an opt-out is lost only to a later opt-in. Queued
-- sends of a merged contact that ends up opted out are skipped, as an opt-out does. Where two
-- spellings were on one campaign, the recipient row that went furthest stays (sent; then possibly
-- sent, since sending it again could be twice; else the survivor's) and the other is deleted. A
-- lease may still list a deleted recipient's id: recovery joins the ids to `recipients` and so
-- passes over it.
--
-- `lower` is ASCII-only on SQLite, as on PostgreSQL's "C" collation its migration uses: the same
-- rows change on both.

-- Every contact whose address changes, and every contact already at one of the new addresses.
CREATE TEMP TABLE one_spelling (
    id        BIGINT PRIMARY KEY,
    canonical TEXT NOT NULL
);
INSERT INTO one_spelling (id, canonical)
    SELECT id, canonical FROM (
        SELECT id, address, CASE
            WHEN substr(address, 1, 1) = '+' AND length(address) BETWEEN 8 AND 16
                AND substr(address, 2) NOT GLOB '*[^0-9]*' THEN 'wa:' || substr(address, 2)
            WHEN length(address) BETWEEN 7 AND 15 AND address NOT GLOB '*[^0-9]*'
                THEN 'wa:' || address
            WHEN substr(address, 1, 3) IN ('wa:', 'tg:') THEN address
            ELSE lower(address)
        END AS canonical
        FROM contacts
    ) AS c
    WHERE canonical <> address;
INSERT INTO one_spelling (id, canonical)
    SELECT id, address FROM contacts WHERE address IN (SELECT canonical FROM one_spelling);
CREATE INDEX one_spelling_by_canonical ON one_spelling(canonical);

-- One row per canonical address: who survives, and whose consent it keeps.
CREATE TEMP TABLE one_spelling_group (
    canonical    TEXT PRIMARY KEY,
    survivor     BIGINT NOT NULL,
    members      BIGINT NOT NULL,
    consent_from BIGINT
);
INSERT INTO one_spelling_group (canonical, survivor, members)
    SELECT s.canonical,
           COALESCE(MIN(CASE WHEN c.address = s.canonical THEN c.id END), MIN(c.id)),
           COUNT(*)
    FROM one_spelling s JOIN contacts c ON c.id = s.id
    GROUP BY s.canonical;
UPDATE one_spelling_group SET consent_from = (
    SELECT c.id
    FROM one_spelling s
        JOIN contacts c ON c.id = s.id
        JOIN one_spelling_group h ON h.canonical = s.canonical
    WHERE s.canonical = one_spelling_group.canonical
    ORDER BY
        CASE WHEN c.consent_at IS NULL AND c.consent = 'opted_out' THEN 2
             WHEN c.consent_at IS NOT NULL THEN 1
             ELSE 0 END DESC,
        c.consent_at DESC,
        CASE c.consent WHEN 'opted_out' THEN 2 WHEN 'opted_in' THEN 1 ELSE 0 END DESC,
        CASE WHEN c.id = h.survivor THEN 0 ELSE 1 END,
        c.id
    LIMIT 1
);

-- The contacts merged away, each with the one it merges into.
CREATE TEMP TABLE one_spelling_merged (
    id       BIGINT PRIMARY KEY,
    survivor BIGINT NOT NULL
);
INSERT INTO one_spelling_merged (id, survivor)
    SELECT s.id, g.survivor
    FROM one_spelling s JOIN one_spelling_group g ON g.canonical = s.canonical
    WHERE s.id <> g.survivor;

UPDATE contacts SET
    name = COALESCE(contacts.name, (
        SELECT o.name FROM one_spelling_merged m JOIN contacts o ON o.id = m.id
        WHERE m.survivor = contacts.id AND o.name IS NOT NULL ORDER BY o.id LIMIT 1)),
    lang = COALESCE(contacts.lang, (
        SELECT o.lang FROM one_spelling_merged m JOIN contacts o ON o.id = m.id
        WHERE m.survivor = contacts.id AND o.lang IS NOT NULL ORDER BY o.id LIMIT 1)),
    tz = COALESCE(contacts.tz, (
        SELECT o.tz FROM one_spelling_merged m JOIN contacts o ON o.id = m.id
        WHERE m.survivor = contacts.id AND o.tz IS NOT NULL ORDER BY o.id LIMIT 1)),
    unreachable = COALESCE(contacts.unreachable, (
        SELECT o.unreachable FROM one_spelling_merged m JOIN contacts o ON o.id = m.id
        WHERE m.survivor = contacts.id AND o.unreachable IS NOT NULL ORDER BY o.id LIMIT 1)),
    consent = (SELECT w.consent FROM contacts w WHERE w.id = g.consent_from),
    consent_at = (SELECT w.consent_at FROM contacts w WHERE w.id = g.consent_from),
    last_inbound_at = (
        SELECT MAX(o.last_inbound_at) FROM one_spelling s JOIN contacts o ON o.id = s.id
        WHERE s.canonical = g.canonical),
    marketing_stopped = (
        SELECT MAX(o.marketing_stopped) FROM one_spelling s JOIN contacts o ON o.id = s.id
        WHERE s.canonical = g.canonical),
    created_at = (
        SELECT MIN(o.created_at) FROM one_spelling s JOIN contacts o ON o.id = s.id
        WHERE s.canonical = g.canonical)
FROM one_spelling_group g
WHERE contacts.id = g.survivor AND g.members > 1;

UPDATE consent_events SET contact_id = m.survivor
    FROM one_spelling_merged m WHERE consent_events.contact_id = m.id;
UPDATE tier_usage SET contact_id = m.survivor
    FROM one_spelling_merged m WHERE tier_usage.contact_id = m.id;

-- Labels: lower-case, and the union of the merged contacts'.
INSERT INTO contact_labels (contact_id, label)
    SELECT DISTINCT COALESCE(m.survivor, l.contact_id), lower(l.label)
    FROM contact_labels l LEFT JOIN one_spelling_merged m ON m.id = l.contact_id
    WHERE m.id IS NOT NULL OR l.label <> lower(l.label)
    ON CONFLICT DO NOTHING;
DELETE FROM contact_labels
    WHERE contact_id IN (SELECT id FROM one_spelling_merged) OR label <> lower(label);

-- Attributes: keys lower-case with `_` for spaces and dashes. On one key, the survivor's own value
-- wins over a merged contact's, and a key already spelled so over one respelled.
CREATE TEMP TABLE one_spelling_attrs AS
    SELECT COALESCE(m.survivor, a.contact_id) AS contact_id,
           replace(replace(lower(a.key), ' ', '_'), '-', '_') AS key,
           a.value AS value,
           CASE WHEN m.id IS NULL THEN 0 ELSE 1 END AS merged,
           CASE WHEN a.key = replace(replace(lower(a.key), ' ', '_'), '-', '_') THEN 0 ELSE 1 END
               AS respelled,
           a.contact_id AS old_contact,
           a.key AS old_key
    FROM contact_attrs a LEFT JOIN one_spelling_merged m ON m.id = a.contact_id
    WHERE m.id IS NOT NULL OR a.key <> replace(replace(lower(a.key), ' ', '_'), '-', '_');
DELETE FROM contact_attrs
    WHERE contact_id IN (SELECT id FROM one_spelling_merged)
       OR key <> replace(replace(lower(key), ' ', '_'), '-', '_');
-- A row left in place (the survivor's, already spelled so) beats every moved one.
INSERT INTO contact_attrs (contact_id, key, value)
    SELECT contact_id, key, value FROM (
        SELECT contact_id, key, value, ROW_NUMBER() OVER (
            PARTITION BY contact_id, key ORDER BY merged, respelled, old_contact, old_key
        ) AS place
        FROM one_spelling_attrs
    ) AS x
    WHERE place = 1
    ON CONFLICT DO NOTHING;

-- Recipients: one row per campaign and merged contact, the one that went furthest.
CREATE TEMP TABLE one_spelling_recipients AS
    SELECT r.id AS id, ROW_NUMBER() OVER (
        PARTITION BY r.campaign_id, COALESCE(m.survivor, r.contact_id)
        ORDER BY
            CASE WHEN r.sent_at IS NOT NULL OR r.status IN ('sent', 'delivered', 'read') THEN 2
                 WHEN r.status IN ('sending', 'unknown') THEN 1
                 ELSE 0 END DESC,
            CASE WHEN m.id IS NULL THEN 0 ELSE 1 END,
            r.id
    ) AS place
    FROM recipients r LEFT JOIN one_spelling_merged m ON m.id = r.contact_id
    WHERE m.id IS NOT NULL
       OR r.contact_id IN (SELECT survivor FROM one_spelling_group WHERE members > 1);
DELETE FROM recipients WHERE id IN (SELECT id FROM one_spelling_recipients WHERE place > 1);
UPDATE recipients SET contact_id = m.survivor
    FROM one_spelling_merged m WHERE recipients.contact_id = m.id;

-- A merged contact that ends up opted out comes off every campaign not yet sent to them.
UPDATE recipients SET status = 'skipped', reason = 'opted_out'
    WHERE status IN ('queued', 'claimed') AND contact_id IN (
        SELECT g.survivor FROM one_spelling_group g JOIN contacts c ON c.id = g.survivor
        WHERE g.members > 1 AND c.consent = 'opted_out');

DELETE FROM contacts WHERE id IN (SELECT id FROM one_spelling_merged);
UPDATE contacts SET address = g.canonical
    FROM one_spelling_group g WHERE contacts.id = g.survivor AND contacts.address <> g.canonical;

-- Post-campaign actions name labels and attribute keys too; an attribute's value keeps its case.
UPDATE campaign_actions SET action = substr(action, 1, 7) || lower(substr(action, 8))
    WHERE substr(action, 1, 7) IN ('label+=', 'label-=');
UPDATE campaign_actions SET action = 'attr.'
        || replace(replace(lower(substr(action, 6, instr(action, '=') - 6)), ' ', '_'), '-', '_')
        || substr(action, instr(action, '='))
    WHERE substr(action, 1, 5) = 'attr.' AND instr(action, '=') > 6;

DROP TABLE one_spelling_recipients;
DROP TABLE one_spelling_attrs;
DROP TABLE one_spelling_merged;
DROP TABLE one_spelling_group;
DROP TABLE one_spelling;
