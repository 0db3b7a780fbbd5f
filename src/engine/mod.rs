//! The engine: one place that owns the rules. Channels hand it events ([`EventSink`]), admins hand
//! it commands, and its two workers — the scheduler and the dispatcher — each expose one `step`
//! that does a unit of work, driven by a loop in production and called directly by tests.

pub mod account;
pub mod actions;
mod containment;
pub mod dispatcher;
pub mod drip;
pub mod eligibility;
mod failures;
pub mod files;
pub mod inbound;
pub mod lifecycle;
pub mod media;
pub mod pacing;
mod quality;
pub mod render;
pub mod resolution;
pub mod retention;
pub mod rules;
pub mod scheduler;
pub mod status;
pub mod statuses;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::channels::{ChannelEvent, ChannelRouter, EventSink, Outbound};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Rejected(String),
    #[error("delivery status not stored: {0}")]
    StatusNotStored(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// How stale a cached campaign status may be; bounds how long a pause takes to land.
const STATUS_TTL: Duration = Duration::from_millis(200);

/// Answers one admin `/command` (the command layer implements it).
#[async_trait]
pub trait AdminDesk: Send + Sync {
    async fn answer(&self, engine: &Engine, admin: &str, text: &str) -> String;
}

pub struct Engine {
    pub store: Store,
    pub config: Arc<Config>,
    pub clock: SharedClock,
    channels: ChannelRouter,
    /// Names this process's leases, so rows it claimed can be told from another process's.
    worker_id: String,
    /// Wakes the dispatcher when work appears (a start, a resume, a trigger) instead of polling.
    wake: Notify,
    /// Wakes the resolver when a campaign starts with part of its audience left to resolve.
    resolve_wake: Notify,
    /// Per-campaign pacing state; lives in memory because it only spaces this process's sends.
    pacers: Mutex<HashMap<i64, Arc<pacing::Pacer>>>,
    /// Each campaign's last finished sends in this process, which the quality guard judges.
    recent_sends: quality::RecentSends,
    /// Recently read campaign statuses, so checking "still sending?" before every message costs
    /// a query at most every [`STATUS_TTL`] (a pause, even from another process, lands within it).
    status_cache: Mutex<HashMap<i64, (std::time::Instant, bool)>>,
    /// When each campaign's owner was last shown progress (wall time: it paces chat edits).
    progress_shown: Mutex<HashMap<i64, std::time::Instant>>,
    /// Fires when the running loop shuts down, so windows in flight stop starting sends.
    stop: Mutex<CancellationToken>,
    /// Applies delivery statuses in batches; started with the first status.
    statuses: std::sync::OnceLock<statuses::StatusWriter>,
    /// Answers admins' `/commands`: the command layer sits above the engine, so the
    /// application hands it in ([`Engine::set_admin_desk`]) rather than the engine naming it.
    admin_desk: std::sync::OnceLock<Arc<dyn AdminDesk>>,
    /// Counters served on `/metrics`; the dispatcher counts sends, the HTTP server webhooks.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Trigger regexes, compiled once per pattern rather than once per inbound message.
    triggers: Mutex<crate::domain::trigger::CompiledTriggers>,
    /// Each admin's last attached file, kept for their next command that takes one.
    kept_files: files::KeptFiles,
    media_files: media::MediaFiles,
    /// The Business account's template list, when `WHATSAPP_BUSINESS_ACCOUNT_ID` is set (wired
    /// by the application, like the admin desk).
    catalog: std::sync::OnceLock<Arc<dyn crate::channels::TemplateCatalog>>,
    /// Holds one template sync at a time, so two never interleave their writes.
    sync_lock: tokio::sync::Mutex<()>,
    /// When the next periodic template sync is due (engine clock); `None` until the first.
    next_sync: Mutex<Option<chrono::DateTime<chrono::Utc>>>,
    /// The account state (tier, restrictions) read recently: every business-initiated send
    /// consults it, so it is read from the database at most once a second.
    account_cache: Mutex<Option<(std::time::Instant, crate::store::AccountState)>>,
}

impl Engine {
    pub fn new(
        store: Store,
        config: Arc<Config>,
        clock: SharedClock,
        channels: ChannelRouter,
    ) -> Self {
        let worker_id = format!("w{}-{}", std::process::id(), rand::random::<u32>());
        Engine {
            store,
            config,
            clock,
            channels,
            worker_id,
            wake: Notify::new(),
            resolve_wake: Notify::new(),
            pacers: Mutex::new(HashMap::new()),
            recent_sends: quality::RecentSends::default(),
            progress_shown: Mutex::new(HashMap::new()),
            status_cache: Mutex::new(HashMap::new()),
            stop: Mutex::new(CancellationToken::new()),
            statuses: std::sync::OnceLock::new(),
            admin_desk: std::sync::OnceLock::new(),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            triggers: Mutex::default(),
            kept_files: files::KeptFiles::default(),
            media_files: media::MediaFiles::default(),
            catalog: std::sync::OnceLock::new(),
            sync_lock: tokio::sync::Mutex::new(()),
            next_sync: Mutex::new(None),
            account_cache: Mutex::new(None),
        }
    }

    /// Wires the admin command layer; the first call wins.
    pub fn set_admin_desk(&self, desk: Arc<dyn AdminDesk>) {
        let _ = self.admin_desk.set(desk);
    }

    pub fn channels(&self) -> &ChannelRouter {
        &self.channels
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Refuses an address no running channel can reach: a bare name is only a console contact.
    pub fn check_reachable(&self, address: &crate::domain::Address) -> Result<()> {
        let console = self
            .channels
            .kinds()
            .contains(&crate::channels::ChannelKind::Console);
        if address.kind() == crate::domain::AddressKind::Name && !console {
            return Err(EngineError::Rejected(format!(
                "{address:?} is not an address: use a phone number (+15550001) or tg:<chat id>",
                address = address.as_str()
            )));
        }
        Ok(())
    }

    /// A time as the admins read it (their `TZ`).
    pub fn local_time(&self, t: chrono::DateTime<chrono::Utc>) -> String {
        t.with_timezone(&self.config.admin_tz)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    }

    /// Whether `needed` business-initiated sends fit the tier now, and how long they take if not.
    pub async fn tier_fit(
        &self,
        needed: usize,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<String> {
        let (crate::config::Tier::Limited(limit), _) = self.tier().await? else {
            return Ok(format!(
                "tier: unlimited; {needed} send(s) outside the window"
            ));
        };
        let used = self.store.tier_used(now - rules::SERVICE_WINDOW).await?;
        let left = (limit as i64 - used).max(0) as usize;
        if needed <= left {
            return Ok(format!(
                "tier: {needed} send(s) outside the window fit today's budget ({left} of {limit} left)"
            ));
        }
        let rest = needed - left;
        let days = rest.div_ceil(limit.max(1) as usize);
        Ok(format!(
            "tier: {needed} send(s) outside the window exceed today's budget ({left} of {limit} left); \
             the rest goes out as the 24 h window rolls, about {days} more day(s)"
        ))
    }

    /// Whether a campaign is still `sending` (read at most every [`STATUS_TTL`]).
    pub async fn still_sending(&self, campaign_id: i64) -> Result<bool> {
        {
            let mut cache = crate::lock(&self.status_cache);
            if let Some((at, sending)) = cache.get_mut(&campaign_id) {
                if at.elapsed() < STATUS_TTL {
                    return Ok(*sending);
                }
                // One caller reads the fresh status; the sends running alongside it keep the
                // value just read meanwhile, instead of all querying at once.
                *at = std::time::Instant::now();
            }
        }
        let sending = self
            .store
            .campaign(campaign_id)
            .await?
            .is_some_and(|c| c.status == crate::store::CampaignStatus::Sending);
        crate::lock(&self.status_cache).insert(campaign_id, (std::time::Instant::now(), sending));
        Ok(sending)
    }

    /// Forgets a cached status (this process just changed it).
    pub fn status_changed(&self, campaign_id: i64) {
        crate::lock(&self.status_cache).remove(&campaign_id);
    }

    /// Tells the dispatcher there may be new work.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Sends a line to an admin (command replies, progress, warnings). Failures are logged: an
    /// admin notice must never break sending.
    pub async fn tell(&self, admin: &str, text: impl Into<String>) {
        let msg = Outbound::admin(admin, text);
        match self.channels.for_address(admin) {
            Some(channel) => {
                if let Err(e) = channel.send(&msg).await {
                    tracing::warn!(admin, error = %e, "could not reach admin");
                }
            }
            None => tracing::warn!(admin, "no channel for admin address"),
        }
    }

    /// Tells a campaign's owner, if it has one.
    /// The writer of delivery statuses and billings, started with the first.
    fn status_writer(&self) -> &statuses::StatusWriter {
        self.statuses
            .get_or_init(|| statuses::StatusWriter::spawn(self.store.clone()))
    }

    pub async fn tell_owner(&self, owner: Option<&str>, text: impl Into<String>) {
        let text = text.into();
        match owner {
            Some(owner) => self.tell(owner, text).await,
            None => tracing::info!(%text, "campaign notice (no owner)"),
        }
    }

    /// Shows the owner a sending campaign's progress, no more often than their channel wants;
    /// `last` forces the final state out.
    pub async fn show_progress(&self, campaign: &crate::store::Campaign, last: bool) -> Result<()> {
        let Some(owner) = campaign.owner.as_deref() else {
            return Ok(());
        };
        let Some(channel) = self.channels.for_address(owner) else {
            return Ok(());
        };
        let Some(every) = channel.progress_interval() else {
            return Ok(());
        };
        {
            let mut shown = crate::lock(&self.progress_shown);
            let due = shown.get(&campaign.id).is_none_or(|t| t.elapsed() >= every);
            if !due && !last {
                return Ok(());
            }
            if last && !shown.contains_key(&campaign.id) {
                // Nothing was ever shown: the completion notice says it all.
                return Ok(());
            }
            shown.insert(campaign.id, std::time::Instant::now());
        }
        let r = self.store.report(campaign.id).await?;
        let done = r.targeted - r.queued;
        let text = format!(
            "campaign {} {}: {done}/{} processed, {} sent, {} delivered, {} failed, {} skipped",
            campaign.id,
            if last { "finished" } else { "sending" },
            r.targeted,
            r.sent,
            r.delivered,
            r.failed,
            r.skipped
        );
        if let Err(e) = channel
            .show_progress(owner, &format!("campaign-{}", campaign.id), &text)
            .await
        {
            tracing::warn!(error = %e, "progress not shown");
        }
        Ok(())
    }

    /// Runs the scheduler and the dispatcher until nothing is due right now. The console uses it
    /// between scripted lines so a script reads like a conversation.
    pub async fn settle(&self) -> Result<()> {
        loop {
            let started = self.schedule_step().await?;
            let worked = self.dispatch_step().await?;
            if started == 0 && worked.is_idle() {
                return Ok(());
            }
        }
    }

    /// Brings back work a crashed process left behind: with `everything`, every lease (a lone
    /// SQLite process owns them all); otherwise only leases that ran out, since on PostgreSQL
    /// other live processes hold theirs. Returns whether anything came back.
    pub async fn recover(&self, everything: bool) -> Result<bool> {
        let (requeued, unknown) = self.store.recover(self.clock.now(), everything).await?;
        if requeued + unknown > 0 {
            tracing::warn!(requeued, unknown, "recovered interrupted sends");
        }
        Ok(requeued + unknown > 0)
    }

    /// How long a claim is ours without a heartbeat. Windows renew it while they run, so it only
    /// runs out when its process died; then the periodic recovery of any process brings the
    /// rows back.
    pub fn lease(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.config.lease_secs.max(1) as i64)
    }

    /// The token that tells the dispatcher to stop: the running loop's shutdown, or one that
    /// never fires when no loop runs (tests, the console).
    pub(crate) fn stop_token(&self) -> CancellationToken {
        crate::lock(&self.stop).clone()
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stop_token().is_cancelled()
    }

    /// The production loop: schedule and dispatch until `shutdown` fires. Then nothing more is
    /// claimed, messages already handed to the channel finish and are recorded, and rows claimed
    /// but not yet sent go back to the queue (a paced window is not waited out), so the
    /// process leaves nothing `claimed` or `sending` behind. Every `RECOVER_EVERY_SECS` it also
    /// brings back the work of processes that died (their leases ran out), so on PostgreSQL the
    /// survivors finish a dead process's share without a restart.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        *crate::lock(&self.stop) = shutdown.clone();
        let scheduler = {
            let engine = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let recover_every = Duration::from_secs(engine.config.recover_every_secs.max(1));
                let mut last_recovery = tokio::time::Instant::now();
                while !shutdown.is_cancelled() {
                    if let Err(e) = engine.schedule_step().await {
                        tracing::error!(error = %e, "scheduler step failed");
                    }
                    // At start and every 6 hours by the engine's clock; on its own task, so a
                    // slow Graph API never holds up the schedule.
                    if engine.sync_due(engine.clock.now()) {
                        let engine = engine.clone();
                        tokio::spawn(async move {
                            if let Err(e) = engine.sync_templates().await {
                                tracing::warn!(error = %e, "periodic template sync failed");
                            }
                        });
                    }
                    if last_recovery.elapsed() >= recover_every {
                        last_recovery = tokio::time::Instant::now();
                        match engine.recover(false).await {
                            Ok(true) => engine.wake(),
                            Ok(false) => {}
                            Err(e) => tracing::error!(error = %e, "lease recovery failed"),
                        }
                    }
                    // Polling is paced in wall time, not on the injected clock: a test clock's
                    // sleep moves its time forward, and polling on it made time run away.
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            })
        };
        let maintenance = tokio::spawn(self.clone().maintain(shutdown.clone()));
        let resolver = tokio::spawn(self.clone().resolve_loop(shutdown.clone()));
        while !shutdown.is_cancelled() {
            match self.dispatch_step().await {
                Ok(outcome) if outcome.is_idle() => {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "dispatch step failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        let _ = scheduler.await;
        let _ = maintenance.await;
        let _ = resolver.await;
        tracing::info!("dispatcher stopped");
    }
}

#[async_trait]
impl EventSink for Engine {
    async fn on_event(&self, event: ChannelEvent) {
        if let Err(e) = self.handle_event(event).await {
            tracing::error!(error = %e, "could not process channel event");
        }
    }
}
