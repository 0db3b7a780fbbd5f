//! What herald is doing, in one read: the campaigns at work and their queues (what is sending,
//! queued, held and why), the tier, campaigns by status, the database's size and the oldest
//! rows retention has yet to prune. `herald status`, `/status` and the gauges of `/metrics` are
//! all built from it.

use chrono::{DateTime, Utc};

use super::{rules, Engine, Result};
use crate::config::Tier;
use crate::metrics::SharedGauges;
use crate::store::{Backend, Campaign, CampaignStatus, QueueFigure, QueueState};

/// One snapshot of herald's state.
#[derive(Debug, Clone)]
pub struct Overview {
    pub now: DateTime<Utc>,
    pub backend: Backend,
    /// Campaigns sending, paused or scheduled, oldest first.
    pub active: Vec<Campaign>,
    /// Recipients that still need work, by campaign and state.
    pub queue: Vec<QueueFigure>,
    pub by_status: Vec<(CampaignStatus, i64)>,
    pub tier_used: i64,
    pub tier_limit: Option<i64>,
    pub database_bytes: i64,
    /// The oldest webhook de-duplication row kept, and the age past which rows are pruned.
    pub oldest_seen: Option<DateTime<Utc>>,
    pub dedup_keep: chrono::Duration,
    /// When the longest-finished campaign still holding its recipient rows finished.
    pub oldest_unsummarised: Option<DateTime<Utc>>,
    pub retention: chrono::Duration,
    /// Campaigns summarised so far and the recipient rows they stood for.
    pub summarised: (i64, i64),
}

impl Overview {
    pub fn campaigns_in(&self, status: CampaignStatus) -> i64 {
        self.by_status
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    }

    /// Recipients in `state`, of one campaign or (with `None`) of all.
    pub fn count(&self, campaign: Option<i64>, state: &QueueState) -> i64 {
        self.queue
            .iter()
            .filter(|f| campaign.is_none_or(|id| f.campaign_id == id) && &f.state == state)
            .map(|f| f.count)
            .sum()
    }

    /// Held recipients by reason, of one campaign or of all, largest first.
    pub fn held(&self, campaign: Option<i64>) -> Vec<(String, i64, Option<DateTime<Utc>>)> {
        let mut held: Vec<(String, i64, Option<DateTime<Utc>>)> = Vec::new();
        for f in &self.queue {
            let QueueState::Held(why) = &f.state else {
                continue;
            };
            if campaign.is_some_and(|id| f.campaign_id != id) {
                continue;
            }
            match held.iter_mut().find(|(w, _, _)| w == why) {
                Some((_, n, next)) => {
                    *n += f.count;
                    *next = match (*next, f.next_due) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                None => held.push((why.clone(), f.count, f.next_due)),
            }
        }
        held.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        held
    }

    /// The gauges `/metrics` serves from this snapshot.
    pub fn gauges(&self) -> SharedGauges {
        SharedGauges {
            queued: self.count(None, &QueueState::Queued),
            in_flight: self.count(None, &QueueState::InFlight),
            held: self
                .held(None)
                .into_iter()
                .map(|(why, n, _)| (why, n))
                .collect(),
            tier_used: self.tier_used,
            tier_limit: self.tier_limit,
            campaigns: self
                .by_status
                .iter()
                .map(|(s, n)| (s.as_str().to_string(), *n))
                .collect(),
            database_bytes: self.database_bytes,
            oldest_dedup_secs: self
                .oldest_seen
                .map_or(0, |t| (self.now - t).num_seconds().max(0)),
        }
    }
}

impl Engine {
    /// Reads the [`Overview`] now.
    pub async fn overview(&self) -> Result<Overview> {
        let now = self.clock.now();
        let store = &self.store;
        let mut active = Vec::new();
        for status in [
            CampaignStatus::Sending,
            CampaignStatus::Paused,
            CampaignStatus::Scheduled,
        ] {
            active.extend(store.campaigns(Some(status)).await?);
        }
        // The tier in force: Meta's last word when it gave one, else the configured tier.
        let (tier, _) = self.tier().await?;
        let tier_limit = match tier {
            Tier::Limited(n) => Some(i64::try_from(n).unwrap_or(i64::MAX)),
            Tier::Unlimited => None,
        };
        Ok(Overview {
            now,
            backend: store.backend(),
            active,
            queue: store.queue_figures(now).await?,
            by_status: store.campaigns_by_status().await?,
            tier_used: store.tier_used(now - rules::SERVICE_WINDOW).await?,
            tier_limit,
            database_bytes: store.database_size().await?,
            oldest_seen: store.oldest_seen().await?,
            dedup_keep: chrono::Duration::from_std(self.config.dedup_keep)
                .unwrap_or(chrono::Duration::days(7)),
            oldest_unsummarised: store.oldest_unsummarised().await?,
            retention: chrono::Duration::from_std(self.config.retention)
                .unwrap_or(chrono::Duration::days(365_000)),
            summarised: store.summarised_counts().await?,
        })
    }
}
