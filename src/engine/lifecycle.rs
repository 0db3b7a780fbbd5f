//! A campaign's life (SPEC section 3, "Status"): `draft → scheduled → sending → completed`, plus
//! `paused`, `cancelled` and `failed`. Every change of status an admin asks for or the engine
//! decides on goes through here, with its cascade to a recurring campaign's runs and a drip's
//! steps; command handlers only word the answer.

use super::{Engine, EngineError, Result};
use crate::channels::ErrorClass;
use crate::domain::audience::parse_audience;
use crate::domain::{RecipientStatus, SkipReason};
use crate::store::{Campaign, CampaignKind, CampaignStatus};

/// Who pauses a campaign: an admin's `/campaign pause`, or the engine itself (quality guard, a
/// channel error that stops the account), which tells the owner why.
#[derive(Debug, Clone, Copy)]
pub enum PauseBy<'a> {
    Admin,
    Engine { why: &'a str },
}

/// Which recipients `/campaign retry` sends again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryWhich {
    Unknown,
    Failed,
}

/// What a resume did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resumed {
    /// `sending`, or `scheduled` for a recurring campaign or one paused before its start.
    pub status: CampaignStatus,
}

fn rejected<T>(why: String) -> Result<T> {
    Err(EngineError::Rejected(why))
}

impl Engine {
    /// `/campaign send`: starts a draft or scheduled one-time campaign now. Returns how many
    /// recipients it reaches.
    pub async fn send_now(&self, id: i64) -> Result<u64> {
        let campaign = self.campaign_or_reject(id).await?;
        if !matches!(
            campaign.status,
            CampaignStatus::Draft | CampaignStatus::Scheduled
        ) {
            let hint = if campaign.status == CampaignStatus::Paused {
                format!("; use /campaign resume {id}")
            } else {
                String::new()
            };
            return rejected(format!("campaign {id} is {}{hint}", campaign.status));
        }
        match campaign.kind {
            CampaignKind::Triggered => {
                return rejected(format!(
                    "campaign {id} is sent by its trigger; it has no send of its own"
                ))
            }
            CampaignKind::Recurring => {
                return rejected(format!(
                    "campaign {id} is recurring and sends on its schedule; see /campaign show {id}"
                ))
            }
            CampaignKind::Drip => {
                return rejected(format!(
                    "{id} is a drip: contacts get it when enrolled (/drip enroll {id} <audience>)"
                ))
            }
            CampaignKind::OneTime | CampaignKind::DripStep => {}
        }
        self.check_template(&campaign).await?;
        match self.start_campaign(&campaign).await? {
            Some(n) => Ok(n),
            None => rejected(format!("campaign {id} was already started")),
        }
    }

    /// Moves the campaign to `sending` with the first page of its audience resolved; the rest
    /// is resolved while it sends (`engine/resolution.rs`). Returns how many recipients it
    /// reaches: the rows written, plus the contacts left to resolve as they stand now.
    /// `Ok(None)` if it was not in a startable state (already started elsewhere).
    pub async fn start_campaign(&self, campaign: &Campaign) -> Result<Option<u64>> {
        Self::check_ready(campaign)?;
        let spec = campaign.audience.as_deref().unwrap_or_default();
        let expr = parse_audience(spec).map_err(|e| EngineError::Rejected(e.to_string()))?;
        let Some(started) = self
            .store
            .start_campaign(
                campaign.id,
                &expr,
                self.clock.now(),
                self.config.resolve_page,
            )
            .await?
        else {
            return Ok(None);
        };
        self.status_changed(campaign.id);
        self.wake();
        let mut n = started.resolved;
        if let Some(rest) = started.rest {
            self.resolve_wake.notify_one();
            // Counted after the start's commit, so the first messages need not wait for it.
            n += self
                .store
                .count_audience_between(&expr, rest.cursor, rest.end)
                .await?;
        }
        Ok(Some(n))
    }

    /// What a campaign needs before it can send.
    pub fn check_ready(campaign: &Campaign) -> Result<()> {
        if campaign.audience.as_deref().is_none_or(str::is_empty) {
            return rejected(format!(
                "campaign {} has no audience: /campaign audience {} <labels or addresses>",
                campaign.id, campaign.id
            ));
        }
        if campaign.text.is_none() && campaign.template.is_none() {
            return rejected(format!(
                "campaign {} has no message: /campaign text {} <message> or /campaign template",
                campaign.id, campaign.id
            ));
        }
        Ok(())
    }

    /// Pauses campaign `id` and its sending runs or steps; new sends stop within a second.
    /// An admin may pause a sending or scheduled campaign (anything else is refused); when the
    /// engine pauses one, it tells the owner why. Returns whether it paused.
    pub async fn pause(&self, id: i64, by: PauseBy<'_>) -> Result<bool> {
        let now = self.clock.now();
        let (from, why): (&[CampaignStatus], &str) = match by {
            PauseBy::Admin => (
                &[CampaignStatus::Sending, CampaignStatus::Scheduled],
                "paused by admin",
            ),
            PauseBy::Engine { why } => (&[CampaignStatus::Sending, CampaignStatus::Scheduled], why),
        };
        if !self
            .store
            .transition(id, from, CampaignStatus::Paused, Some(why), now)
            .await?
        {
            return match by {
                PauseBy::Admin => {
                    let campaign = self.campaign_or_reject(id).await?;
                    rejected(format!(
                        "campaign {id} is {}; only a sending or scheduled campaign can be paused",
                        campaign.status
                    ))
                }
                PauseBy::Engine { .. } => Ok(false),
            };
        }
        self.status_changed(id);
        for run in self.store.runs(id).await? {
            if self
                .store
                .transition(
                    run.id,
                    &[CampaignStatus::Sending],
                    CampaignStatus::Paused,
                    Some(why),
                    now,
                )
                .await?
            {
                self.status_changed(run.id);
            }
        }
        if let PauseBy::Engine { why } = by {
            tracing::warn!(campaign_id = id, why, "campaign paused");
            let owner = self.store.campaign(id).await?.and_then(|c| c.owner);
            self.tell_owner(
                owner.as_deref(),
                format!("campaign {id} paused: {why}. Fix the cause, then /campaign resume {id}"),
            )
            .await;
        }
        Ok(true)
    }

    /// Resumes a paused campaign with exactly the recipients not yet sent, and its paused runs
    /// or steps.
    pub async fn resume(&self, id: i64) -> Result<Resumed> {
        let campaign = self.campaign_or_reject(id).await?;
        if campaign.status != CampaignStatus::Paused {
            return rejected(format!(
                "campaign {id} is {}; only a paused campaign can be resumed",
                campaign.status
            ));
        }
        self.check_template(&campaign).await?;
        // A campaign paused before its scheduled start goes back to waiting for it.
        let status = if campaign.kind == CampaignKind::Recurring
            || (campaign.started_at.is_none() && campaign.scheduled_at.is_some())
        {
            CampaignStatus::Scheduled
        } else {
            CampaignStatus::Sending
        };
        let now = self.clock.now();
        if !self
            .store
            .transition(id, &[CampaignStatus::Paused], status, None, now)
            .await?
        {
            return rejected(format!("campaign {id} changed meanwhile; try again"));
        }
        self.status_changed(id);
        for run in self.store.runs(id).await? {
            self.store
                .transition(
                    run.id,
                    &[CampaignStatus::Paused],
                    CampaignStatus::Sending,
                    None,
                    now,
                )
                .await?;
            self.status_changed(run.id);
        }
        self.wake();
        Ok(Resumed { status })
    }

    /// Ends campaign `id` and its runs or steps for good: nothing queued is sent. Returns how
    /// many recipients will not be sent.
    pub async fn cancel(&self, id: i64) -> Result<u64> {
        let campaign = self.campaign_or_reject(id).await?;
        if campaign.status.is_final() {
            return rejected(format!("campaign {id} is already {}", campaign.status));
        }
        let live = [
            CampaignStatus::Draft,
            CampaignStatus::Scheduled,
            CampaignStatus::Sending,
            CampaignStatus::Paused,
        ];
        let now = self.clock.now();
        let why = Some("cancelled by admin");
        if !self
            .store
            .transition(id, &live, CampaignStatus::Cancelled, why, now)
            .await?
        {
            return rejected(format!("campaign {id} changed meanwhile; try again"));
        }
        self.status_changed(id);
        let mut dropped = self.store.skip_pending(id, SkipReason::Cancelled).await?;
        for run in self.store.runs(id).await? {
            if self
                .store
                .transition(run.id, &live, CampaignStatus::Cancelled, why, now)
                .await?
            {
                self.status_changed(run.id);
                dropped += self
                    .store
                    .skip_pending(run.id, SkipReason::Cancelled)
                    .await?;
            }
        }
        Ok(dropped)
    }

    /// `/campaign retry`: sends again, on the admin's word, the recipients left `unknown` (the
    /// channel never answered) or `failed` with an error that is not final. Never a contact who
    /// opted out or cannot be reached. Returns how many were queued.
    pub async fn retry(&self, id: i64, which: RetryWhich) -> Result<u64> {
        let campaign = self.campaign_or_reject(id).await?;
        if campaign.status == CampaignStatus::Cancelled {
            return rejected(format!("campaign {id} is cancelled"));
        }
        let (ids, from) = match which {
            RetryWhich::Unknown => (
                self.store.unknown_recipients(id).await?,
                RecipientStatus::Unknown,
            ),
            RetryWhich::Failed => {
                let failed = self.store.failed_recipients(id).await?;
                let ids = failed
                    .into_iter()
                    .filter(|f| !f.contact_closed && !self.is_final_failure(f))
                    .map(|f| f.recipient_id)
                    .collect();
                (ids, RecipientStatus::Failed)
            }
        };
        let queued = self.store.requeue(id, &ids, from, self.clock.now()).await?;
        if queued > 0 {
            self.status_changed(id);
            self.wake();
        }
        Ok(queued)
    }

    /// Whether this failure could go otherwise next time: the channel classes it as passing
    /// (a server error, a rate or per-user limit), or it was the network or a 5xx answer.
    /// Anything else (undeliverable, outside the window, blocked, stopped marketing, a code the
    /// channel does not know) would fail again and is not retried.
    fn is_final_failure(&self, f: &crate::store::FailedRecipient) -> bool {
        let Some(code) = f.error_code.as_deref() else {
            return true;
        };
        let class = self
            .channels
            .for_address(&f.address)
            .and_then(|channel| channel.classify_failure(code));
        let passing_class = matches!(
            class,
            Some(
                ErrorClass::Transient
                    | ErrorClass::RateLimited
                    | ErrorClass::Defer
                    | ErrorClass::Unknown
            )
        );
        let passing_code = matches!(code, "timeout" | "network" | "connect" | "io")
            || code
                .parse::<u16>()
                .is_ok_and(|status| status == 408 || (500..=599).contains(&status));
        !(passing_class || passing_code)
    }

    async fn campaign_or_reject(&self, id: i64) -> Result<Campaign> {
        self.store
            .campaign(id)
            .await?
            .ok_or_else(|| EngineError::Rejected(format!("no campaign {id}; see /campaign list")))
    }
}
