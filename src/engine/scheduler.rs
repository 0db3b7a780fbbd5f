//! The scheduler: starts campaigns whose time has come. Starting writes the first page of the
//! audience's recipient rows in the same transaction as the status change, so only one process
//! ever wins a start and a crash never leaves a half-started campaign; the rest of the audience
//! is resolved while it sends (`engine/resolution.rs`).

use super::{Engine, EngineError, Result};
use crate::domain::schedule::Repeat;
use crate::store::{Campaign, CampaignKind, CampaignStatus};

impl Engine {
    /// Starts every due scheduled campaign; returns how many started.
    pub async fn schedule_step(&self) -> Result<usize> {
        let now = self.clock.now();
        let mut started = 0;
        for id in self.store.due_campaigns(now).await? {
            let Some(campaign) = self.store.campaign(id).await? else {
                continue;
            };
            if campaign.kind == CampaignKind::Recurring {
                started += self
                    .contained(id, self.spawn_run(&campaign))
                    .await?
                    .unwrap_or(0);
                continue;
            }
            let start = self.contained(id, self.start_campaign(&campaign)).await;
            match start.transpose() {
                None => {} // it panicked, and is paused
                Some(Ok(Some(n))) => {
                    started += 1;
                    self.tell_owner(
                        campaign.owner.as_deref(),
                        format!("campaign {id} started as scheduled: {n} recipients"),
                    )
                    .await;
                }
                Some(Ok(None)) => {} // another process started it
                Some(Err(EngineError::Rejected(why))) => {
                    let now = self.clock.now();
                    self.store
                        .transition(
                            id,
                            &[CampaignStatus::Scheduled],
                            CampaignStatus::Failed,
                            Some(&why),
                            now,
                        )
                        .await?;
                    self.tell_owner(
                        campaign.owner.as_deref(),
                        format!("campaign {id} could not start: {why}"),
                    )
                    .await;
                }
                Some(Err(e)) => return Err(e),
            }
        }
        Ok(started)
    }

    /// A recurring campaign's occurrence has come: spawn its run and start it. A series that
    /// missed occurrences while herald was down sends one run now, not one per missed slot.
    async fn spawn_run(&self, parent: &Campaign) -> Result<usize> {
        let now = self.clock.now();
        let (Some(due), Some(rule)) = (parent.scheduled_at, parent.repeat_rule.as_deref()) else {
            return Ok(0);
        };
        if due > now {
            // Another process spawned this occurrence between our listing and our read, and
            // moved the series on: the next one is not due yet.
            return Ok(0);
        }
        let rule: Repeat = match rule.parse() {
            Ok(r) => r,
            Err(e) => {
                let why = format!("bad repeat rule {rule:?}: {e}");
                self.store
                    .transition(
                        parent.id,
                        &[CampaignStatus::Scheduled],
                        CampaignStatus::Failed,
                        Some(&why),
                        now,
                    )
                    .await?;
                return Ok(0);
            }
        };
        let tz = self.config.admin_tz;
        let mut next = rule.next_after(due, tz);
        while let Some(n) = next.filter(|n| *n <= now) {
            next = rule.next_after(n, tz);
        }
        let Some(run_id) = self.store.spawn_run(parent.id, due, next, now).await? else {
            return Ok(0); // another process spawned it
        };
        let Some(run) = self.store.campaign(run_id).await? else {
            return Ok(0);
        };
        let n = self.start_campaign(&run).await?.unwrap_or(0);
        let after = match next {
            Some(t) => format!("; next run {}", self.local_time(t)),
            None => "; that was the last run".to_string(),
        };
        self.tell_owner(
            parent.owner.as_deref(),
            format!(
                "campaign {} run #{} started as campaign {run_id}: {n} recipients{after}",
                parent.id, run.run_no
            ),
        )
        .await;
        Ok(1)
    }
}
