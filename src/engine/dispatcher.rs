//! The dispatcher: claims a window of recipients, applies the send rules, paces, sends and
//! records each outcome durably. One call of [`Engine::dispatch_step`] handles one window of
//! each sending campaign and reports what happened; a loop (or a test) calls it again.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures::stream::{self, StreamExt};

use super::pacing::Pacer;
use super::rules::{self, Decision, MessageKind};
use super::{Engine, Result};
use crate::channels::{Audience, Channel, ErrorClass, Outbound, OutboundBody, SendError};
use crate::config::Tier;
use crate::domain::content::{self, ContactFields, MissingVars};
use crate::store::recipients::Outcome;
use crate::store::{Campaign, CampaignKind, CampaignStatus, Claimed, Contact, Template};

/// How long a claim is ours; windows are sized to take a couple of seconds, so a lease this long
/// only runs out when its process died.
const LEASE: Duration = Duration::minutes(5);
/// Retry a 131049 (per-user marketing limit) this much later, at most this many times.
const DEFER_FOR: Duration = Duration::hours(6);
const MAX_DEFERS: i64 = 4;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DispatchOutcome {
    pub sent: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Put back for later: tier budget, quiet hours, retries.
    pub held: u64,
}

impl DispatchOutcome {
    pub fn is_idle(&self) -> bool {
        self.sent + self.skipped + self.failed + self.held == 0
    }

    fn add(&mut self, o: DispatchOutcome) {
        self.sent += o.sent;
        self.skipped += o.skipped;
        self.failed += o.failed;
        self.held += o.held;
    }
}

/// A message ready for one contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub body: OutboundBody,
    pub variant: Option<i64>,
    /// Template category, or `free` for free text (for cost).
    pub category: String,
}

/// Renders a campaign's content for one contact: the deterministic variant of free text, or the
/// template with its parameters filled. A missing variable is an error, never a blank.
pub fn render_for(
    campaign: &Campaign,
    template: Option<&Template>,
    contact: &Contact,
) -> std::result::Result<Rendered, RenderError> {
    let fields = ContactFields {
        name: contact.name.as_deref(),
        address: &contact.address,
        lang: contact.lang.as_deref(),
        attrs: &contact.attrs,
    };
    match (&campaign.template, template) {
        (Some(tref), Some(t)) => {
            let mut params = Vec::with_capacity(tref.params.len());
            let mut missing = Vec::new();
            for p in &tref.params {
                match content::render(p, &fields) {
                    Ok(v) => params.push(v),
                    Err(MissingVars(m)) => missing.extend(m),
                }
            }
            if !missing.is_empty() {
                return Err(RenderError::Missing(missing));
            }
            let rendered = content::fill_template(&t.body, &params);
            Ok(Rendered {
                body: OutboundBody::Template {
                    name: t.name.clone(),
                    lang: t.lang.clone(),
                    params,
                    rendered,
                    buttons: Vec::new(),
                },
                variant: None,
                category: t.category.clone(),
            })
        }
        (Some(tref), None) => Err(RenderError::NoTemplate(format!(
            "template {} ({}) does not exist",
            tref.name, tref.lang
        ))),
        (None, _) => {
            let texts = campaign.texts();
            if texts.is_empty() {
                return Err(RenderError::NoContent);
            }
            let variant = content::choose_variant(campaign.id, contact.id, texts.len());
            let text = content::render(texts[variant], &fields)
                .map_err(|MissingVars(m)| RenderError::Missing(m))?;
            Ok(Rendered {
                body: OutboundBody::Text(text),
                variant: (texts.len() > 1).then_some(variant as i64),
                category: "free".into(),
            })
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    #[error("missing {}", .0.join(", "))]
    Missing(Vec<String>),
    #[error("{0}")]
    NoTemplate(String),
    #[error("the campaign has no message yet: use /campaign text or /campaign template")]
    NoContent,
}

struct Prepared {
    recipient_id: i64,
    contact_id: i64,
    channel: Arc<dyn Channel>,
    msg: Outbound,
    rendered: Rendered,
    outside_window: bool,
    attempts: i64,
}

impl Engine {
    /// One window of every sending campaign.
    pub async fn dispatch_step(&self) -> Result<DispatchOutcome> {
        let mut total = DispatchOutcome::default();
        for campaign in self.store.campaigns(Some(CampaignStatus::Sending)).await? {
            total.add(self.dispatch_campaign(&campaign).await?);
        }
        Ok(total)
    }

    fn pacer_for(&self, campaign: &Campaign) -> Arc<Pacer> {
        let mut pacers = self.pacers.lock().unwrap_or_else(|e| e.into_inner());
        let pacer = pacers
            .entry(campaign.id)
            .or_insert_with(|| Arc::new(Pacer::new(campaign.pace)));
        if *pacer.pace() != campaign.pace {
            *pacer = Arc::new(Pacer::new(campaign.pace));
        }
        pacer.clone()
    }

    /// How many recipients to claim at once: about two seconds of sending, so a pause or a
    /// crash strands little, and large windows when pacing is off.
    fn window_size(pacer: &Pacer) -> i64 {
        if !pacer.is_paced() {
            return 500;
        }
        let pace = pacer.pace();
        let mut gap_ms = if pace.rate > 0.0 {
            1000.0 / pace.rate
        } else {
            0.0
        };
        gap_ms = gap_ms.max((pace.delay_min_ms + pace.delay_max_ms) as f64 / 2.0);
        ((2000.0 / gap_ms.max(1.0)) as i64).clamp(1, 200)
    }

    #[tracing::instrument(skip_all, fields(campaign_id = campaign.id))]
    async fn dispatch_campaign(&self, campaign: &Campaign) -> Result<DispatchOutcome> {
        let mut out = DispatchOutcome::default();
        let pacer = self.pacer_for(campaign);
        let now = self.clock.now();
        let claimed = self
            .store
            .claim(
                campaign.id,
                &self.worker_id,
                now,
                LEASE,
                Self::window_size(&pacer),
            )
            .await?;
        if claimed.is_empty() {
            self.finish_if_done(campaign).await?;
            return Ok(out);
        }
        let template = match &campaign.template {
            Some(t) => self.store.template(&t.name, &t.lang).await?,
            None => None,
        };
        if campaign.template.is_some() && template.is_none() {
            let ids: Vec<i64> = claimed.iter().map(|c| c.recipient_id).collect();
            self.store.release(&ids).await?;
            self.pause_campaign(
                campaign,
                "132001 template missing: add it with /template add",
            )
            .await?;
            return Ok(out);
        }
        let mut ready = Vec::new();
        for r in claimed {
            match self.prepare(campaign, template.as_ref(), &r, now).await? {
                Ok(p) => ready.push(p),
                Err(outcome) => {
                    match &outcome {
                        Outcome::Skipped { .. } => out.skipped += 1,
                        _ => out.held += 1,
                    }
                    self.store.record(r.recipient_id, &outcome, now).await?;
                }
            }
        }
        if ready.is_empty() {
            self.finish_if_done(campaign).await?;
            return Ok(out);
        }
        out.add(self.send_window(campaign, &pacer, ready).await?);
        self.guard_quality(campaign).await?;
        if !self.finish_if_done(campaign).await? {
            self.show_progress(campaign, false).await?;
        }
        Ok(out)
    }

    /// Applies the rules to one claimed recipient and renders its message; `Err` carries the
    /// outcome to record instead (skip or hold).
    async fn prepare(
        &self,
        campaign: &Campaign,
        template: Option<&Template>,
        r: &Claimed,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<Prepared, Outcome>> {
        let skip = |reason: &str| {
            Ok(Err(Outcome::Skipped {
                reason: reason.to_string(),
            }))
        };
        let Some(channel) = self.channels.for_address(&r.contact.address) else {
            return skip("no_channel");
        };
        let kind = MessageKind {
            template_category: template.map(|t| t.category.as_str()),
            triggered: campaign.kind == CampaignKind::Triggered,
        };
        let outside_window = match rules::check_contact(&r.contact, channel.kind(), kind, now) {
            Decision::Skip(reason) => return skip(reason),
            Decision::Hold(at) => return Ok(Err(hold(at, "held"))),
            Decision::Send { outside_window } => outside_window,
        };
        let rendered = match render_for(campaign, template, &r.contact) {
            Ok(rendered) => rendered,
            Err(RenderError::Missing(_)) => return skip("missing_variable"),
            Err(_) => return skip("no_content"),
        };
        if let Some(until) = rules::quiet_until(&self.config, &r.contact, now) {
            return Ok(Err(hold(until, "quiet_hours")));
        }
        if outside_window {
            if let Some(until) = self.tier_hold(r.contact.id, now).await? {
                return Ok(Err(hold(until, "tier_limit")));
            }
        }
        let msg = Outbound {
            to: r.contact.address.clone(),
            audience: Audience::Customer,
            body: rendered.body.clone(),
            callback: Some(format!("r{}:c{}", r.recipient_id, campaign.id)),
        };
        Ok(Ok(Prepared {
            recipient_id: r.recipient_id,
            contact_id: r.contact.id,
            channel,
            msg,
            rendered,
            outside_window,
            attempts: r.attempts,
        }))
    }

    /// The rolling 24 h tier: a contact not yet reached outside their window in the last 24 h
    /// takes one unit of budget, reserved now (before the send) so concurrent sends cannot
    /// overspend. When the budget is spent, the hold lasts until the oldest unit ages out.
    async fn tier_hold(
        &self,
        contact_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let Tier::Limited(limit) = self.config.tier else {
            return Ok(None);
        };
        let since = now - rules::SERVICE_WINDOW;
        let (used, already) = self.store.tier_usage(since, contact_id).await?;
        if already {
            return Ok(None);
        }
        if used >= limit as i64 {
            let oldest = self.store.tier_oldest(since).await?.unwrap_or(now);
            return Ok(Some(oldest + rules::SERVICE_WINDOW + Duration::seconds(1)));
        }
        self.store.tier_record(contact_id, now).await?;
        Ok(None)
    }

    async fn send_window(
        &self,
        campaign: &Campaign,
        pacer: &Arc<Pacer>,
        ready: Vec<Prepared>,
    ) -> Result<DispatchOutcome> {
        let paced = pacer.is_paced();
        // Unpaced: mark the whole window as possibly-sent at once, then send it concurrently.
        // Paced: each message waits for its slot, then is marked and sent on its own, so a pause
        // or a crash strands nothing that was merely waiting.
        let ready = if paced {
            ready
        } else {
            let ids: Vec<i64> = ready.iter().map(|p| p.recipient_id).collect();
            let ours = self.store.mark_sending(&ids, &self.worker_id).await?;
            ready
                .into_iter()
                .filter(|p| ours.contains(&p.recipient_id))
                .collect()
        };
        let concurrency = if !paced {
            64
        } else if pacer.pace().rate > 50.0 {
            8
        } else {
            1
        };
        let results: Vec<Result<DispatchOutcome>> = stream::iter(ready)
            .map(|p| self.send_one(campaign, pacer, p, paced))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut out = DispatchOutcome::default();
        for r in results {
            out.add(r?);
        }
        Ok(out)
    }

    #[tracing::instrument(skip_all, fields(campaign_id = campaign.id, recipient = p.recipient_id))]
    async fn send_one(
        &self,
        campaign: &Campaign,
        pacer: &Pacer,
        p: Prepared,
        paced: bool,
    ) -> Result<DispatchOutcome> {
        let mut out = DispatchOutcome::default();
        if paced {
            let slot = pacer.reserve(self.clock.now());
            let wait = slot - self.clock.now();
            if let Ok(wait) = wait.to_std() {
                if !wait.is_zero() {
                    self.clock.sleep(wait).await;
                }
            }
            // Pause and cancel take effect before the very next message.
            if !self.still_sending(campaign.id).await? {
                self.store.release(&[p.recipient_id]).await?;
                return Ok(out);
            }
            if self
                .store
                .mark_sending(&[p.recipient_id], &self.worker_id)
                .await?
                .is_empty()
            {
                // An opt-out or a cancel took this recipient away while it waited.
                return Ok(out);
            }
        } else if !self.still_sending(campaign.id).await? {
            // Marked as possibly sent with its window, but never handed to the channel: it goes
            // back to the queue for the resume, its attempt refunded.
            let back = Outcome::Retry {
                at: self.clock.now(),
                code: None,
                reason: None,
                refund_attempt: true,
            };
            self.store
                .record(p.recipient_id, &back, self.clock.now())
                .await?;
            return Ok(out);
        }
        let result = p.channel.send(&p.msg).await;
        let now = self.clock.now();
        let outcome = match result {
            Ok(sent) => {
                pacer.succeeded();
                self.metrics.message_sent(p.channel.kind());
                out.sent += 1;
                Outcome::Sent {
                    provider_id: sent.provider_id,
                    variant: p.rendered.variant,
                    category: p.rendered.category.clone(),
                    outside_window: p.outside_window,
                }
            }
            Err(e) => {
                tracing::warn!(code = %e.code, reason = %e.reason, "send failed");
                let outcome = self.on_send_error(campaign, pacer, &p, &e, now).await?;
                match outcome {
                    Outcome::Failed { .. } => {
                        self.metrics.message_failed(p.channel.kind());
                        out.failed += 1
                    }
                    _ => out.held += 1,
                }
                outcome
            }
        };
        self.store.record(p.recipient_id, &outcome, now).await?;
        if matches!(outcome, Outcome::Sent { .. }) {
            self.advance_drip(campaign, p.contact_id).await?;
        }
        if matches!(outcome, Outcome::Failed { .. }) {
            self.on_recipient_event(campaign.id, p.contact_id, "failed")
                .await?;
        }
        Ok(out)
    }

    /// SPEC section 3's error taxonomy.
    async fn on_send_error(
        &self,
        campaign: &Campaign,
        pacer: &Pacer,
        p: &Prepared,
        e: &SendError,
        now: DateTime<Utc>,
    ) -> Result<Outcome> {
        let attempts = p.attempts + 1;
        let failed = || Outcome::Failed {
            code: e.code.clone(),
            reason: e.reason.clone(),
        };
        let retry = |at: DateTime<Utc>, refund_attempt: bool| Outcome::Retry {
            at,
            code: Some(e.code.clone()),
            reason: Some(e.reason.clone()),
            refund_attempt,
        };
        Ok(match e.class {
            ErrorClass::RateLimited => {
                let wait = e
                    .retry_after
                    .and_then(|d| Duration::from_std(d).ok())
                    .unwrap_or(Duration::seconds(1));
                pacer.back_off(now + wait);
                retry(now + wait, true)
            }
            ErrorClass::Transient if attempts < self.config.max_attempts => {
                // 2 s, 4 s, 8 s ... capped at 5 minutes.
                let backoff = Duration::seconds((1i64 << attempts.min(8)).min(300));
                retry(now + backoff, false)
            }
            ErrorClass::Transient => failed(),
            ErrorClass::Defer if attempts < MAX_DEFERS => retry(now + DEFER_FOR, false),
            ErrorClass::Defer => failed(),
            ErrorClass::Permanent => failed(),
            ErrorClass::Unreachable => {
                self.store
                    .set_unreachable(p.contact_id, Some(&e.reason))
                    .await?;
                failed()
            }
            ErrorClass::MarketingStopped => {
                self.store.set_marketing_stopped(p.contact_id, true).await?;
                failed()
            }
            ErrorClass::PauseCampaign => {
                self.pause_campaign(campaign, &format!("{} {}", e.code, e.reason))
                    .await?;
                // Not this recipient's fault: it stays queued for the resume.
                retry(now, true)
            }
        })
    }

    /// Pauses a sending campaign on its own and tells the owner why.
    pub(crate) async fn pause_campaign(&self, campaign: &Campaign, why: &str) -> Result<()> {
        let now = self.clock.now();
        if self
            .store
            .transition(
                campaign.id,
                &[CampaignStatus::Sending],
                CampaignStatus::Paused,
                Some(why),
                now,
            )
            .await?
        {
            self.status_changed(campaign.id);
            tracing::warn!(campaign_id = campaign.id, why, "campaign paused");
            self.tell_owner(
                campaign.owner.as_deref(),
                format!(
                    "campaign {} paused: {why}. Fix the cause, then /campaign resume {}",
                    campaign.id, campaign.id
                ),
            )
            .await;
        }
        Ok(())
    }

    /// The quality guard: too many failures or opt-outs among the last sends pause the campaign.
    async fn guard_quality(&self, campaign: &Campaign) -> Result<()> {
        let c = &self.config;
        let (n, failed, opted_out) = self.store.quality(campaign.id, c.quality_window).await?;
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
        self.pause_campaign(campaign, &why).await
    }

    /// A one-time campaign with nothing left to do is completed, and its owner gets the summary.
    /// Returns whether it completed now.
    async fn finish_if_done(&self, campaign: &Campaign) -> Result<bool> {
        if campaign.kind != CampaignKind::OneTime || self.store.pending(campaign.id).await? > 0 {
            return Ok(false);
        }
        let now = self.clock.now();
        if self
            .store
            .transition(
                campaign.id,
                &[CampaignStatus::Sending],
                CampaignStatus::Completed,
                None,
                now,
            )
            .await?
        {
            self.show_progress(campaign, true).await?;
            let r = self.store.report(campaign.id).await?;
            self.pacers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&campaign.id);
            self.tell_owner(
                campaign.owner.as_deref(),
                format!(
                    "campaign {} completed: {} sent, {} failed, {} skipped of {} targeted",
                    campaign.id, r.sent, r.failed, r.skipped, r.targeted
                ),
            )
            .await;
            return Ok(true);
        }
        Ok(false)
    }

    /// Earliest time a held recipient of any sending campaign becomes due.
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let mut next: Option<DateTime<Utc>> = None;
        for c in self.store.campaigns(Some(CampaignStatus::Sending)).await? {
            if let Some(t) = self.store.next_due(c.id).await? {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        Ok(next)
    }
}

fn hold(at: DateTime<Utc>, reason: &str) -> Outcome {
    Outcome::Retry {
        at,
        code: None,
        reason: Some(reason.to_string()),
        refund_attempt: false,
    }
}

/// Used by the console's settle loop: short holds (rate limits, retries) are waited out.
pub const SHORT_HOLD: StdDuration = StdDuration::from_secs(120);
