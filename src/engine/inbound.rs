//! What every inbound event does: a redelivery is dropped; an admin's file is kept for their
//! next command (see `files`); an admin's `/command` is run; any other message opens the
//! service window, may opt the contact out or in, counts as a reply to the campaign they last
//! received, and may fire triggers. Delivery statuses and marketing preferences update
//! recipients and contacts.

use crate::domain::consent::ConsentSource;
use chrono::Duration;

use super::{Engine, EngineError, Result};
use crate::channels::{
    Audience, ChannelEvent, DeliveryStatus, ErrorClass, Inbound, Outbound, OutboundBody,
    StatusUpdate,
};
use crate::domain::actions::{PostAction, RecipientEvent};
use crate::domain::trigger::MessageText;
use crate::domain::Address;
use crate::store::statuses::Deferral;
use crate::store::{CampaignKind, Consent, Contact, Trigger};

/// A reply counts for the campaign a contact received within this long before it.
const REPLY_ATTRIBUTION: Duration = Duration::days(7);

pub const OPT_OUT_CONFIRMATION: &str =
    "You are unsubscribed and will get no more messages from us. Reply START to subscribe again.";
pub const OPT_IN_CONFIRMATION: &str = "You are subscribed. Reply STOP at any time to unsubscribe.";

/// The contact an event comes from, through the one address parser.
fn sender(from: &str) -> Result<Address> {
    Address::parse(from).map_err(|e| EngineError::Rejected(format!("inbound from {e}")))
}

impl Engine {
    pub async fn handle_event(&self, event: ChannelEvent) -> Result<()> {
        match event {
            ChannelEvent::Inbound(msg) => self.handle_inbound(msg).await,
            ChannelEvent::Status(status) => self.handle_status(status).await,
            ChannelEvent::MarketingPreference { from, stop, at } => {
                let (contact, _) = self.store.ensure_contact(&sender(&from)?, None, at).await?;
                self.store.set_marketing_stopped(contact.id, stop).await?;
                Ok(())
            }
            ChannelEvent::Billed(billing) => self.record_billing(billing).await,
            ChannelEvent::Account(event) => self.handle_account_event(event).await,
        }
    }

    #[tracing::instrument(skip_all, fields(from = %msg.from))]
    pub async fn handle_inbound(&self, msg: Inbound) -> Result<()> {
        let Some(id) = msg.provider_id.clone() else {
            return self.process_inbound(msg).await;
        };
        // Remembered from when it arrived, not from the message's own time: redeliveries come
        // for days after the first delivery, whatever time the message carries.
        if !self.store.first_sighting(&id, self.clock.now()).await? {
            tracing::debug!(provider_id = %id, "redelivered message ignored");
            return Ok(());
        }
        let result = self.process_inbound(msg).await;
        if result.is_err() {
            // Not processed after all: let the channel's redelivery try again.
            if let Err(e) = self.store.forget_sighting(&id).await {
                tracing::error!(error = %e, provider_id = %id, "could not forget a failed message");
            }
        }
        result
    }

    async fn process_inbound(&self, msg: Inbound) -> Result<()> {
        let text = msg.text.as_deref().unwrap_or("").trim();
        let admin = self.is_admin(&msg.from);
        if let Some(file) = msg.file.clone().filter(|_| admin) {
            // Only admins' files are kept, and so only theirs are ever fetched; a customer's
            // media is a message like any other.
            self.keep_file(&msg.from, file.clone());
            if !text.starts_with('/') {
                self.tell(&msg.from, super::files::kept_answer(&file)).await;
                return Ok(());
            }
        }
        if text.starts_with('/') && admin {
            // Telegram's Start button sends /start: an admin gets a greeting, not an error.
            let reply = if text.eq_ignore_ascii_case("/start") {
                "herald is ready, and you are an admin here. Send /help for the commands.".into()
            } else {
                match self.admin_desk.get() {
                    Some(desk) => desk.answer(self, &msg.from, text).await,
                    None => "admin commands are not wired in this process".into(),
                }
            };
            if let Some(file) = &msg.file {
                // The file belonged to this command: one that took no file ignores it, and it
                // must not wait for a later command either.
                self.forget_file(&msg.from, file);
            }
            self.tell(&msg.from, reply).await;
            return Ok(());
        }
        let (contact, _) = self
            .store
            .ensure_contact(&sender(&msg.from)?, msg.name.as_deref(), msg.at)
            .await?;
        self.store.touch_inbound(contact.id, msg.at).await?;

        let words = &self.config.consent_words;
        let button = msg.button.as_deref().unwrap_or("");
        let lowered = text.to_ascii_lowercase();
        let opt_out = lowered == "/stop" || words.is_opt_out(text) || words.is_opt_out(button);
        // A subscribed contact tapping a button titled `Yes` is choosing, not subscribing again:
        // that tap counts as a reply and a click below.
        let choosing = msg.button.is_some() && contact.consent == Consent::OptedIn;
        let opt_in = lowered == "/start"
            || (!choosing && (words.is_opt_in(text) || words.is_opt_in(button)));
        if opt_out {
            let keyword = if words.is_opt_out(text) || lowered == "/stop" {
                text
            } else {
                button
            };
            let dropped = self
                .store
                .record_consent(
                    contact.id,
                    false,
                    ConsentSource::Keyword,
                    Some(keyword),
                    msg.at,
                )
                .await?;
            tracing::info!(contact = %contact.address, dropped, "opted out");
            self.reply_to_customer(&contact, OPT_OUT_CONFIRMATION).await;
            return Ok(());
        }
        if opt_in {
            let source = if lowered == "/start" {
                ConsentSource::TelegramStart
            } else {
                ConsentSource::Keyword
            };
            self.store
                .record_consent(contact.id, true, source, Some(text), msg.at)
                .await?;
            self.reply_to_customer(&contact, OPT_IN_CONFIRMATION).await;
            return Ok(());
        }
        let stopped = self.store.stop_drips_on_reply(contact.id).await?;
        if stopped > 0 {
            tracing::info!(contact = %contact.address, stopped, "reply ended drip sequence(s)");
        }
        if let Some(replied) = self
            .store
            .mark_replied(contact.id, msg.at, REPLY_ATTRIBUTION)
            .await?
        {
            if replied.first {
                self.on_recipient_event(replied.campaign_id, contact.id, &RecipientEvent::Replied)
                    .await?;
            }
            // A button press counts under both its payload and its visible title.
            let mut clicked: Vec<RecipientEvent> = Vec::new();
            for b in [
                msg.button.as_deref(),
                msg.button.as_ref().and(msg.text.as_deref()),
            ]
            .into_iter()
            .flatten()
            {
                let event = RecipientEvent::Clicked(b.trim().to_lowercase());
                if !clicked.contains(&event) {
                    clicked.push(event);
                }
            }
            // A channel may have cut a long title to fit its tap data (Telegram: 64 bytes); the
            // campaign's own choices name the title it stands for.
            if let Some(data) = msg.button.as_deref() {
                let campaign = self.store.campaign(replied.campaign_id).await?;
                let title = campaign
                    .as_ref()
                    .and_then(|c| c.choices.as_ref())
                    .and_then(|choices| choices.tapped(data.trim()));
                if let Some(title) = title {
                    self.store
                        .record_click(replied.campaign_id, contact.id, title)
                        .await?;
                    let event = RecipientEvent::Clicked(title.to_lowercase());
                    if !clicked.contains(&event) {
                        clicked.push(event);
                    }
                }
            }
            for event in clicked {
                self.on_recipient_event(replied.campaign_id, contact.id, &event)
                    .await?;
            }
        }
        let trigger_text = if text.is_empty() { button } else { text };
        if !trigger_text.is_empty() {
            self.fire_triggers(&contact, trigger_text).await?;
        }
        Ok(())
    }

    fn is_admin(&self, address: &str) -> bool {
        self.config.is_admin(address)
    }

    /// A direct answer to a customer's own message (a consent confirmation): it is inside the
    /// window they just opened, so it needs no campaign rules.
    async fn reply_to_customer(&self, contact: &Contact, text: &str) {
        let msg = Outbound {
            to: contact.address.to_string(),
            audience: Audience::Customer,
            body: OutboundBody::Text(text.to_string()),
            callback: None,
        };
        if let Some(channel) = self.channels.for_address(&contact.address) {
            if let Err(e) = channel.send(&msg).await {
                tracing::warn!(to = %contact.address, error = %e, "confirmation not delivered");
            }
        }
    }

    /// Queues the contact on every live triggered campaign whose keyword or pattern matches.
    async fn fire_triggers(&self, contact: &Contact, text: &str) -> Result<()> {
        let mut fired = false;
        let triggers = self.store.triggers().await?;
        let matched: Vec<&Trigger> = {
            let text = MessageText::new(text);
            let mut compiled = crate::lock(&self.triggers);
            compiled.retain_only(triggers.iter().map(|t| (t.pattern.as_str(), t.is_regex)));
            triggers
                .iter()
                .filter(|t| compiled.matches(&t.pattern, t.is_regex, &text))
                .collect()
        };
        for trigger in matched {
            let Some(campaign) = self.store.campaign(trigger.campaign_id).await? else {
                continue;
            };
            if campaign.status.is_final() {
                continue;
            }
            if campaign.kind == CampaignKind::Drip {
                match self.enroll(&campaign, contact.id).await {
                    Ok(true) => {
                        tracing::info!(
                            trigger = trigger.id,
                            drip = campaign.id,
                            "enrolled by trigger"
                        );
                        fired = true;
                    }
                    Ok(false) => {}
                    Err(super::EngineError::Rejected(why)) => {
                        tracing::warn!(trigger = trigger.id, %why, "trigger could not enroll")
                    }
                    Err(e) => return Err(e),
                }
                continue;
            }
            if campaign.kind != CampaignKind::Triggered {
                continue;
            }
            if self
                .store
                .enqueue(campaign.id, contact.id, self.clock.now())
                .await?
            {
                tracing::info!(
                    trigger = trigger.id,
                    campaign = campaign.id,
                    "trigger fired"
                );
                fired = true;
            }
        }
        if fired {
            self.wake();
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(provider_id = %s.provider_id))]
    async fn handle_status(&self, s: StatusUpdate) -> Result<()> {
        let failure = match &s.status {
            DeliveryStatus::Failed { code, title } => Some((code.clone(), title.clone())),
            _ => None,
        };
        // A failure the channel asks to retry hours later (WhatsApp 131049) is handled as when
        // the send itself answered it: the recipient goes back to the queue, a bounded number of
        // times, while its campaign is still open.
        let defer = failure
            .as_ref()
            .zip(
                s.recipient
                    .as_deref()
                    .and_then(|a| self.channels.for_address(a)),
            )
            .filter(|((code, _), channel)| {
                channel.classify_failure(code) == Some(ErrorClass::Defer)
            })
            .map(|_| Deferral {
                until: self.clock.now() + super::dispatcher::DEFER_FOR,
                max_attempts: super::dispatcher::MAX_DEFERS,
            });
        let Some(change) = self.status_writer().apply(s, defer).await? else {
            tracing::debug!("status changed nothing (replay, older, or not ours)");
            return Ok(());
        };
        if change.deferred {
            tracing::info!(
                campaign = change.campaign_id,
                recipient = change.recipient_id,
                "per-user marketing limit: the recipient is queued again for later"
            );
            if change.reopened {
                // The owner was told it completed: say why it is sending again.
                if let Some(campaign) = self.store.campaign(change.campaign_id).await? {
                    let hours = super::dispatcher::DEFER_FOR.num_hours();
                    self.tell_owner(
                        campaign.owner.as_deref(),
                        format!(
                            "campaign {} is sending again: Meta held back a message under its \
                             per-user marketing limit (131049), and that recipient is tried \
                             again in {hours} hours",
                            campaign.id
                        ),
                    )
                    .await;
                }
            }
            // The loop learns of the new due time.
            self.wake();
            return Ok(());
        }
        if let Some((code, title)) = failure {
            self.on_failed_status(change.campaign_id, change.contact_id, &code, &title)
                .await?;
        }
        for event in &change.events {
            let actions: Vec<PostAction> = change
                .rules
                .iter()
                .filter(|(on, _)| on == event)
                .map(|(_, action)| action.clone())
                .collect();
            self.apply_rules(change.campaign_id, change.contact_id, event, &actions)
                .await?;
        }
        Ok(())
    }

    /// A failure reported after the channel accepted the message (most WhatsApp delivery errors
    /// arrive this way) follows the send-error taxonomy where it says more than "this message
    /// failed": a stop of marketing or an unreachable contact is recorded on the contact, and an
    /// account-wide problem pauses the campaign and tells its owner. (A per-user marketing limit
    /// reported this way reaches here only when it is not deferred: tried too often already, or
    /// its campaign is over.)
    async fn on_failed_status(
        &self,
        campaign_id: i64,
        contact_id: i64,
        code: &str,
        title: &str,
    ) -> Result<()> {
        let Some(contact) = self.store.contact_by_id(contact_id).await? else {
            return Ok(());
        };
        let Some(channel) = self.channels.for_address(&contact.address) else {
            return Ok(());
        };
        self.metrics.message_failed(channel.kind());
        let class = channel.classify_failure(code);
        // Counted with the errors sends answered: most WhatsApp delivery errors come this way.
        self.metrics
            .channel_error(channel.kind(), code, class.unwrap_or(ErrorClass::Permanent));
        let Some(class) = class else {
            return Ok(());
        };
        let Some(campaign) = self.store.campaign(campaign_id).await? else {
            return Ok(());
        };
        self.apply_failure(class, &campaign, contact.id, code, title)
            .await?;
        Ok(())
    }
}
