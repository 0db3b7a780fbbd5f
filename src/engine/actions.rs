//! Post-campaign triggers (`/on`): when something happens to a recipient's message, apply the
//! campaign's rules for that event to the contact.

use super::{Engine, Result};
use crate::domain::actions::{PostAction, RecipientEvent};
use crate::domain::consent::ConsentSource;
use crate::store::ContactUpdate;

impl Engine {
    /// Applies every rule of `campaign_id` (and of the recurring campaign it is a run of) for
    /// `event` to the contact. A rule that no longer parses is logged and skipped.
    pub async fn on_recipient_event(
        &self,
        campaign_id: i64,
        contact_id: i64,
        event: &RecipientEvent,
    ) -> Result<()> {
        let actions = self.store.actions_for(campaign_id, event).await?;
        self.apply_rules(campaign_id, contact_id, event, &actions)
            .await
    }

    /// Applies `actions`, the rules of `campaign_id` for `event`, to the contact.
    pub async fn apply_rules(
        &self,
        campaign_id: i64,
        contact_id: i64,
        event: &RecipientEvent,
        actions: &[PostAction],
    ) -> Result<()> {
        let event_key = event.key();
        for action in actions {
            let now = self.clock.now();
            match action {
                PostAction::AddLabel(label) => {
                    self.store.set_label(label, &[contact_id], true).await?;
                }
                PostAction::RemoveLabel(label) => {
                    self.store.set_label(label, &[contact_id], false).await?;
                }
                PostAction::SetAttr { key, value } => {
                    let update = ContactUpdate {
                        attrs: vec![(key.clone(), value.clone())],
                        ..ContactUpdate::default()
                    };
                    self.store.update_contact(contact_id, &update).await?;
                }
                PostAction::OptOut => {
                    let already = self
                        .store
                        .contact_by_id(contact_id)
                        .await?
                        .is_some_and(|c| c.consent == crate::store::Consent::OptedOut);
                    if !already {
                        self.store
                            .record_consent(
                                contact_id,
                                false,
                                ConsentSource::CampaignRule,
                                Some(&event_key),
                                now,
                            )
                            .await?;
                    }
                }
            }
            tracing::info!(campaign_id, contact_id, event = %event_key, "post-campaign rule applied");
        }
        Ok(())
    }
}
