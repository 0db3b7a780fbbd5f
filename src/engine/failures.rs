//! What a failure does beyond its own message, by the class SPEC section 3 gives it: the one
//! place for both a send the channel refused and a failure reported later by a status webhook.
//! (Whether the message itself is retried, deferred or failed is the dispatcher's business; a
//! failure that arrives as a status has already left.)

use super::lifecycle::PauseBy;
use super::{Engine, Result};
use crate::channels::ErrorClass;
use crate::store::Campaign;

impl Engine {
    /// Records what the failure says about the contact (stopped marketing, unreachable) or the
    /// account (pause the campaign and tell its owner).
    pub(crate) async fn apply_failure(
        &self,
        class: ErrorClass,
        campaign: &Campaign,
        contact_id: i64,
        code: &str,
        reason: &str,
    ) -> Result<()> {
        match class {
            ErrorClass::Unreachable => {
                self.store.set_unreachable(contact_id, Some(reason)).await?;
            }
            ErrorClass::MarketingStopped => {
                self.store.set_marketing_stopped(contact_id, true).await?;
            }
            ErrorClass::PauseCampaign => {
                let why = format!("{code} {reason}");
                self.pause(campaign.id, PauseBy::Engine { why: &why })
                    .await?;
            }
            ErrorClass::RateLimited
            | ErrorClass::Unknown
            | ErrorClass::Transient
            | ErrorClass::Defer
            | ErrorClass::Permanent => {}
        }
        Ok(())
    }
}
