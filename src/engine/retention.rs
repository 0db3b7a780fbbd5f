//! The maintenance worker: keeps storage bounded and the database's plans fresh. One
//! [`Engine::maintenance_step`] prunes what has aged out, summarises campaigns past
//! `RETENTION_DAYS` and refreshes statistics, each in small batches so the hot path (sends,
//! webhooks) never waits long behind it; [`Engine::maintain`] runs it on a timer in `herald run`,
//! and tests call the step with the clock moved forward.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{rules, Engine, Result};
use crate::store::Upkeep;

/// Rows one statement deletes at most: short enough that a webhook or a claim waiting behind it
/// (SQLite has one writer) waits milliseconds, not seconds.
const BATCH: i64 = 1_000;

/// Statements of each kind one step runs at most; the loop comes back at once while work is left.
const BATCHES_PER_STEP: usize = 20;

/// Campaigns summarised per step.
const CAMPAIGNS_PER_STEP: i64 = 5;

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceOutcome {
    /// De-duplication rows older than `DEDUP_KEEP_HOURS` deleted.
    pub seen_pruned: u64,
    /// Tier-budget rows older than two rolling periods deleted.
    pub tier_pruned: u64,
    /// Campaigns whose recipient rows were summarised.
    pub campaigns_summarised: u64,
    /// Recipient rows of summarised campaigns deleted.
    pub recipients_removed: u64,
    /// Attached media files no campaign shows any more, deleted.
    pub media_files_pruned: u64,
    /// Statistics refreshed and dead rows reclaimed (PostgreSQL).
    pub upkeep: Upkeep,
    /// A limit of this step was reached: more is left to do now.
    pub more: bool,
}

/// One kind of rows pruned in batches.
#[derive(Debug, Clone, Copy)]
enum Prune {
    /// De-duplication rows seen before this.
    Seen(DateTime<Utc>),
    /// Tier-budget rows taken before this.
    Tier(DateTime<Utc>),
    /// Recipient rows of summarised campaigns.
    Summarised,
}

impl Engine {
    /// Recipient rows of campaigns finished before this are summarised.
    pub fn retention_cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        // Past what a date can hold (a typo of many digits) means "keep everything".
        let keep = chrono::Duration::from_std(self.config.retention)
            .unwrap_or(chrono::Duration::days(365_000))
            .min(chrono::Duration::days(365_000));
        now - keep
    }

    /// De-duplication rows seen before this are pruned.
    pub fn dedup_cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let keep =
            chrono::Duration::from_std(self.config.dedup_keep).unwrap_or(chrono::Duration::days(7));
        now - keep
    }

    /// Deletes batches of one kind until a batch comes back short or the step's share is spent;
    /// returns the rows deleted and whether more may be left.
    async fn drain(&self, what: Prune) -> Result<(u64, bool)> {
        let mut total = 0;
        for _ in 0..BATCHES_PER_STEP {
            let n = match what {
                Prune::Seen(before) => self.store.prune_seen(before, BATCH).await?,
                Prune::Tier(before) => self.store.prune_tier_usage(before, BATCH).await?,
                Prune::Summarised => self.store.delete_summarised(BATCH).await?,
            };
            total += n;
            if n < BATCH as u64 {
                return Ok((total, false));
            }
            // Between batches, let the hot path's statements in.
            tokio::task::yield_now().await;
        }
        Ok((total, true))
    }

    /// One pass of retention and upkeep at the clock's now.
    pub async fn maintenance_step(&self) -> Result<MaintenanceOutcome> {
        let now = self.clock.now();
        let store = &self.store;
        let mut out = MaintenanceOutcome::default();

        let (n, more_seen) = self.drain(Prune::Seen(self.dedup_cutoff(now))).await?;
        out.seen_pruned = n;

        // The tier budget reads one rolling period; a second one is kept for a look back.
        let before = now - rules::SERVICE_WINDOW * 2;
        let (n, more_tier) = self.drain(Prune::Tier(before)).await?;
        out.tier_pruned = n;

        let due = store
            .campaigns_to_summarise(self.retention_cutoff(now), CAMPAIGNS_PER_STEP)
            .await?;
        for &id in &due {
            if let Some(rows) = store.summarise_campaign(id, now).await? {
                tracing::info!(campaign_id = id, rows, "campaign summarised");
                out.campaigns_summarised += 1;
            }
        }
        let (n, more_rows) = self.drain(Prune::Summarised).await?;
        out.recipients_removed = n;

        // A file stays a while after its campaign let go of it: an admin may set it again.
        out.media_files_pruned = store
            .prune_media_files(now - chrono::Duration::hours(1))
            .await?;

        out.upkeep = store.upkeep(false).await?;
        out.more = more_seen || more_tier || more_rows || due.len() as i64 == CAMPAIGNS_PER_STEP;
        Ok(out)
    }

    /// Runs [`Engine::maintenance_step`] every `MAINTENANCE_EVERY_SECS` (at once again while
    /// work is left) until `shutdown`. Paced in wall time, as the scheduler's polling is.
    pub async fn maintain(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let pause = match self.maintenance_step().await {
                Ok(out) => {
                    if out.seen_pruned + out.tier_pruned + out.recipients_removed > 0
                        || out.campaigns_summarised > 0
                    {
                        tracing::info!(?out, "maintenance");
                    }
                    if out.more {
                        Duration::from_millis(200)
                    } else {
                        self.config.maintenance_every
                    }
                }
                Err(e) => {
                    tracing::error!(error = %crate::error_chain(&e), "maintenance step failed");
                    self.config.maintenance_every
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}
