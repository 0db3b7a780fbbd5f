//! `/campaign retry`: recipients left `unknown` or `failed` go back to the queue on an admin's
//! explicit word (SPEC section 3), never on their own.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Result, Store};
use crate::clock::to_ms;
use crate::domain::RecipientStatus;

/// A failed recipient, with what decides whether it may be tried again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRecipient {
    pub recipient_id: i64,
    pub address: String,
    pub error_code: Option<String>,
    /// The contact opted out or cannot be reached: never retried.
    pub contact_closed: bool,
}

impl Store {
    /// The failed recipients of a campaign.
    pub async fn failed_recipients(&self, campaign_id: i64) -> Result<Vec<FailedRecipient>> {
        let rows = sqlx::query(
            "SELECT r.id, c.address, r.error_code, \
             CASE WHEN c.consent = 'opted_out' OR c.unreachable IS NOT NULL THEN 1 ELSE 0 END \
               AS closed \
             FROM recipients r JOIN contacts c ON c.id = r.contact_id \
             WHERE r.campaign_id = $1 AND r.status = 'failed' ORDER BY r.id",
        )
        .bind(campaign_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FailedRecipient {
                    recipient_id: r.try_get("id")?,
                    address: r.try_get("address")?,
                    error_code: r.try_get("error_code")?,
                    contact_closed: r.try_get::<i64, _>("closed")? != 0,
                })
            })
            .collect()
    }

    /// The ids of a campaign's recipients left `unknown` whose contact may still be sent to.
    pub async fn unknown_recipients(&self, campaign_id: i64) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT r.id FROM recipients r JOIN contacts c ON c.id = r.contact_id \
             WHERE r.campaign_id = $1 AND r.status = 'unknown' \
             AND c.consent <> 'opted_out' AND c.unreachable IS NULL ORDER BY r.id",
        )
        .bind(campaign_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Queues recipients `ids` of campaign `campaign_id` that are still in status `from` again,
    /// due now, with fresh attempts; a completed campaign goes back to sending. One
    /// transaction: either all of it happens or none. Returns how many were queued.
    pub async fn requeue(
        &self,
        campaign_id: i64,
        ids: &[i64],
        from: RecipientStatus,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin_with(self.begin_write()).await?;
        let queued = sqlx::query(&format!(
            "UPDATE recipients SET status = 'queued', next_attempt_at = $1, attempts = 0, \
             claimed_by = NULL, reason = NULL, error_code = NULL \
             WHERE campaign_id = $2 AND status = $3 AND {}",
            self.in_json_ids("id", 4)
        ))
        .bind(to_ms(now))
        .bind(campaign_id)
        .bind(from.as_str())
        .bind(super::json_list(ids))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if queued > 0 {
            sqlx::query(
                "UPDATE campaigns SET status = 'sending', finished_at = NULL, \
                 status_reason = NULL WHERE id = $1 AND status = 'completed'",
            )
            .bind(campaign_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(queued)
    }
}
