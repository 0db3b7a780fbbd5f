//! Drip sequences: a contact is queued on the first step when enrolled, and on the next step
//! when a step reaches them, due that step's delay later. Each contact so walks the steps on
//! their own clock; a step that cannot reach them (skipped or failed) ends their sequence, and
//! so does a reply when the drip stops on replies.

use chrono::Duration;

use super::{Engine, EngineError, Result};
use crate::store::{Campaign, CampaignKind, CampaignStatus};

impl Engine {
    /// The steps of a drip, in order.
    pub async fn drip_steps(&self, drip_id: i64) -> Result<Vec<Campaign>> {
        Ok(self.store.runs(drip_id).await?)
    }

    /// Enrolls one contact (a trigger firing). False if they were enrolled before.
    pub async fn enroll(&self, drip: &Campaign, contact_id: i64) -> Result<bool> {
        let steps = self.drip_steps(drip.id).await?;
        let Some(first) = steps.first() else {
            return Err(EngineError::Rejected(format!(
                "drip {} has no steps yet: /drip step {} 0m text <message>",
                drip.id, drip.id
            )));
        };
        let now = self.clock.now();
        let due = now + Duration::milliseconds(first.step_delay_ms);
        let enrolled = self
            .store
            .enqueue_at(first.id, contact_id, now, due)
            .await?;
        self.make_live(drip).await?;
        Ok(enrolled)
    }

    /// A drip goes live with its first enrolment.
    pub(crate) async fn make_live(&self, drip: &Campaign) -> Result<()> {
        let now = self.clock.now();
        if self
            .store
            .transition(
                drip.id,
                &[CampaignStatus::Draft],
                CampaignStatus::Sending,
                None,
                now,
            )
            .await?
        {
            self.status_changed(drip.id);
        }
        self.wake();
        Ok(())
    }

    /// A step reached a contact: queue them on the next step, if there is one.
    pub(crate) async fn advance_drip(&self, step: &Campaign, contact_id: i64) -> Result<()> {
        if step.kind != CampaignKind::DripStep {
            return Ok(());
        }
        let Some(drip_id) = step.parent_id else {
            return Ok(());
        };
        let steps = self.drip_steps(drip_id).await?;
        let Some(next) = steps.iter().find(|s| s.run_no == step.run_no + 1) else {
            return Ok(());
        };
        if next.status.is_final() {
            return Ok(());
        }
        let now = self.clock.now();
        let due = now + Duration::milliseconds(next.step_delay_ms);
        self.store.enqueue_at(next.id, contact_id, now, due).await?;
        Ok(())
    }
}
