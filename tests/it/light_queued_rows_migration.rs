//! Migration 0015 (lighter queued rows) on a database the previous release wrote: every
//! recipient row is kept as it was, ids are never given out twice (SQLite rebuilds the table to
//! drop its foreign keys), and an opt-out still takes the contact off every campaign under way
//! now that `recipients_by_contact` holds sent rows only.

use chrono::Utc;
use sqlx::{AnyPool, Row};

use herald::domain::consent::ConsentSource;
use herald::store::Store;

use crate::support::db::{is_postgres, migrated_to, raw_pool, TestDb};

/// Every recipient row, all its stored columns, by id.
async fn rows(pool: &AnyPool) -> Vec<String> {
    sqlx::query(
        "SELECT id, campaign_id, contact_id, status, reason, attempts, next_attempt_at, \
         provider_id, queued_at, sent_at, work_due FROM recipients ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        format!(
            "{}|{}|{}|{}|{:?}|{}|{}|{:?}|{}|{:?}|{:?}",
            r.get::<i64, _>("id"),
            r.get::<i64, _>("campaign_id"),
            r.get::<i64, _>("contact_id"),
            r.get::<String, _>("status"),
            r.get::<Option<String>, _>("reason"),
            r.get::<i64, _>("attempts"),
            r.get::<i64, _>("next_attempt_at"),
            r.get::<Option<String>, _>("provider_id"),
            r.get::<i64, _>("queued_at"),
            r.get::<Option<i64>, _>("sent_at"),
            r.get::<Option<i64>, _>("work_due"),
        )
    })
    .collect()
}

#[tokio::test]
async fn rows_ids_and_opt_outs_survive_the_upgrade() {
    let db = TestDb::new().await;
    // Ids given out by PostgreSQL's sequence (SQLite's counter follows the inserts).
    let counter = if is_postgres() {
        "SELECT setval('recipients_id_seq', 4)"
    } else {
        "SELECT 1"
    };
    migrated_to(
        &db,
        14,
        &[
            "INSERT INTO contacts (id, address, consent, created_at) VALUES \
             (1, 'wa:15550001', 'opted_in', 0), (2, 'wa:15550002', 'opted_in', 0)",
            "INSERT INTO campaigns (id, title, status, created_at) VALUES \
             (1, 'Done', 'completed', 0), (2, 'Paused', 'paused', 0), (3, 'Sending', 'sending', 0)",
            "INSERT INTO recipients (id, campaign_id, contact_id, status, queued_at, sent_at, \
             provider_id, attempts) VALUES (1, 1, 1, 'sent', 10, 20, 'wamid.1', 1)",
            "INSERT INTO recipients (id, campaign_id, contact_id, status, queued_at, \
             next_attempt_at) VALUES (2, 2, 1, 'queued', 10, 30), (3, 3, 1, 'queued', 10, 0), \
             (4, 3, 2, 'queued', 10, 0)",
            // The newest row is gone (as retention deletes rows): its id must stay used.
            "DELETE FROM recipients WHERE id = 4",
            counter,
        ],
    )
    .await;
    let before = {
        let pool = raw_pool(&db).await;
        let before = rows(&pool).await;
        pool.close().await;
        before
    };
    assert_eq!(before.len(), 3, "{before:?}");

    let store = Store::connect(&db.url).await.expect("migration 15 applies");
    let pool = store.pool();
    assert_eq!(rows(pool).await, before, "every row as it was");

    let new_id: i64 = sqlx::query_scalar(
        "INSERT INTO recipients (campaign_id, contact_id, queued_at) VALUES (3, 2, 40) \
         RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(new_id, 5, "id 4 was given out before the upgrade");

    // An opt-out drops the contact's pending rows of the paused and the sending campaign; the
    // completed campaign's sent row stays as it was.
    let dropped = store
        .record_consent(1, false, ConsentSource::Keyword, Some("STOP"), Utc::now())
        .await
        .unwrap();
    assert_eq!(dropped, 2);
    let after = rows(pool).await;
    assert_eq!(after[0], before[0]);
    assert!(
        after[1].starts_with("2|2|1|skipped|Some(\"opted_out\")"),
        "{after:?}"
    );
    assert!(
        after[2].starts_with("3|3|1|skipped|Some(\"opted_out\")"),
        "{after:?}"
    );
    assert!(after[3].starts_with("5|3|2|queued|None"), "{after:?}");
}
