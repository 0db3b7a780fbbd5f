//! The dispatcher: claims a window of recipients, applies the send rules, paces, sends and
//! records each outcome durably. One call of [`Engine::dispatch_step`] handles one window of
//! each sending campaign and reports what happened; a loop (or a test) calls it again.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures::stream::StreamExt;

use super::pacing::Pacer;
use super::rules::{self, Decision, MessageKind};
use super::{Engine, Result};
use crate::channels::{Audience, Channel, ErrorClass, Outbound, OutboundBody, SendError};
use crate::config::Tier;
use crate::domain::content::{self, ContactFields, MissingVars};
use crate::store::recipients::Outcome;
use crate::store::{Campaign, CampaignKind, CampaignStatus, Claimed, Contact, Template};

/// Rows claimed at once when pacing is off: large enough that the per-window queries and the
/// drain at the end of a window are spread over many messages. Only [`MARK_AHEAD`] of them are
/// marked `sending` ahead of their send, so a crash leaves few `unknown` whatever this is.
pub const UNPACED_WINDOW: i64 = 2000;
/// Messages marked `sending` by one statement, just ahead of their send.
const MARK_AHEAD: usize = 128;
/// Messages in flight at once when pacing is off (the channel's own ceiling still holds).
pub const UNPACED_CONCURRENCY: usize = 64;
/// Most outcomes written by one statement.
const RECORD_BATCH: usize = 256;
/// How long the recorder of an unpaced window waits to fill a statement.
const RECORD_LINGER: StdDuration = StdDuration::from_millis(5);
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

/// How one message of a window ended, on its way to the recorder.
struct Done {
    recipient_id: i64,
    contact_id: i64,
    outcome: Outcome,
    /// When it ended (a send's time is when the channel answered, not when it was recorded).
    at: DateTime<Utc>,
    counts: DispatchOutcome,
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
    /// One window of every sending campaign. Once shutdown has begun it claims nothing more.
    pub async fn dispatch_step(&self) -> Result<DispatchOutcome> {
        let mut total = DispatchOutcome::default();
        for campaign in self.store.campaigns(Some(CampaignStatus::Sending)).await? {
            if self.is_stopping() {
                break;
            }
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
            return UNPACED_WINDOW;
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
        let pacer = self.pacer_for(campaign);
        let now = self.clock.now();
        let claimed = self
            .store
            .claim(
                campaign.id,
                &self.worker_id,
                now,
                self.unique_lease(now),
                Self::window_size(&pacer),
            )
            .await?;
        if claimed.is_empty() {
            self.finish_if_done(campaign).await?;
            return Ok(DispatchOutcome::default());
        }
        let ids: Vec<i64> = claimed.iter().map(|c| c.recipient_id).collect();
        let out = self
            .with_heartbeat(&ids, self.work_window(campaign, &pacer, claimed, now))
            .await?;
        if out.sent + out.failed > 0 {
            self.guard_quality(campaign).await?;
        }
        if !self.finish_if_done(campaign).await? && !out.is_idle() {
            self.show_progress(campaign, false).await?;
        }
        Ok(out)
    }

    /// The lease for a claim made at `now`, its end a millisecond past the previous claim's if
    /// need be: the store finds a claim's rows by worker and lease end, so two claims of this
    /// engine must never end at the same instant.
    fn unique_lease(&self, now: DateTime<Utc>) -> Duration {
        let mut last = self
            .last_lease_end
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let end = (now + self.lease()).max(*last + Duration::milliseconds(1));
        *last = end;
        end - now
    }

    /// Runs `work` while renewing this worker's lease on `ids` every third of a lease, so the
    /// lease can stay short (a dead process's rows come back soon) however long a paced window
    /// or a slow channel makes the work. The renewal uses wall time: it guards against real
    /// processes dying, whatever the engine's clock says.
    async fn with_heartbeat<T>(
        &self,
        ids: &[i64],
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let every = (self.lease() / 3)
            .to_std()
            .unwrap_or(StdDuration::from_secs(1))
            .max(StdDuration::from_millis(100));
        let heartbeat = async {
            loop {
                tokio::time::sleep(every).await;
                let until = self.clock.now() + self.lease();
                if let Err(error) = self.store.renew(ids, &self.worker_id, until).await {
                    tracing::warn!(%error, "could not renew the lease");
                }
            }
        };
        tokio::select! {
            biased;
            out = work => out,
            never = heartbeat => never,
        }
    }

    /// Applies the rules to a claimed window, records the skips and holds, and sends the rest.
    async fn work_window(
        &self,
        campaign: &Campaign,
        pacer: &Arc<Pacer>,
        claimed: Vec<Claimed>,
        now: DateTime<Utc>,
    ) -> Result<DispatchOutcome> {
        let mut out = DispatchOutcome::default();
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
        let mut not_sent = Vec::new();
        for r in claimed {
            match self.prepare(campaign, template.as_ref(), &r, now).await? {
                Ok(p) => ready.push(p),
                Err(outcome) => {
                    match &outcome {
                        Outcome::Skipped { .. } => out.skipped += 1,
                        _ => out.held += 1,
                    }
                    not_sent.push((r.recipient_id, outcome, now));
                }
            }
        }
        self.store.record_many(&not_sent, &self.worker_id).await?;
        if !ready.is_empty() {
            out.add(self.send_window(campaign, pacer, ready).await?);
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

    /// Sends a window and records the outcomes, as three stages running at once: a marker that
    /// marks the next few messages `sending` (one statement per [`MARK_AHEAD`] messages, just
    /// ahead of their send), the sends themselves, and a recorder that writes whatever outcomes
    /// have arrived in one statement. At high rates each statement covers many messages while
    /// the next sends are already on the wire; at low rates each outcome is written as soon as
    /// it is known; and a crash leaves at most the marked-ahead rows `unknown`, not the window.
    async fn send_window(
        &self,
        campaign: &Campaign,
        pacer: &Arc<Pacer>,
        ready: Vec<Prepared>,
    ) -> Result<DispatchOutcome> {
        let paced = pacer.is_paced();
        let concurrency = if !paced {
            UNPACED_CONCURRENCY
        } else if pacer.pace().rate > 50.0 {
            8
        } else {
            1
        };
        // Every channel between the stages is unbounded and every stage awaits only its own
        // work: a future holding the database connection (SQLite has one) must never sit
        // unpolled behind a full channel while the stage it waits for needs that connection.
        // How far the marker runs ahead is bounded instead by `ahead`: permits for rows marked
        // but not yet taken by a sender, acquired before marking.
        let ahead = Arc::new(tokio::sync::Semaphore::new(MARK_AHEAD * 3));
        let (to_send, mut marked) = tokio::sync::mpsc::unbounded_channel::<Vec<Prepared>>();
        let (to_record, mut outcomes) =
            tokio::sync::mpsc::unbounded_channel::<Result<Option<Done>>>();
        let mark = {
            let ahead = ahead.clone();
            async move {
                // Paced messages are marked one by one in `send_one`, after their slot.
                if paced {
                    let _ = to_send.send(ready);
                    return Ok(());
                }
                let mut chunks = Vec::new();
                let mut rest = ready.into_iter().peekable();
                while rest.peek().is_some() {
                    chunks.push(rest.by_ref().take(MARK_AHEAD).collect::<Vec<_>>());
                }
                // Two marking statements in flight: each waits for a durable commit, and
                // overlapping them keeps the senders fed.
                let mut marking = futures::stream::iter(chunks)
                    .map(|chunk| self.mark_chunk(campaign.id, chunk, &ahead))
                    .buffered(2);
                while let Some(chunk) = marking.next().await {
                    if to_send.send(chunk?).is_err() {
                        break;
                    }
                }
                Ok::<_, super::EngineError>(())
            }
        };
        let send = async move {
            let marked = futures::stream::poll_fn(|cx| marked.poll_recv(cx))
                .flat_map(futures::stream::iter)
                .inspect(|_| ahead.add_permits(1));
            let mut sends = marked
                .map(|p| self.send_one(campaign, pacer, p, paced))
                .buffer_unordered(concurrency);
            while let Some(done) = sends.next().await {
                if to_record.send(done).is_err() {
                    break; // the recorder failed; what is left stays in flight for recovery
                }
            }
        };
        let record = async {
            let mut out = DispatchOutcome::default();
            let mut arrived = Vec::with_capacity(RECORD_BATCH);
            let mut batch = Vec::with_capacity(RECORD_BATCH);
            while outcomes.recv_many(&mut arrived, RECORD_BATCH).await > 0 {
                if !paced {
                    // At full speed, wait a moment for more outcomes: one statement for many
                    // messages costs far less than many small ones.
                    let until = tokio::time::Instant::now() + RECORD_LINGER;
                    while arrived.len() < RECORD_BATCH {
                        let more = RECORD_BATCH - arrived.len();
                        match tokio::time::timeout_at(until, outcomes.recv_many(&mut arrived, more))
                            .await
                        {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                }
                let mut contacts = Vec::with_capacity(arrived.len());
                for done in arrived.drain(..) {
                    if let Some(done) = done? {
                        out.add(done.counts);
                        contacts.push(done.contact_id);
                        batch.push((done.recipient_id, done.outcome, done.at));
                    }
                }
                self.store.record_many(&batch, &self.worker_id).await?;
                // What follows a recorded outcome: the contact's next drip step, `/on failed`.
                for ((_, outcome, _), contact_id) in batch.iter().zip(contacts) {
                    match outcome {
                        Outcome::Sent { .. } => self.advance_drip(campaign, contact_id).await?,
                        Outcome::Failed { .. } => {
                            self.on_recipient_event(campaign.id, contact_id, "failed")
                                .await?
                        }
                        _ => {}
                    }
                }
                batch.clear();
            }
            Ok::<_, super::EngineError>(out)
        };
        let (marked, (), recorded) = tokio::join!(mark, send, record);
        marked?;
        recorded
    }

    /// Marks a chunk of an unpaced window `sending`, just before it goes to the senders, and
    /// returns the messages still ours (an opt-out or a cancel may have taken some). On shutdown
    /// or pause the chunk is released instead, back to the queue as it was. Waits first for
    /// room `ahead` of the senders, holding nothing else meanwhile.
    async fn mark_chunk(
        &self,
        campaign_id: i64,
        chunk: Vec<Prepared>,
        ahead: &tokio::sync::Semaphore,
    ) -> Result<Vec<Prepared>> {
        let room = ahead
            .acquire_many(chunk.len() as u32)
            .await
            .expect("the semaphore is never closed");
        let ids: Vec<i64> = chunk.iter().map(|p| p.recipient_id).collect();
        if self.is_stopping() || !self.still_sending(campaign_id).await? {
            self.store.release(&ids).await?;
            return Ok(Vec::new());
        }
        let ours = self.store.mark_sending(&ids, &self.worker_id).await?;
        let kept: Vec<Prepared> = chunk
            .into_iter()
            .filter(|p| ours.binary_search(&p.recipient_id).is_ok())
            .collect();
        // The senders give back one permit per message they take.
        room.forget();
        ahead.add_permits(ids.len() - kept.len());
        Ok(kept)
    }

    /// Sends one message (after its pacing slot, when paced) and says how it ended; `None` when
    /// it was not sent and already put back (pause, cancel, opt-out, shutdown).
    #[tracing::instrument(skip_all, fields(campaign_id = campaign.id, recipient = p.recipient_id))]
    async fn send_one(
        &self,
        campaign: &Campaign,
        pacer: &Pacer,
        p: Prepared,
        paced: bool,
    ) -> Result<Option<Done>> {
        let stop = self.stop_token();
        if paced {
            let slot = pacer.reserve(self.clock.now());
            let wait = slot - self.clock.now();
            if let Ok(wait) = wait.to_std() {
                if !wait.is_zero() {
                    tokio::select! {
                        _ = self.clock.sleep(wait) => {}
                        _ = stop.cancelled() => {}
                    }
                }
            }
            // Pause, cancel and shutdown take effect before the very next message; a slot far
            // away (a batch pause) is not waited out on shutdown: the row goes back to the queue.
            if stop.is_cancelled() || !self.still_sending(campaign.id).await? {
                self.store.release(&[p.recipient_id]).await?;
                return Ok(None);
            }
            if self
                .store
                .mark_sending(&[p.recipient_id], &self.worker_id)
                .await?
                .is_empty()
            {
                // An opt-out or a cancel took this recipient away while it waited.
                return Ok(None);
            }
        } else if stop.is_cancelled() || !self.still_sending(campaign.id).await? {
            // Marked as possibly sent with its window, but never handed to the channel: it goes
            // back to the queue for the resume or the next process, its attempt refunded.
            let back = Outcome::Retry {
                at: self.clock.now(),
                code: None,
                reason: None,
                refund_attempt: true,
            };
            return Ok(Some(Done {
                recipient_id: p.recipient_id,
                contact_id: p.contact_id,
                outcome: back,
                at: self.clock.now(),
                counts: DispatchOutcome::default(),
            }));
        }
        let result = p.channel.send(&p.msg).await;
        let now = self.clock.now();
        let mut counts = DispatchOutcome::default();
        let outcome = match result {
            Ok(sent) => {
                pacer.succeeded();
                self.metrics.message_sent(p.channel.kind());
                counts.sent += 1;
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
                        counts.failed += 1
                    }
                    _ => counts.held += 1,
                }
                outcome
            }
        };
        Ok(Some(Done {
            recipient_id: p.recipient_id,
            contact_id: p.contact_id,
            outcome,
            at: now,
            counts,
        }))
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
        if campaign.kind != CampaignKind::OneTime || self.store.has_pending(campaign.id).await? {
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
