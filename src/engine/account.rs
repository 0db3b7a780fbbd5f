//! The WhatsApp Business account (SPEC section 6): template sync from Meta, what Meta says about
//! templates, quality, tier and restrictions, and the rules that follow from it: a template that
//! stops being approved stops its campaigns, the tier Meta reports replaces the configured one,
//! a restriction holds business-initiated sends, an account violation pauses every campaign.

use chrono::{DateTime, Duration, Utc};

use super::lifecycle::PauseBy;
use super::{Engine, EngineError, Result};
use crate::channels::{AccountEvent, Billing};
use crate::config::Tier;
use crate::domain::account::MessagingLimit;
use crate::domain::template::{Mapping, TemplateStatus};
use crate::store::{AccountState, Campaign, CampaignStatus, SyncDiff, Template, TemplateRef};

/// How often the templates are read again while herald runs (SPEC: every 6 hours).
pub const SYNC_EVERY: Duration = Duration::hours(6);
/// How stale the cached account state may be: a tier or restriction another process stored
/// reaches this one within it.
const ACCOUNT_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// A restriction without an expiration is looked at again this often.
const OPEN_ENDED_HOLD: Duration = Duration::hours(1);
/// Why a recipient waits for the tier, and for a restriction (recorded as the hold's reason).
pub(crate) const TIER_HOLD: &str = "tier_limit";
pub(crate) const RESTRICTION_HOLD: &str = "account_restricted";

/// Where the tier in force comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierSource {
    /// `WHATSAPP_TIER`.
    Configured,
    /// A `phone_number_quality_update` from Meta.
    Meta,
}

fn tier_of(limit: MessagingLimit) -> Tier {
    match limit {
        MessagingLimit::Limited(n) => Tier::Limited(n),
        MessagingLimit::Unlimited => Tier::Unlimited,
    }
}

/// A stored mapping as the admin would type it, to check it again against the template.
fn mapping_of(tref: &TemplateRef) -> Mapping {
    let params = if tref.names.is_empty() {
        tref.params.clone()
    } else {
        tref.names
            .iter()
            .zip(&tref.params)
            .map(|(n, v)| format!("{n}={v}"))
            .collect()
    };
    Mapping {
        params,
        header: tref.header.clone(),
        url: tref.url.clone(),
    }
}

impl Engine {
    /// The account as last stored, read at most every [`ACCOUNT_TTL`].
    pub async fn account_state(&self) -> Result<AccountState> {
        if let Some((at, state)) = crate::lock(&self.account_cache).as_ref() {
            if at.elapsed() < ACCOUNT_TTL {
                return Ok(state.clone());
            }
        }
        let state = self.store.account().await?;
        *crate::lock(&self.account_cache) = Some((std::time::Instant::now(), state.clone()));
        Ok(state)
    }

    fn forget_account_state(&self) {
        *crate::lock(&self.account_cache) = None;
    }

    /// The tier in force: the one Meta reported last, else the configured one.
    pub async fn tier(&self) -> Result<(Tier, TierSource)> {
        Ok(match self.account_state().await?.tier {
            Some(limit) => (tier_of(limit), TierSource::Meta),
            None => (self.config.tier, TierSource::Configured),
        })
    }

    /// Until when business-initiated sends are held by a restriction in force, if one is.
    pub async fn restricted_until(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let state = self.account_state().await?;
        Ok(state
            .restrictions
            .iter()
            .filter(|r| r.holds_business_initiated() && r.in_force(now))
            .map(|r| r.expires.unwrap_or(now + OPEN_ENDED_HOLD))
            .max())
    }

    /// Wires the Business account's template list; the first call wins.
    pub fn set_template_catalog(
        &self,
        catalog: std::sync::Arc<dyn crate::channels::TemplateCatalog>,
    ) {
        let _ = self.catalog.set(catalog);
    }

    pub fn has_template_catalog(&self) -> bool {
        self.catalog.get().is_some()
    }

    /// Reads every template of the Business account and stores them (added, changed,
    /// removed). A failed read changes nothing stored and says Meta's reason. Syncs never
    /// overlap: a second one waits for the first and then reads again.
    pub async fn sync_templates(&self) -> Result<SyncDiff> {
        let Some(catalog) = self.catalog.get() else {
            return Err(EngineError::Rejected(
                "template sync needs WHATSAPP_BUSINESS_ACCOUNT_ID (the WhatsApp Business \
                 account id); without it, declare templates with /template add"
                    .into(),
            ));
        };
        let _one_at_a_time = self.sync_lock.lock().await;
        let result = catalog.templates().await;
        let now = self.clock.now();
        match result {
            Ok(specs) => {
                let diff = self.store.sync_templates(&specs).await?;
                self.store.set_sync_result(now, None).await?;
                self.forget_account_state();
                tracing::info!(
                    added = diff.added.len(),
                    changed = diff.changed.len(),
                    removed = diff.removed.len(),
                    "templates synced"
                );
                Ok(diff)
            }
            Err(error) => {
                tracing::warn!(%error, "template sync failed; stored templates kept");
                self.store.set_sync_result(now, Some(&error.0)).await?;
                self.forget_account_state();
                let kept = self.store.templates().await?.len();
                Err(EngineError::Rejected(format!(
                    "template sync failed: {error}; the {kept} stored template(s) are kept"
                )))
            }
        }
    }

    /// Whether a sync is due by the clock (at start, then every [`SYNC_EVERY`]); marks it
    /// begun when it is.
    pub(crate) fn sync_due(&self, now: DateTime<Utc>) -> bool {
        if !self.has_template_catalog() {
            return false;
        }
        let mut next = crate::lock(&self.next_sync);
        if next.is_some_and(|at| now < at) {
            return false;
        }
        *next = Some(now + SYNC_EVERY);
        true
    }

    /// Why a campaign cannot send its template now, in words for its owner; `None` when it
    /// can (or sends no template).
    pub fn template_problem(&self, campaign: &Campaign, template: &Template) -> Option<String> {
        if !template.status.is_sendable() {
            return Some(format!(
                "template {} ({}) is {} at Meta; only APPROVED templates are sent",
                template.name, template.lang, template.status
            ));
        }
        let spec = template.spec.as_ref()?;
        if let Some(tref) = &campaign.template {
            if let Err(why) = spec.resolve(&mapping_of(tref)) {
                return Some(format!(
                    "{why} (the template changed at Meta: map it again with /campaign template)"
                ));
            }
        }
        // The campaign's media (`/campaign media`) fills a media header; a campaign without
        // media, or with media the header cannot take, cannot send the template.
        match (&campaign.media, spec.header_media()) {
            (Some(media), _) => super::media::media_misfit(campaign, Some(template), media),
            (None, Some(_)) => {
                let kind = spec.header.as_ref().map_or("media", |h| h.kind.as_str());
                Some(format!(
                    "the {kind} header of template {} ({}) needs media, and campaign {} has \
                     none: /campaign media {} <https-url>, or attach the file",
                    template.name, template.lang, campaign.id, campaign.id
                ))
            }
            (None, None) => None,
        }
    }

    /// Refuses to start or resume a campaign whose template cannot be sent now (not approved
    /// at Meta, or its mapping or media do not fit); a missing template is the dispatcher's to
    /// report, as before.
    pub(crate) async fn check_template(&self, campaign: &Campaign) -> Result<()> {
        let Some(tref) = &campaign.template else {
            return Ok(());
        };
        let Some(template) = self.store.template(&tref.name, &tref.lang).await? else {
            return Ok(());
        };
        match self.template_problem(campaign, &template) {
            Some(why) => Err(EngineError::Rejected(format!(
                "campaign {} cannot send: {why}",
                campaign.id
            ))),
            None => Ok(()),
        }
    }

    /// Tells every configured admin.
    pub async fn tell_admins(&self, text: &str) {
        let admins: Vec<String> = self
            .config
            .admin_whatsapp
            .iter()
            .chain(&self.config.admin_telegram)
            .cloned()
            .collect();
        if admins.is_empty() {
            tracing::warn!(%text, "account notice (no admin configured)");
        }
        for admin in admins {
            self.tell(&admin, text).await;
        }
    }

    /// Pauses every sending campaign (and run, and drip step) `matches` picks, telling each
    /// owner `why`; returns how many.
    async fn pause_sending(&self, why: &str, matches: impl Fn(&Campaign) -> bool) -> Result<usize> {
        let mut paused = 0;
        for campaign in self.store.campaigns(Some(CampaignStatus::Sending)).await? {
            if matches(&campaign) && self.pause(campaign.id, PauseBy::Engine { why }).await? {
                paused += 1;
            }
        }
        Ok(paused)
    }

    pub(crate) async fn record_billing(&self, billing: Billing) -> Result<()> {
        self.status_writer().record_billing(billing).await
    }

    #[tracing::instrument(skip_all)]
    pub(crate) async fn handle_account_event(&self, event: AccountEvent) -> Result<()> {
        match event {
            AccountEvent::TemplateStatus {
                name,
                lang,
                status,
                reason,
            } => self.template_status(&name, &lang, status, reason).await,
            AccountEvent::Quality { event, limit, at } => self.quality(&event, limit, at).await,
            AccountEvent::Restricted { restrictions, at } => {
                // Meta redelivers webhooks: the same restrictions again are no news.
                let stored = self.store.account().await?.restrictions;
                let same = stored.len() == restrictions.len()
                    && restrictions.iter().all(|r| stored.contains(r));
                if same {
                    return Ok(());
                }
                self.store.set_restrictions(&restrictions, at).await?;
                self.forget_account_state();
                let now = self.clock.now();
                let held = restrictions
                    .iter()
                    .filter(|r| r.holds_business_initiated() && r.in_force(now))
                    .map(|r| r.expires)
                    .max();
                let others: Vec<&str> = restrictions
                    .iter()
                    .filter(|r| !r.holds_business_initiated() && r.in_force(now))
                    .map(|r| r.kind.as_str())
                    .collect();
                let mut text = match held {
                    Some(Some(until)) => format!(
                        "WhatsApp restricted the account: business-initiated messages are held \
                         until {} (replies inside the 24-hour window still go)",
                        self.local_time(until)
                    ),
                    Some(None) => "WhatsApp restricted the account: business-initiated messages \
                                   are held until Meta lifts it (replies inside the 24-hour \
                                   window still go)"
                        .to_string(),
                    None => {
                        "WhatsApp reports no restriction on business-initiated messages in force"
                            .to_string()
                    }
                };
                if !others.is_empty() {
                    text.push_str(&format!("; also restricted: {}", others.join(", ")));
                }
                if held.is_none() {
                    // Lifted before its expiration: what it held is due now.
                    let released = self.store.release_held(RESTRICTION_HOLD, now).await?;
                    tracing::info!(
                        released,
                        "restriction lifted: held recipients are due again"
                    );
                }
                self.tell_admins(&text).await;
                self.wake();
                Ok(())
            }
            AccountEvent::Stopped { event, detail, at } => {
                let what = match &detail {
                    Some(detail) => format!("{event} ({detail})"),
                    None => event.clone(),
                };
                let stored = self.store.account().await?;
                if stored.account_event.as_deref() == Some(what.as_str())
                    && stored.account_at == Some(at)
                {
                    return Ok(()); // a redelivery
                }
                self.store.set_account_event(&what, at).await?;
                self.forget_account_state();
                let why = format!("WhatsApp account {what}");
                let paused = self.pause_sending(&why, |_| true).await?;
                self.tell_admins(&format!(
                    "WhatsApp reported {what} on the account: {paused} sending campaign(s) \
                     paused; see /account"
                ))
                .await;
                Ok(())
            }
        }
    }

    async fn template_status(
        &self,
        name: &str,
        lang: &str,
        status: TemplateStatus,
        reason: Option<String>,
    ) -> Result<()> {
        let before = self.store.set_template_status(name, lang, &status).await?;
        tracing::info!(template = name, lang, %status, ?before, "template status from Meta");
        if !status.stops_campaigns() {
            return Ok(());
        }
        let why = match &reason {
            Some(reason) => format!("template {name} ({lang}) is {status} at Meta: {reason}"),
            None => format!("template {name} ({lang}) is {status} at Meta"),
        };
        self.pause_sending(&why, |c| {
            c.template
                .as_ref()
                .is_some_and(|t| t.name == name && t.lang == lang)
        })
        .await?;
        Ok(())
    }

    async fn quality(
        &self,
        event: &str,
        limit: Option<MessagingLimit>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let stored = self.store.account().await?;
        if stored.quality_event.as_deref() == Some(event)
            && stored.quality_at == Some(at)
            && (limit.is_none() || stored.tier == limit)
        {
            return Ok(()); // a redelivery
        }
        self.forget_account_state();
        let (before, _) = self.tier().await?;
        self.store.set_quality_event(event, at).await?;
        if let Some(limit) = limit {
            self.store.set_tier(limit, at).await?;
        }
        self.forget_account_state();
        let (after, source) = self.tier().await?;
        let risen = match (after, before) {
            (Tier::Unlimited, Tier::Limited(_)) => true,
            (Tier::Limited(a), Tier::Limited(b)) => a > b,
            _ => false,
        };
        if risen {
            let released = self.store.release_held(TIER_HOLD, self.clock.now()).await?;
            tracing::info!(released, %after, "the tier rose: held recipients are due again");
            self.wake();
        }
        let told = matches!(event, "FLAGGED" | "UNFLAGGED" | "DOWNGRADE" | "UPGRADE");
        if told || before != after {
            let mut text = format!("WhatsApp quality: {event}");
            if before != after && source == TierSource::Meta {
                text.push_str(&format!(
                    "; messaging limit now {after} contacts per 24 h (was {before})"
                ));
            }
            if event == "FLAGGED" {
                text.push_str(
                    "; the number's quality is low: fewer business-initiated messages, or \
                     Meta lowers the limit",
                );
            }
            self.tell_admins(&text).await;
        }
        Ok(())
    }
}
