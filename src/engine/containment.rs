//! A bug must cost one campaign, not the process: a panic while one campaign is dispatched or
//! started pauses that campaign with the reason and is logged, and everything else keeps
//! running. Without this, a panic on stored data (say, a pace an older release accepted) would
//! end the process, and every restart would resume the campaign and end it again.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use super::lifecycle::PauseBy;
use super::{Engine, Result};

impl Engine {
    /// Runs `work` for campaign `campaign_id`; `Ok(None)` when it panicked (the campaign is then
    /// paused and its owner told why).
    pub(crate) async fn contained<T>(
        &self,
        campaign_id: i64,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<Option<T>> {
        match AssertUnwindSafe(work).catch_unwind().await {
            Ok(done) => done.map(Some),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                tracing::error!(campaign_id, panic = %what, "campaign work panicked; pausing it");
                let why = format!("internal error ({what}); details are in the log");
                self.pause(campaign_id, PauseBy::Engine { why: &why })
                    .await?;
                Ok(None)
            }
        }
    }
}
