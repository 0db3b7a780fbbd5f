//! The rolling tier budget (SPEC section 3): distinct contacts reached outside their service
//! window in the last 24 hours, shared by every process on the database.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{opt_time, Backend, Result, Store};
use crate::clock::to_ms;

/// What one reservation of tier budget found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierReservation {
    /// One unit taken for this contact, now.
    Reserved,
    /// The contact was already reached outside their window inside the rolling period: no
    /// extra cost.
    AlreadyCounted,
    /// The budget is spent; `oldest` is when the oldest unit inside the period was taken (the
    /// budget grows again once it leaves the period).
    Full { oldest: DateTime<Utc> },
}

/// Any constant the rest of herald does not use as an advisory lock key: it names the tier.
const TIER_LOCK: i64 = 0x7469_6572; // "tier"

impl Store {
    /// Distinct contacts reached outside their window since `since`.
    pub async fn tier_used(&self, since: DateTime<Utc>) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(DISTINCT contact_id) FROM tier_usage WHERE at > $1")
                .bind(to_ms(since))
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Takes one unit of a `limit`-contact budget over the period since `since` for
    /// `contact_id`, at `now`, in one transaction that holds across processes: on PostgreSQL
    /// the reservations of every process queue on one transaction-scoped advisory lock; SQLite's
    /// single writer (`BEGIN IMMEDIATE`) does the same. Count, check and insert can therefore
    /// never interleave with another's, and two processes never spend more than `limit`.
    pub async fn reserve_tier(
        &self,
        contact_id: i64,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<TierReservation> {
        let mut tx = self.pool.begin_with(self.begin_write()).await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(TIER_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let row = sqlx::query(
            "SELECT COUNT(DISTINCT contact_id) AS n, \
             COUNT(*) FILTER (WHERE contact_id = $2) AS mine, MIN(at) AS oldest \
             FROM tier_usage WHERE at > $1",
        )
        .bind(to_ms(since))
        .bind(contact_id)
        .fetch_one(&mut *tx)
        .await?;
        if row.try_get::<i64, _>("mine")? > 0 {
            return Ok(TierReservation::AlreadyCounted);
        }
        if row.try_get::<i64, _>("n")? >= limit {
            let oldest = opt_time(&row, "oldest")?.unwrap_or(now);
            return Ok(TierReservation::Full { oldest });
        }
        sqlx::query("INSERT INTO tier_usage (contact_id, at) VALUES ($1, $2)")
            .bind(contact_id)
            .bind(to_ms(now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(TierReservation::Reserved)
    }
}
