//! The quality guard: too many failures or opt-outs among a campaign's last sends pause it and
//! tell its owner.
//!
//! Which sends are "the last" is kept in memory, per campaign, as the recipient ids this
//! process finished most recently; their status and their contact's consent are read fresh
//! each time, so a failure Meta reports later by webhook, or a `STOP` that answers the message,
//! still counts. Asking the database for a campaign's last finished rows instead needs an index
//! on the time each row finished, one more entry written for every message sent (about 3 us of
//! the database's CPU a message on PostgreSQL, measured). The price: each process judges its
//! own sends (with several processes, each one's window is a sample of the campaign's), and a
//! restarted process starts with an empty window, so it judges again after
//! `quality_min_sample` sends.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::lifecycle::PauseBy;
use super::{Engine, Result};
use crate::lock;
use crate::store::recipients::Outcome;
use crate::store::Campaign;

/// Campaigns whose window is kept at once; past it, another campaign's window is dropped (it
/// only means that campaign's guard waits for a fresh sample).
const CAMPAIGNS_KEPT: usize = 1024;

/// The recipient ids each campaign finished most recently in this process, newest last.
#[derive(Default)]
pub(crate) struct RecentSends {
    windows: Mutex<HashMap<i64, VecDeque<i64>>>,
}

impl RecentSends {
    /// Adds the rows of `outcomes` that finished (sent or failed), keeping the last `size`.
    pub(crate) fn remember<'a>(
        &self,
        campaign_id: i64,
        size: usize,
        outcomes: impl IntoIterator<Item = (i64, &'a Outcome)>,
    ) {
        let finished = outcomes
            .into_iter()
            .filter(|(_, o)| matches!(o, Outcome::Sent { .. } | Outcome::Failed { .. }))
            .map(|(id, _)| id);
        let size = size.max(1);
        let mut windows = lock(&self.windows);
        if !windows.contains_key(&campaign_id) && windows.len() >= CAMPAIGNS_KEPT {
            if let Some(other) = windows.keys().next().copied() {
                windows.remove(&other);
            }
        }
        let window = windows.entry(campaign_id).or_default();
        window.extend(finished);
        let excess = window.len().saturating_sub(size);
        window.drain(..excess);
    }

    fn window(&self, campaign_id: i64) -> Vec<i64> {
        lock(&self.windows)
            .get(&campaign_id)
            .map(|w| w.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Drops a campaign's window (it completed).
    pub(crate) fn forget(&self, campaign_id: i64) {
        lock(&self.windows).remove(&campaign_id);
    }
}

impl Engine {
    /// Adds the rows of a recorded batch that finished to `campaign`'s window.
    pub(crate) fn remember_finished(
        &self,
        campaign: &Campaign,
        recorded: &[(i64, Outcome, chrono::DateTime<chrono::Utc>)],
    ) {
        let size = usize::try_from(self.config.quality_window).unwrap_or(1);
        self.recent_sends.remember(
            campaign.id,
            size,
            recorded.iter().map(|(id, o, _)| (*id, o)),
        );
    }

    /// Pauses `campaign` if too many of its last sends failed or opted out.
    pub(crate) async fn guard_quality(&self, campaign: &Campaign) -> Result<()> {
        let c = &self.config;
        let window = self.recent_sends.window(campaign.id);
        if (window.len() as i64) < c.quality_min_sample.max(1) {
            return Ok(());
        }
        let (n, failed, opted_out) = self.store.quality(&window).await?;
        if n < c.quality_min_sample.max(1) {
            return Ok(());
        }
        let fail_rate = failed as f64 / n as f64;
        let optout_rate = opted_out as f64 / n as f64;
        let why = if fail_rate > c.quality_max_failure {
            format!(
                "quality guard: {failed} of the last {n} sends failed ({:.0}% > {:.0}%)",
                fail_rate * 100.0,
                c.quality_max_failure * 100.0
            )
        } else if optout_rate > c.quality_max_optout {
            format!(
                "quality guard: {opted_out} of the last {n} recipients opted out ({:.0}% > {:.0}%)",
                optout_rate * 100.0,
                c.quality_max_optout * 100.0
            )
        } else {
            return Ok(());
        };
        self.pause(campaign.id, PauseBy::Engine { why: &why })
            .await?;
        Ok(())
    }
}
