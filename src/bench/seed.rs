//! Bulk test data: many opted-in WhatsApp contacts written by a few `INSERT ... SELECT`
//! statements (a series generated inside the database), not one insert per contact. Used by
//! `herald bench` and by the scale-out and crash tests.

use chrono::{DateTime, Utc};

use crate::clock::to_ms;
use crate::store::{Backend, Result, Store};

/// The first seeded number: contact `i` is `wa:{FIRST_NUMBER + i}`.
pub const FIRST_NUMBER: u64 = 15_550_000_000;

/// Contact `i`'s address.
pub fn address(i: u64) -> String {
    format!("wa:{}", FIRST_NUMBER + i)
}

/// Adds contacts `0..n` (`wa:15550000000`, ...), opted in at `now`, with their service window
/// opened at `now` (so free text may go to them), named `Contact <i>`. Each `(label, upto)` of
/// `labels` goes on contacts `0..upto` (`("a", 1000)` labels the first thousand `a`).
pub async fn contacts(
    store: &Store,
    n: u64,
    labels: &[(&str, u64)],
    now: DateTime<Utc>,
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let series = match store.backend() {
        Backend::Postgres => "SELECT g AS i FROM generate_series(0, $1 - 1) AS g".to_string(),
        // SQLite has no generate_series built in; a recursive CTE counts as fast.
        Backend::Sqlite => "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq \
                            WHERE i + 1 < $1) SELECT i FROM seq"
            .to_string(),
    };
    // `WHERE true` keeps SQLite from reading `ON CONFLICT` as a join's `ON`.
    let sql = format!(
        "INSERT INTO contacts (address, name, consent, consent_at, last_inbound_at, created_at) \
         SELECT 'wa:' || ({FIRST_NUMBER} + s.i), 'Contact ' || s.i, 'opted_in', $2, $2, $2 \
         FROM ({series}) AS s WHERE true ON CONFLICT (address) DO NOTHING"
    );
    let t = to_ms(now);
    sqlx::query(&sql)
        .bind(n as i64)
        .bind(t)
        .execute(store.pool())
        .await?;
    // Consent history rows, as an opt-in would leave.
    sqlx::query(
        "INSERT INTO consent_events (contact_id, kind, source, at) \
         SELECT id, 'opt_in', 'import', $1 FROM contacts \
         WHERE address >= $2 AND address <= $3",
    )
    .bind(t)
    .bind(address(0))
    .bind(address(n - 1))
    .execute(store.pool())
    .await?;
    for (label, upto) in labels {
        let upto = (*upto).min(n);
        if upto == 0 {
            continue;
        }
        // Same-width numbers compare as text in numeric order, so a range on the unique address
        // index picks the contacts.
        sqlx::query(
            "INSERT INTO contact_labels (contact_id, label) SELECT id, $1 FROM contacts \
             WHERE address >= $2 AND address <= $3 ON CONFLICT DO NOTHING",
        )
        .bind(*label)
        .bind(address(0))
        .bind(address(upto - 1))
        .execute(store.pool())
        .await?;
    }
    Ok(())
}
