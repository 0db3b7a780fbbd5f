//! Migration 0008 (one spelling per thing) on a database the previous release wrote: the spellings
//! of one phone number (`+15550001` typed on the console, `15550001` from a CSV file,
//! `wa:15550001` from WhatsApp) become one contact at `wa:<digits>` with the whole history of all
//! of them, an opt-out is never lost on the way, and names, labels and attribute keys end up
//! lower-case. The database is built by migrations 1–7 alone and filled with raw SQL, as that
//! release wrote it; `Store::connect` then applies migration 8.

use sqlx::{AnyPool, Row};

use herald::store::Store;

use crate::support::db::{migrated_to, TestDb};

/// A database as the previous release left it: migrations 1–7, then `rows` (raw SQL).
async fn previous_release(db: &TestDb, rows: &[&str]) {
    migrated_to(db, 7, rows).await;
}

/// The release under test opens the database, which applies migration 8.
async fn upgrade(db: &TestDb) -> Store {
    let store = Store::connect(&db.url).await.expect("migration 8 applies");
    // Later migrations apply too; this one must be among them.
    let applied: i64 = sqlx::query("SELECT COUNT(*) AS v FROM _sqlx_migrations WHERE version = 8")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get("v");
    assert_eq!(applied, 1);
    store
}

/// Every contact: (id, address, consent, consent_at), by id.
async fn contacts(pool: &AnyPool) -> Vec<(i64, String, String, Option<i64>)> {
    sqlx::query("SELECT id, address, consent, consent_at FROM contacts ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get("id"),
                r.get("address"),
                r.get("consent"),
                r.get("consent_at"),
            )
        })
        .collect()
}

/// Each row of `sql` (one `$1` for an address) as text, its columns joined by `|`.
async fn rows_of(pool: &AnyPool, sql: &str, address: &str) -> Vec<String> {
    let rows = sqlx::query(sql)
        .bind(address)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| {
                    if let Ok(Some(n)) = r.try_get::<Option<i64>, _>(i) {
                        n.to_string()
                    } else {
                        r.get::<Option<String>, _>(i)
                            .unwrap_or_else(|| "NULL".into())
                    }
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

async fn labels(pool: &AnyPool, address: &str) -> Vec<String> {
    rows_of(
        pool,
        "SELECT l.label FROM contact_labels l JOIN contacts c ON c.id = l.contact_id \
         WHERE c.address = $1 ORDER BY l.label",
        address,
    )
    .await
}

async fn attrs(pool: &AnyPool, address: &str) -> Vec<String> {
    rows_of(
        pool,
        "SELECT a.key, a.value FROM contact_attrs a JOIN contacts c ON c.id = a.contact_id \
         WHERE c.address = $1 ORDER BY a.key",
        address,
    )
    .await
}

/// kind|source|at, in the order they were recorded.
async fn consent_events(pool: &AnyPool, address: &str) -> Vec<String> {
    rows_of(
        pool,
        "SELECT e.kind, e.source, e.at FROM consent_events e JOIN contacts c ON c.id = e.contact_id \
         WHERE c.address = $1 ORDER BY e.id",
        address,
    )
    .await
}

/// recipient id|campaign|status|reason|sent_at, by campaign.
async fn recipients(pool: &AnyPool, address: &str) -> Vec<String> {
    rows_of(
        pool,
        "SELECT r.id, r.campaign_id, r.status, r.reason, r.sent_at \
         FROM recipients r JOIN contacts c ON c.id = r.contact_id \
         WHERE c.address = $1 ORDER BY r.campaign_id",
        address,
    )
    .await
}

async fn count(pool: &AnyPool, table: &str) -> i64 {
    sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
        .fetch_one(pool)
        .await
        .unwrap()
        .get("n")
}

const CAMPAIGNS: &str = "INSERT INTO campaigns (id, title, status, created_at) \
                         VALUES (1, 'Spring', 'sending', 0), (2, 'Summer', 'sending', 0)";

#[tokio::test]
async fn every_spelling_of_a_number_becomes_one_contact_with_all_its_history() {
    let db = TestDb::new().await;
    previous_release(
        &db,
        &[
            CAMPAIGNS,
            // One number, three spellings: typed on the console (opted in at t=1000), written by
            // the WhatsApp webhook (opted out at t=2000) and imported from a CSV file.
            "INSERT INTO contacts (id, address, name, lang, tz, consent, consent_at, \
             last_inbound_at, marketing_stopped, unreachable, created_at) VALUES \
             (1, '+15559990001', 'Ann Lee', 'en', NULL, 'opted_in', 1000, 500, 1, NULL, 10), \
             (2, 'wa:15559990001', NULL, 'pt', NULL, 'opted_out', 2000, 700, 0, NULL, 20), \
             (3, '15559990001', NULL, NULL, 'Europe/Lisbon', 'unknown', NULL, NULL, 0, \
              'not on WhatsApp', 30)",
            // Spellings of nothing else, which stay one contact each.
            "INSERT INTO contacts (id, address, created_at) VALUES \
             (4, 'tg:42', 40), (5, 'Ann', 50), (6, '+12345', 60)",
            "INSERT INTO contact_labels (contact_id, label) VALUES \
             (1, 'VIP'), (1, 'Lisbon'), (2, 'vip'), (2, 'Beta'), (3, 'vip'), \
             (4, 'VIP'), (4, 'vip'), (4, 'New')",
            "INSERT INTO contact_attrs (contact_id, key, value) VALUES \
             (1, 'City', 'Lisbon'), (1, 'Home Town', 'Faro'), \
             (2, 'city', 'Porto'), (2, 'Plan', 'Gold'), \
             (3, 'plan', 'Silver'), (3, 'shoe-size', '38'), \
             (4, 'City', 'Braga'), (4, 'city', 'Coimbra'), (4, 'Nick', 'TG')",
            "INSERT INTO consent_events (contact_id, kind, source, keyword, at) VALUES \
             (1, 'opt_in', 'admin', NULL, 1000), \
             (2, 'opt_out', 'keyword', 'STOP', 2000)",
            // Campaign 1 reached the number twice: sent to the console spelling, still queued
            // for the WhatsApp one. Campaign 2 has the CSV spelling alone, queued.
            "INSERT INTO recipients (campaign_id, contact_id, status, queued_at, sent_at, \
             delivered_at, provider_id) VALUES (1, 1, 'delivered', 0, 1500, 1600, 'wamid.1')",
            "INSERT INTO recipients (campaign_id, contact_id, status, queued_at) \
             VALUES (1, 2, 'queued', 0), (2, 3, 'queued', 0), (2, 4, 'queued', 0)",
            "INSERT INTO tier_usage (contact_id, at) VALUES (1, 1500), (2, 1700), (3, 1800)",
            "INSERT INTO campaign_actions (campaign_id, event, action, created_at) VALUES \
             (1, 'read', 'label+=VIP', 0), (1, 'replied', 'label-=Cold-Lead', 0), \
             (1, 'clicked:yes', 'attr.Home Town=Lisbon Bay', 0), (1, 'failed', 'optout', 0)",
        ],
    )
    .await;

    let store = upgrade(&db).await;
    let pool = store.pool();

    // The row already at `wa:` survives, with the latest consent: the opt-out at t=2000.
    assert_eq!(
        contacts(pool).await,
        vec![
            (2, "wa:15559990001".into(), "opted_out".into(), Some(2000)),
            (4, "tg:42".into(), "unknown".into(), None),
            (5, "ann".into(), "unknown".into(), None),
            (6, "+12345".into(), "unknown".into(), None),
        ]
    );
    let details = sqlx::query(
        "SELECT name, lang, tz, last_inbound_at, marketing_stopped, unreachable, created_at \
         FROM contacts WHERE id = 2",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        details.get::<Option<String>, _>("name").as_deref(),
        Some("Ann Lee")
    );
    assert_eq!(
        details.get::<Option<String>, _>("lang").as_deref(),
        Some("pt")
    );
    assert_eq!(
        details.get::<Option<String>, _>("tz").as_deref(),
        Some("Europe/Lisbon")
    );
    assert_eq!(details.get::<Option<i64>, _>("last_inbound_at"), Some(700));
    assert_eq!(details.get::<i64, _>("marketing_stopped"), 1);
    assert_eq!(
        details.get::<Option<String>, _>("unreachable").as_deref(),
        Some("not on WhatsApp")
    );
    assert_eq!(details.get::<i64, _>("created_at"), 10);

    // Every consent event is kept, on the one contact.
    assert_eq!(
        consent_events(pool, "wa:15559990001").await,
        vec!["opt_in|admin|1000", "opt_out|keyword|2000"]
    );
    assert_eq!(count(pool, "consent_events").await, 2);

    // Labels: lower-case, the union of all spellings', each once.
    assert_eq!(
        labels(pool, "wa:15559990001").await,
        vec!["beta", "lisbon", "vip"]
    );
    assert_eq!(labels(pool, "tg:42").await, vec!["new", "vip"]);

    // Attributes: the survivor's value wins on a shared key (`city`, `plan`), the others'
    // are added; keys lower-case with `_` for spaces and dashes.
    assert_eq!(
        attrs(pool, "wa:15559990001").await,
        vec!["city|Porto", "home_town|Faro", "plan|Gold", "shoe_size|38"]
    );
    // `City` and `city` on one contact: the row already lower-case keeps its value.
    assert_eq!(attrs(pool, "tg:42").await, vec!["city|Coimbra", "nick|TG"]);

    // Campaign 1 keeps the row that was sent (and its delivery), not the queued one; campaign 2's
    // queued row moves over, and is skipped: the merged contact is opted out.
    assert_eq!(
        recipients(pool, "wa:15559990001").await,
        vec!["1|1|delivered|NULL|1500", "3|2|skipped|opted_out|NULL"]
    );
    assert_eq!(
        recipients(pool, "tg:42").await,
        vec!["4|2|queued|NULL|NULL"]
    );
    assert_eq!(count(pool, "recipients").await, 3);
    let tier: Vec<i64> = sqlx::query("SELECT contact_id FROM tier_usage ORDER BY at")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("contact_id"))
        .collect();
    assert_eq!(tier, vec![2, 2, 2]);

    // Post-campaign actions: label and key lower-case, an attribute's value as typed.
    let actions: Vec<String> = sqlx::query("SELECT action FROM campaign_actions ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("action"))
        .collect();
    assert_eq!(
        actions,
        vec![
            "label+=vip",
            "label-=cold-lead",
            "attr.home_town=Lisbon Bay",
            "optout"
        ]
    );

    // Nothing left pointing at a contact that is gone.
    for table in [
        "contact_labels",
        "contact_attrs",
        "consent_events",
        "recipients",
        "tier_usage",
    ] {
        let orphans: i64 = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM {table} t \
             WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = t.contact_id)"
        ))
        .fetch_one(pool)
        .await
        .unwrap()
        .get("n");
        assert_eq!(orphans, 0, "{table}");
    }
    store.close().await;
}

#[tokio::test]
async fn an_opt_out_is_never_lost_to_an_opt_in_of_the_same_moment() {
    let db = TestDb::new().await;
    previous_release(
        &db,
        &[
            // Same millisecond, the opt-out recorded first and on the spelling that merges away.
            "INSERT INTO contacts (id, address, consent, consent_at, created_at) VALUES \
             (1, '+15559990003', 'opted_out', 5000, 1), \
             (2, 'wa:15559990003', 'opted_in', 5000, 2)",
            // No times known at all: the opt-out still wins.
            "INSERT INTO contacts (id, address, consent, consent_at, created_at) VALUES \
             (3, '15559990004', 'opted_in', NULL, 3), \
             (4, 'wa:15559990004', 'unknown', NULL, 4), \
             (5, '+15559990004', 'opted_out', NULL, 5)",
            // An opt-in that came after the opt-out is the latest word: it stands.
            "INSERT INTO contacts (id, address, consent, consent_at, created_at) VALUES \
             (6, '+15559990005', 'opted_out', 1000, 6), \
             (7, 'wa:15559990005', 'opted_in', 2000, 7)",
            "INSERT INTO consent_events (contact_id, kind, source, keyword, at) VALUES \
             (1, 'opt_out', 'admin', NULL, 5000), \
             (2, 'opt_in', 'keyword', 'START', 5000), \
             (6, 'opt_out', 'keyword', 'STOP', 1000), \
             (7, 'opt_in', 'keyword', 'START', 2000)",
        ],
    )
    .await;

    let store = upgrade(&db).await;
    let pool = store.pool();
    assert_eq!(
        contacts(pool).await,
        vec![
            (2, "wa:15559990003".into(), "opted_out".into(), Some(5000)),
            (4, "wa:15559990004".into(), "opted_out".into(), None),
            (7, "wa:15559990005".into(), "opted_in".into(), Some(2000)),
        ]
    );
    assert_eq!(
        consent_events(pool, "wa:15559990003").await,
        vec!["opt_out|admin|5000", "opt_in|keyword|5000"]
    );
    assert_eq!(
        consent_events(pool, "wa:15559990005").await,
        vec!["opt_out|keyword|1000", "opt_in|keyword|2000"]
    );
    store.close().await;
}

#[tokio::test]
async fn without_a_wa_row_the_oldest_spelling_survives_under_the_new_address() {
    let db = TestDb::new().await;
    previous_release(
        &db,
        &[
            CAMPAIGNS,
            // Imported from a CSV file first, then typed on the console.
            "INSERT INTO contacts (id, address, name, consent, consent_at, created_at) VALUES \
             (1, '15559990002', 'Bo', 'opted_in', 100, 1), \
             (2, '+15559990002', 'Bo Console', 'unknown', NULL, 2)",
            // Console names are case-insensitive now: `Cy` and `cy` are one contact.
            "INSERT INTO contacts (id, address, name, created_at) VALUES \
             (3, 'Cy', 'First', 3), (4, 'cy', NULL, 4)",
            "INSERT INTO contact_labels (contact_id, label) VALUES \
             (1, 'Csv'), (2, 'Console'), (2, 'csv'), (3, 'Regular'), (4, 'regular')",
            "INSERT INTO consent_events (contact_id, kind, source, keyword, at) \
             VALUES (1, 'opt_in', 'import', NULL, 100)",
            // Campaign 1: the console spelling's row was sent, the CSV one's is still queued.
            // Campaign 2: both queued; the survivor's stays.
            "INSERT INTO recipients (campaign_id, contact_id, status, queued_at, sent_at) VALUES \
             (1, 1, 'queued', 0, NULL), (1, 2, 'sent', 0, 900), \
             (2, 1, 'queued', 0, NULL), (2, 2, 'queued', 0, NULL), \
             (1, 3, 'queued', 0, NULL), (1, 4, 'sent', 0, 950)",
        ],
    )
    .await;

    let store = upgrade(&db).await;
    let pool = store.pool();
    assert_eq!(
        contacts(pool).await,
        vec![
            (1, "wa:15559990002".into(), "opted_in".into(), Some(100)),
            (4, "cy".into(), "unknown".into(), None),
        ]
    );
    let name: Option<String> = sqlx::query("SELECT name FROM contacts WHERE id = 1")
        .fetch_one(pool)
        .await
        .unwrap()
        .get("name");
    assert_eq!(name.as_deref(), Some("Bo"));
    let name: Option<String> = sqlx::query("SELECT name FROM contacts WHERE id = 4")
        .fetch_one(pool)
        .await
        .unwrap()
        .get("name");
    assert_eq!(name.as_deref(), Some("First"));
    assert_eq!(labels(pool, "wa:15559990002").await, vec!["console", "csv"]);
    assert_eq!(labels(pool, "cy").await, vec!["regular"]);
    assert_eq!(
        consent_events(pool, "wa:15559990002").await,
        vec!["opt_in|import|100"]
    );
    assert_eq!(
        recipients(pool, "wa:15559990002").await,
        vec!["2|1|sent|NULL|900", "3|2|queued|NULL|NULL"]
    );
    assert_eq!(recipients(pool, "cy").await, vec!["6|1|sent|NULL|950"]);
    assert_eq!(count(pool, "recipients").await, 3);
    store.close().await;
}
