//! Resolving a sending campaign's audience into recipient rows, a page at a time, while it
//! sends (the pages themselves: `store/resolution.rs`). `herald run` keeps a resolver task
//! going through [`Engine::resolve_step`]; a dispatch step whose campaign has nothing queued
//! resolves a page itself, so sending never waits on a resolver that is not there (tests, the
//! console) and a campaign never completes with contacts left unresolved.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::lifecycle::PauseBy;
use super::{Engine, Result};
use crate::domain::audience::parse_audience;
use crate::store::resolution::Page;
use crate::store::Backend;

impl Engine {
    /// Resolves a page of every sending campaign whose audience is not fully resolved: on
    /// PostgreSQL one of each half at once, on two connections. Returns how many pages this
    /// process resolved (a half another process is resolving right now is left to it).
    pub async fn resolve_step(&self) -> Result<u64> {
        let mut pages = 0;
        let at_once = match self.store.backend() {
            Backend::Postgres => 2,
            Backend::Sqlite => 1,
        };
        for id in self.store.resolving_campaigns().await? {
            let resolved = futures::future::join_all(
                (0..at_once).map(|_| self.contained(id, self.resolve_page(id))),
            )
            .await;
            for page in resolved {
                if page? == Some(true) {
                    pages += 1;
                }
            }
        }
        Ok(pages)
    }

    /// Resolves the next page of campaign `id`; whether this call resolved one.
    pub(crate) async fn resolve_page(&self, id: i64) -> Result<bool> {
        // One light read first: every idle dispatch step asks, and most campaigns are resolved
        // (the store checks again under its lock before writing a page).
        if self.store.resolution(id).await?.is_none_or(|r| r.is_done()) {
            return Ok(false);
        }
        let Some(campaign) = self.store.campaign(id).await? else {
            return Ok(false);
        };
        let spec = campaign.audience.as_deref().unwrap_or_default();
        let expr = match parse_audience(spec) {
            Ok(expr) => expr,
            Err(e) => {
                // It parsed when the campaign started; a stored audience this release cannot
                // read stops the campaign with the reason rather than resolving it wrongly.
                let why = format!("its audience cannot be read ({e})");
                self.pause(id, PauseBy::Engine { why: &why }).await?;
                return Ok(false);
            }
        };
        let page = self
            .store
            .resolve_page(id, &expr, self.clock.now(), self.config.resolve_page)
            .await?;
        match page {
            Page::Resolved { rows, done } => {
                if rows > 0 {
                    self.wake();
                }
                if done {
                    tracing::info!(campaign_id = id, "audience resolved");
                }
                Ok(true)
            }
            Page::Busy | Page::Nothing => Ok(false),
        }
    }

    /// The resolver of `herald run`: pages back to back while any campaign has some left, then
    /// waits for a start (or a second, for another process's start) until `shutdown`.
    pub(crate) async fn resolve_loop(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let pause = match self.resolve_step().await {
                Ok(0) => true,
                Ok(_) => false,
                Err(error) => {
                    tracing::error!(%error, "resolution step failed");
                    true
                }
            };
            if pause {
                // Wall time, like the scheduler's polling: a test clock must not run away.
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.resolve_wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            } else {
                // Let the dispatcher have the database between pages (SQLite has one
                // connection).
                tokio::task::yield_now().await;
            }
        }
    }
}
