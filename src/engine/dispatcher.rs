//! The dispatcher: claims recipients, applies the send rules, paces, sends and records each
//! outcome durably. One call of [`Engine::dispatch_step`] handles one window of each paced
//! campaign (or up to two seconds of an unpaced one) and reports what happened; a loop (or a
//! test) calls it again.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures::stream::StreamExt;

use super::eligibility::{self, Verdict};
use super::lifecycle::PauseBy;
use super::pacing::Pacer;
use super::render::Rendered;
use super::rules;
use super::{Engine, Result};
use crate::channels::{Audience, Channel, ErrorClass, MediaRef, Outbound, SendError};
use crate::config::Tier;
use crate::domain::actions::RecipientEvent;
use crate::domain::SkipReason;
use crate::lock;
use crate::store::recipients::Outcome;
use crate::store::{
    Campaign, CampaignKind, CampaignStatus, Claimed, QueuePosition, Template, TierReservation,
};

/// Rows claimed (straight into `sending`) by one statement when pacing is off.
const CLAIM_CHUNK: i64 = 128;
/// How many chunks may be claimed ahead of the senders: a crash leaves at most these `unknown`.
const CLAIMS_AHEAD: usize = 3;
/// How long one dispatch step keeps claiming for an unpaced campaign before it lets the other
/// campaigns (and the loop's housekeeping) have their turn.
const UNPACED_BUDGET: StdDuration = StdDuration::from_secs(2);
/// Sends and failures between two quality checks of a long unpaced run.
const GUARD_EVERY: u64 = 2000;
/// Messages in flight at once when pacing is off (the channel's own ceiling still holds).
pub const UNPACED_CONCURRENCY: usize = 64;
/// Most outcomes written by one statement.
const RECORD_BATCH: usize = crate::store::recipients::OUTCOMES_PER_STATEMENT;
/// How long the recorder of an unpaced window waits to fill a statement.
const RECORD_LINGER: StdDuration = StdDuration::from_millis(5);
/// Retry a 131049 (per-user marketing limit) this much later, at most this many times.
pub(crate) const DEFER_FOR: Duration = Duration::hours(6);
pub(crate) const MAX_DEFERS: i64 = 4;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DispatchOutcome {
    pub sent: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Put back for later: tier budget, quiet hours, retries.
    pub held: u64,
    /// Sent, perhaps: the channel's answer never came.
    pub unknown: u64,
    /// Pages of an audience resolved because the campaign had nothing queued meanwhile.
    pub resolved: u64,
}

impl DispatchOutcome {
    pub fn is_idle(&self) -> bool {
        self.sent + self.skipped + self.failed + self.held + self.unknown + self.resolved == 0
    }

    fn add(&mut self, o: DispatchOutcome) {
        self.sent += o.sent;
        self.skipped += o.skipped;
        self.failed += o.failed;
        self.held += o.held;
        self.unknown += o.unknown;
        self.resolved += o.resolved;
    }
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

/// A claimed chunk of an unpaced campaign: what goes to the senders, and what the rules held or
/// skipped instead.
#[derive(Default)]
struct Chunk {
    claimed: usize,
    ready: Vec<Prepared>,
    not_sent: Vec<Done>,
}

/// The ends of the stages a feed hands its work to (see [`Engine::send_and_record`]).
struct Stages {
    to_send: tokio::sync::mpsc::UnboundedSender<Vec<Prepared>>,
    to_record: tokio::sync::mpsc::UnboundedSender<Result<Option<Done>>>,
    /// Room for rows claimed ahead of the senders.
    ahead: Arc<tokio::sync::Semaphore>,
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
            let done = self
                .contained(campaign.id, self.dispatch_campaign(&campaign))
                .await?;
            total.add(done.unwrap_or_default());
        }
        Ok(total)
    }

    fn pacer_for(&self, campaign: &Campaign) -> Arc<Pacer> {
        let mut pacers = lock(&self.pacers);
        let pacer = pacers
            .entry(campaign.id)
            .or_insert_with(|| Arc::new(Pacer::new(campaign.pace)));
        if *pacer.pace() != campaign.pace {
            *pacer = Arc::new(Pacer::new(campaign.pace));
        }
        pacer.clone()
    }

    /// How many recipients of a paced campaign to claim at once: about two seconds of sending,
    /// so a pause or a crash strands little.
    fn window_size(pacer: &Pacer) -> i64 {
        let pace = pacer.pace();
        let mut gap_ms = if pace.rate > 0.0 {
            1000.0 / pace.rate
        } else {
            0.0
        };
        gap_ms = gap_ms.max((pace.delay_min_ms as f64 + pace.delay_max_ms as f64) / 2.0);
        ((2000.0 / gap_ms.max(1.0)) as i64).clamp(1, 200)
    }

    #[tracing::instrument(skip_all, fields(campaign_id = campaign.id))]
    async fn dispatch_campaign(&self, campaign: &Campaign) -> Result<DispatchOutcome> {
        let pacer = self.pacer_for(campaign);
        // The leases of this step's claims: renewed while it works, ended once every row they
        // cover is recorded. A step that fails leaves them to run out, and recovery settles
        // whatever they still hold.
        let leases = std::sync::Mutex::new(HashSet::new());
        let out = if pacer.is_paced() {
            let claimed = self
                .claim_window(campaign, Self::window_size(&pacer))
                .await?;
            lock(&leases).extend(claimed.iter().map(|c| c.lease));
            self.with_heartbeat(&leases, self.work_window(campaign, &pacer, claimed))
                .await?
        } else {
            self.with_heartbeat(&leases, self.send_unpaced(campaign, &pacer, &leases))
                .await?
        };
        let leases: Vec<i64> = lock(&leases).drain().collect();
        match self.store.end_leases(&leases, &self.worker_id).await {
            Ok(0) => {}
            Ok(kept) => {
                let held = self.store.held_by_leases(&leases, &self.worker_id).await;
                tracing::error!(
                    campaign = campaign.id,
                    kept,
                    ?held,
                    "a finished step still holds rows in flight: their leases run out and \
                     recovery settles them"
                )
            }
            Err(error) => {
                tracing::warn!(%error, "could not end the step's leases: they run out instead")
            }
        }
        if out.is_idle() {
            // Nothing queued: if the audience is not fully resolved, the next page is this
            // step's work (the resolver may be another process, or none at all).
            let mut out = out;
            if campaign.kind == CampaignKind::OneTime && self.resolve_page(campaign.id).await? {
                out.resolved = 1;
                return Ok(out);
            }
            self.finish_if_done(campaign).await?;
            return Ok(out);
        }
        if out.sent + out.failed > 0 {
            self.guard_quality(campaign).await?;
        }
        if !self.finish_if_done(campaign).await? {
            self.show_progress(campaign, false).await?;
        }
        Ok(out)
    }

    /// Claims up to `limit` due recipients of `campaign` for this worker.
    async fn claim_window(&self, campaign: &Campaign, limit: i64) -> Result<Vec<Claimed>> {
        Ok(self
            .store
            .claim(
                campaign.id,
                &self.worker_id,
                self.clock.now(),
                self.lease(),
                limit,
            )
            .await?)
    }

    /// Runs `work` while renewing the `leases` it holds every third of a lease, so a lease can
    /// stay short (a dead process's rows come back soon) however long a paced window or a slow
    /// channel makes the work. The renewal uses wall time: it guards against real processes
    /// dying, whatever the engine's clock says.
    async fn with_heartbeat<T>(
        &self,
        leases: &std::sync::Mutex<HashSet<i64>>,
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
                let ids: Vec<i64> = lock(leases).iter().copied().collect();
                if let Err(error) = self.store.renew(&ids, &self.worker_id, until).await {
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

    /// What a campaign sends besides its texts (its template, its media), or `Err` once the
    /// campaign was paused for lacking it.
    async fn campaign_content(
        &self,
        campaign: &Campaign,
    ) -> Result<std::result::Result<Content, ()>> {
        let template = match &campaign.template {
            None => None,
            Some(t) => match self.store.template(&t.name, &t.lang).await? {
                Some(template) => match self.template_problem(campaign, &template) {
                    None => Some(template),
                    Some(why) => {
                        self.pause(campaign.id, PauseBy::Engine { why: &why })
                            .await?;
                        return Ok(Err(()));
                    }
                },
                None => {
                    let why = "132001 template missing: add it with /template add";
                    self.pause(campaign.id, PauseBy::Engine { why }).await?;
                    return Ok(Err(()));
                }
            },
        };
        let media = match self.campaign_media(campaign).await? {
            None => None,
            Some(Ok(media)) => Some(media),
            Some(Err(why)) => {
                self.pause(campaign.id, PauseBy::Engine { why: &why })
                    .await?;
                return Ok(Err(()));
            }
        };
        Ok(Ok(Content { template, media }))
    }

    /// A paced window: applies the rules to the claimed rows, records the skips and holds, and
    /// sends the rest one by one, each marked `sending` after its pacing slot.
    async fn work_window(
        &self,
        campaign: &Campaign,
        pacer: &Arc<Pacer>,
        claimed: Vec<Claimed>,
    ) -> Result<DispatchOutcome> {
        let Ok(content) = self.campaign_content(campaign).await? else {
            let ids: Vec<i64> = claimed.iter().map(|c| c.recipient_id).collect();
            self.store.release(&ids).await?;
            return Ok(DispatchOutcome::default());
        };
        let now = self.clock.now();
        let mut out = DispatchOutcome::default();
        let mut ready = Vec::new();
        let mut not_sent = Vec::new();
        for r in claimed {
            match self.prepare(campaign, &content, &r, now).await? {
                Ok(p) => ready.push(p),
                Err(outcome) => {
                    out.add(outcome_counts(&outcome));
                    not_sent.push((r.recipient_id, outcome, now));
                }
            }
        }
        self.store.record_many(&not_sent, &self.worker_id).await?;
        self.remember_finished(campaign, &not_sent);
        let feed = |stages: Stages| async move {
            let _ = stages.to_send.send(ready);
            Ok(())
        };
        out.add(self.send_and_record(campaign, pacer, feed).await?);
        Ok(out)
    }

    /// Pacing off: claims [`CLAIM_CHUNK`] rows at a time straight into `sending` (one durable
    /// statement each, two in flight, at most [`CLAIMS_AHEAD`] chunks ahead of the senders),
    /// applies the rules and hands them to the senders, for up to [`UNPACED_BUDGET`] or until
    /// the campaign has nothing due. A crash leaves at most the chunks ahead `unknown`.
    async fn send_unpaced(
        &self,
        campaign: &Campaign,
        pacer: &Arc<Pacer>,
        leases: &std::sync::Mutex<HashSet<i64>>,
    ) -> Result<DispatchOutcome> {
        let Ok(content) = self.campaign_content(campaign).await? else {
            return Ok(DispatchOutcome::default());
        };
        let content = &content;
        let started = std::time::Instant::now();
        // How far this run's claims have reached in the campaign's queue.
        let reached = std::sync::Mutex::new(None);
        let reached = &reached;
        let feed = |stages: Stages| async move {
            let more = std::sync::atomic::AtomicBool::new(true);
            // The rules run inside each buffered future, never in this loop: a buffered claim
            // may hold the database connection (SQLite has one), and this loop must not wait on
            // the database while it leaves that future unpolled.
            let claims = futures::stream::poll_fn(|_| {
                std::task::Poll::Ready(more.load(Relaxed).then_some(()))
            })
            .map(|()| self.claim_chunk(campaign, content, &stages.ahead, leases, reached))
            .buffered(2);
            futures::pin_mut!(claims);
            // Every claim started is worked to the end, even after another one failed: its rows
            // are already `sending`, and dropping it would strand them until recovery calls them
            // `unknown`.
            let mut failed = None;
            let mut unsent = Vec::new();
            while let Some(chunk) = claims.next().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(error) => {
                        more.store(false, Relaxed);
                        failed.get_or_insert(error);
                        continue;
                    }
                };
                if (chunk.claimed as i64) < CLAIM_CHUNK
                    || started.elapsed() >= UNPACED_BUDGET
                    || self.is_stopping()
                {
                    more.store(false, Relaxed);
                }
                for done in chunk.not_sent {
                    if let Err(refused) = stages.to_record.send(Ok(Some(done))) {
                        if let Ok(Some(done)) = refused.0 {
                            unsent.push(done.recipient_id);
                        }
                    }
                }
                if let Err(refused) = stages.to_send.send(chunk.ready) {
                    // The senders have stopped (the recorder failed): these never left.
                    more.store(false, Relaxed);
                    unsent.extend(refused.0.iter().map(|p| p.recipient_id));
                }
            }
            // Given back once no claim is buffered (one may hold SQLite's only connection).
            self.give_back(campaign, &unsent, false).await;
            failed.map_or(Ok(()), Err)
        };
        self.send_and_record(campaign, pacer, feed).await
    }

    /// One chunk of an unpaced campaign claimed straight into `sending`, after waiting for room
    /// `ahead` of the senders, with the rules applied; nothing once a pause, a cancel or a
    /// shutdown has begun.
    async fn claim_chunk(
        &self,
        campaign: &Campaign,
        content: &Content,
        ahead: &tokio::sync::Semaphore,
        leases: &std::sync::Mutex<HashSet<i64>>,
        reached: &std::sync::Mutex<Option<QueuePosition>>,
    ) -> Result<Chunk> {
        let mut chunk = Chunk::default();
        // Closed when the senders have stopped: nothing more to claim for them.
        let Ok(room) = ahead.acquire_many(CLAIM_CHUNK as u32).await else {
            return Ok(chunk);
        };
        if self.is_stopping() || !self.still_sending(campaign.id).await? {
            return Ok(chunk);
        }
        let now = self.clock.now();
        let after = *lock(reached);
        let claimed = self
            .store
            .claim_for_sending(
                campaign.id,
                &self.worker_id,
                now,
                self.lease(),
                CLAIM_CHUNK,
                after,
            )
            .await?;
        chunk.claimed = claimed.len();
        if let Some(last) = claimed.iter().map(|c| c.position).max() {
            let mut reached = lock(reached);
            *reached = (*reached).max(Some(last));
        }
        let ids: Vec<i64> = claimed.iter().map(|c| c.recipient_id).collect();
        lock(leases).extend(claimed.first().map(|c| c.lease));
        for r in claimed {
            let prepared = match self.prepare(campaign, content, &r, now).await {
                Ok(prepared) => prepared,
                Err(error) => {
                    // Nothing of this chunk left: it all goes back to the queue rather than
                    // waiting out its lease to be called `unknown`.
                    self.give_back(campaign, &ids, false).await;
                    return Err(error);
                }
            };
            match prepared {
                Ok(p) => chunk.ready.push(p),
                Err(outcome) => {
                    // Not sent after all: the attempt the claim counted is given back.
                    let outcome = refund(outcome);
                    chunk.not_sent.push(Done {
                        recipient_id: r.recipient_id,
                        contact_id: r.contact.id,
                        counts: outcome_counts(&outcome),
                        outcome,
                        at: now,
                    });
                }
            }
        }
        // The senders give back one permit per row they take; rows not sent need none.
        room.forget();
        ahead.add_permits(CLAIM_CHUNK as usize - chunk.ready.len());
        Ok(chunk)
    }

    /// Applies the rules to one claimed recipient and renders its message; `Err` carries the
    /// outcome to record instead (skip or hold).
    async fn prepare(
        &self,
        campaign: &Campaign,
        content: &Content,
        r: &Claimed,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<Prepared, Outcome>> {
        let channel = self.channels.for_address(&r.contact.address);
        let (rendered, outside_window) = match eligibility::verdict(
            campaign,
            content.template.as_ref(),
            &r.contact,
            content.media.as_ref(),
            channel.as_ref().map(|c| c.kind()),
            now,
        ) {
            Verdict::Send {
                rendered,
                outside_window,
            } => (rendered, outside_window),
            Verdict::Skip { reason, .. } => return Ok(Err(Outcome::Skipped { reason })),
        };
        let Some(channel) = channel else {
            // `verdict` skips a contact no channel serves.
            return Ok(Err(Outcome::Skipped {
                reason: SkipReason::NoChannel,
            }));
        };
        if let Some(until) = rules::quiet_until(&self.config, &r.contact, now) {
            return Ok(Err(hold(until, "quiet_hours")));
        }
        if outside_window {
            // A restriction first: a held message must not spend tier budget.
            if let Some(until) = self.restricted_until(now).await? {
                return Ok(Err(hold(until, super::account::RESTRICTION_HOLD)));
            }
            if let Some(until) = self.tier_hold(r.contact.id, now).await? {
                return Ok(Err(hold(until, super::account::TIER_HOLD)));
            }
        }
        let msg = Outbound {
            to: r.contact.address.to_string(),
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
    /// takes one unit of budget, reserved now (before the send, atomically across processes) so
    /// concurrent sends cannot overspend. When the budget is spent, the hold lasts until the
    /// oldest unit ages out.
    async fn tier_hold(
        &self,
        contact_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let (Tier::Limited(limit), _) = self.tier().await? else {
            return Ok(None);
        };
        let since = now - rules::SERVICE_WINDOW;
        Ok(
            match self
                .store
                .reserve_tier(
                    contact_id,
                    since,
                    now,
                    i64::try_from(limit).unwrap_or(i64::MAX),
                )
                .await?
            {
                TierReservation::Reserved | TierReservation::AlreadyCounted => None,
                TierReservation::Full { oldest } => {
                    Some(oldest + rules::SERVICE_WINDOW + Duration::seconds(1))
                }
            },
        )
    }

    /// Sends what `feed` hands over and records the outcomes, as three stages running at once:
    /// the feed (claims and rules), the sends themselves, and a recorder that writes whatever
    /// outcomes have arrived in one statement. At high rates each statement covers many
    /// messages while the next sends are already on the wire; at low rates each outcome is
    /// written as soon as it is known.
    async fn send_and_record<F, Fut>(
        &self,
        campaign: &Campaign,
        pacer: &Arc<Pacer>,
        feed: F,
    ) -> Result<DispatchOutcome>
    where
        F: FnOnce(Stages) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
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
        // How far the feed runs ahead is bounded instead by `ahead`: permits for rows claimed
        // but not yet taken by a sender, acquired before claiming.
        let ahead = Arc::new(tokio::sync::Semaphore::new(
            CLAIM_CHUNK as usize * CLAIMS_AHEAD,
        ));
        let (to_send, mut claimed) = tokio::sync::mpsc::unbounded_channel::<Vec<Prepared>>();
        let (to_record, mut outcomes) =
            tokio::sync::mpsc::unbounded_channel::<Result<Option<Done>>>();
        let fed = feed(Stages {
            to_send,
            to_record: to_record.clone(),
            ahead: ahead.clone(),
        });
        let send = async move {
            // Rows handed over but not yet taken by a sender: they go back to the queue should
            // the senders stop early.
            let mut pending = std::collections::VecDeque::new();
            let stopped = std::sync::atomic::AtomicBool::new(false);
            {
                let next = futures::stream::poll_fn(|cx| loop {
                    if stopped.load(Relaxed) {
                        return std::task::Poll::Ready(None);
                    }
                    if let Some(p) = pending.pop_front() {
                        ahead.add_permits(1);
                        return std::task::Poll::Ready(Some(p));
                    }
                    match claimed.poll_recv(cx) {
                        std::task::Poll::Ready(Some(batch)) => pending.extend(batch),
                        std::task::Poll::Ready(None) => return std::task::Poll::Ready(None),
                        std::task::Poll::Pending => return std::task::Poll::Pending,
                    }
                });
                let mut sends = next
                    .map(|p| self.send_one(campaign, pacer, p, paced))
                    .buffer_unordered(concurrency);
                while let Some(done) = sends.next().await {
                    if !stopped.load(Relaxed) && to_record.send(done).is_err() {
                        // The recorder failed: start no more sends. The answers of those under
                        // way are lost with it, and recovery calls their rows `unknown`.
                        stopped.store(true, Relaxed);
                    }
                }
            }
            // The feed learns that nothing more will be taken: its claims waiting for room end,
            // and what it hands over from now on it gives back itself.
            ahead.close();
            claimed.close();
            while let Ok(batch) = claimed.try_recv() {
                pending.extend(batch);
            }
            let ids: Vec<i64> = pending.iter().map(|p| p.recipient_id).collect();
            self.give_back(campaign, &ids, paced).await;
        };
        // It owns the outcomes' receiver: should it fail, the senders find the channel closed
        // and stop, instead of sending on with nobody recording.
        let record = async move {
            let mut out = DispatchOutcome::default();
            let mut arrived = Vec::with_capacity(RECORD_BATCH);
            let mut batch = Vec::with_capacity(RECORD_BATCH);
            let mut since_guard = 0;
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
                        since_guard += done.counts.sent + done.counts.failed;
                        contacts.push(done.contact_id);
                        batch.push((done.recipient_id, done.outcome, done.at));
                    }
                }
                self.store.record_many(&batch, &self.worker_id).await?;
                self.remember_finished(campaign, &batch);
                // What follows a recorded outcome: the contact's next drip step, `/on failed`.
                for ((_, outcome, _), contact_id) in batch.iter().zip(contacts) {
                    match outcome {
                        Outcome::Sent { .. } => self.advance_drip(campaign, contact_id).await?,
                        Outcome::Failed { .. } => {
                            self.on_recipient_event(
                                campaign.id,
                                contact_id,
                                &RecipientEvent::Failed,
                            )
                            .await?
                        }
                        _ => {}
                    }
                }
                batch.clear();
                // A long unpaced run checks its quality as it goes, not only at its end.
                if since_guard >= GUARD_EVERY {
                    since_guard = 0;
                    self.guard_quality(campaign).await?;
                }
            }
            Ok::<_, super::EngineError>(out)
        };
        let (fed, (), recorded) = tokio::join!(fed, send, record);
        fed?;
        recorded
    }

    /// Returns rows this step claimed but never handed to a channel to the queue: `claimed`
    /// ones (paced) as they were, `sending` ones with the attempt their claim counted refunded.
    /// Should that fail, their lease runs out instead (`unknown`, never sent twice).
    async fn give_back(&self, campaign: &Campaign, ids: &[i64], paced: bool) {
        if ids.is_empty() {
            return;
        }
        let back = if paced {
            self.store.release(ids).await
        } else {
            self.store.release_unsent(ids, &self.worker_id).await
        };
        if let Err(error) = back {
            tracing::warn!(campaign = campaign.id, %error, "could not give back unsent rows");
        }
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
        let started = std::time::Instant::now();
        // The exchange runs on a task of its own, so building the request and reading the answer
        // use any core, not only the one this step's task is on. A panic in the channel goes on
        // here, where the step's containment pauses the campaign as it would have inline; a
        // task cancelled by the runtime's shutdown is an answer never received.
        let result = {
            let (channel, msg) = (p.channel.clone(), p.msg);
            let send = async move { channel.send(&msg).await };
            match tokio::spawn(tracing::Instrument::in_current_span(send)).await {
                Ok(result) => result,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => Err(SendError::new(
                    ErrorClass::Unknown,
                    "aborted",
                    format!("the send's task ended without an answer: {e}"),
                )),
            }
        };
        self.metrics.send_took(p.channel.kind(), started.elapsed());
        let now = self.clock.now();
        let outcome = match result {
            Ok(sent) => {
                pacer.succeeded();
                self.metrics.message_sent(p.channel.kind());
                Outcome::Sent {
                    provider_id: sent.provider_id,
                    variant: p.rendered.variant,
                    category: p.rendered.category.clone(),
                    outside_window: p.outside_window,
                }
            }
            Err(e) => {
                tracing::warn!(code = %e.code, reason = %e.reason, "send failed");
                self.metrics
                    .channel_error(p.channel.kind(), &e.code, e.class);
                let outcome = self
                    .on_send_error(campaign, pacer, p.contact_id, p.attempts, &e, now)
                    .await?;
                if let Outcome::Failed { .. } = outcome {
                    self.metrics.message_failed(p.channel.kind());
                }
                outcome
            }
        };
        Ok(Some(Done {
            recipient_id: p.recipient_id,
            contact_id: p.contact_id,
            counts: outcome_counts(&outcome),
            outcome,
            at: now,
        }))
    }

    /// SPEC section 3's error taxonomy.
    async fn on_send_error(
        &self,
        campaign: &Campaign,
        pacer: &Pacer,
        contact_id: i64,
        attempts_before: i64,
        e: &SendError,
        now: DateTime<Utc>,
    ) -> Result<Outcome> {
        let attempts = attempts_before + 1;
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
        self.apply_failure(e.class, campaign, contact_id, &e.code, &e.reason)
            .await?;
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
            ErrorClass::Defer if attempts < MAX_DEFERS => retry(now + DEFER_FOR, false),
            // Not this recipient's fault: it stays queued for the resume.
            ErrorClass::PauseCampaign => retry(now, true),
            ErrorClass::Unknown => Outcome::Unknown {
                code: e.code.clone(),
                reason: e.reason.clone(),
            },
            ErrorClass::Transient
            | ErrorClass::Defer
            | ErrorClass::Permanent
            | ErrorClass::Unreachable
            | ErrorClass::MarketingStopped => failed(),
        })
    }

    /// A one-time campaign with nothing left to do is completed, and its owner gets the summary.
    /// Returns whether it completed now.
    async fn finish_if_done(&self, campaign: &Campaign) -> Result<bool> {
        if campaign.kind != CampaignKind::OneTime || self.store.has_pending(campaign.id).await? {
            return Ok(false);
        }
        // Checked again, together with the completion, under the campaign's lock: a deferred
        // recipient may be queued again at any moment.
        if self
            .store
            .complete_if_done(campaign.id, self.clock.now())
            .await?
        {
            self.show_progress(campaign, true).await?;
            let r = self.store.report(campaign.id).await?;
            lock(&self.pacers).remove(&campaign.id);
            self.recent_sends.forget(campaign.id);
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

/// What one outcome adds to a step's counts.
/// A campaign's template and media, read once per step for all its messages.
struct Content {
    template: Option<Template>,
    media: Option<MediaRef>,
}

fn outcome_counts(outcome: &Outcome) -> DispatchOutcome {
    let mut counts = DispatchOutcome::default();
    match outcome {
        Outcome::Sent { .. } => counts.sent = 1,
        Outcome::Skipped { .. } => counts.skipped = 1,
        Outcome::Failed { .. } => counts.failed = 1,
        Outcome::Retry { .. } => counts.held = 1,
        Outcome::Unknown { .. } => counts.unknown = 1,
    }
    counts
}

/// A hold of a row claimed straight into `sending`: the attempt the claim counted is refunded.
fn refund(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Retry {
            at, code, reason, ..
        } => Outcome::Retry {
            at,
            code,
            reason,
            refund_attempt: true,
        },
        other => other,
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
