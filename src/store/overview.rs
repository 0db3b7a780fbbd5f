//! What an operator reads at a glance (`herald status`, `/status`, the gauges of `/metrics`):
//! the work waiting in the queue and why, and campaigns by status. Read at the moment asked, from
//! the database every process shares.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{opt_time, CampaignStatus, Result, Store};
use crate::clock::to_ms;

/// Where a recipient that still needs work stands.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum QueueState {
    /// Due now, waiting for a sender.
    Queued,
    /// Claimed or being sent by a process.
    InFlight,
    /// Put back for later, with the reason it was held: `tier_limit`, `quiet_hours`, `retry`
    /// (a channel error's backoff or deferral), `scheduled` (a drip step's delay), or another
    /// hold's reason word.
    Held(String),
}

impl QueueState {
    pub fn label(&self) -> &str {
        match self {
            QueueState::Queued => "queued",
            QueueState::InFlight => "in_flight",
            QueueState::Held(why) => why,
        }
    }
}

/// The recipients of one campaign in one state.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueFigure {
    pub campaign_id: i64,
    pub state: QueueState,
    pub count: i64,
    /// When the first of them is due.
    pub next_due: Option<DateTime<Utc>>,
}

impl Store {
    /// Every recipient that still needs work, counted by campaign and state at `now`.
    pub async fn queue_figures(&self, now: DateTime<Utc>) -> Result<Vec<QueueFigure>> {
        let rows = sqlx::query(
            "SELECT campaign_id, \
             CASE WHEN status IN ('claimed', 'sending') THEN 'in_flight' \
                  WHEN next_attempt_at <= $1 THEN 'queued' \
                  WHEN error_code IS NOT NULL THEN 'retry' \
                  WHEN reason IS NULL THEN 'scheduled' \
                  ELSE reason END AS state, \
             COUNT(*) AS n, MIN(next_attempt_at) AS next \
             FROM recipients WHERE work_due IS NOT NULL \
             GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .bind(to_ms(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                // A hold's reason is a word herald wrote (`tier_limit`); anything else reads as
                // a retry rather than putting free text into a metric label.
                let state = match state.as_str() {
                    "in_flight" => QueueState::InFlight,
                    "queued" => QueueState::Queued,
                    why if why.chars().all(|c| c.is_ascii_lowercase() || c == '_') => {
                        QueueState::Held(why.to_string())
                    }
                    _ => QueueState::Held("retry".into()),
                };
                Ok(QueueFigure {
                    campaign_id: r.try_get("campaign_id")?,
                    state,
                    count: r.try_get("n")?,
                    next_due: opt_time(r, "next")?,
                })
            })
            .collect()
    }

    /// How many campaigns are in each status (every status, zeros included).
    pub async fn campaigns_by_status(&self) -> Result<Vec<(CampaignStatus, i64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM campaigns GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        let mut counts: Vec<(CampaignStatus, i64)> =
            CampaignStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for r in &rows {
            let status: String = r.try_get("status")?;
            if let Some(entry) = counts.iter_mut().find(|(s, _)| s.as_str() == status) {
                entry.1 = r.try_get("n")?;
            }
        }
        Ok(counts)
    }
}
