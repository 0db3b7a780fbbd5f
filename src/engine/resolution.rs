//! Resolving a sending campaign's audience into recipient rows, a page at a time, while it
//! sends (the pages themselves: `store/resolution.rs`). `herald run` keeps a resolver task
//! going through [`Engine::resolve_step`]; a dispatch step whose campaign has nothing queued
//! resolves a page itself, so sending never waits on a resolver that is not there (tests, the
//! console) and a campaign never completes with contacts left unresolved.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::lifecycle::PauseBy;
use super::{Engine, Result};
use crate::domain::audience::parse_audience;
use crate::store::resolution::Page;
use crate::store::Backend;

/// How long a resolve step pages one campaign on PostgreSQL before it turns to the next.
const PAGING_BUDGET: Duration = Duration::from_millis(250);

impl Engine {
    /// Resolves pages of every sending campaign whose audience is not fully resolved. On SQLite
    /// one page each, so the dispatcher has the one connection between pages. On PostgreSQL
    /// both halves at once, on two connections, each paging on its own (neither waits for the
    /// other's page) for up to [`PAGING_BUDGET`] before the next campaign's turn. Returns how
    /// many pages this process resolved (a half another process is resolving right now is left
    /// to it).
    pub async fn resolve_step(&self) -> Result<u64> {
        let mut pages = 0;
        for id in self.store.resolving_campaigns().await? {
            pages += match self.store.backend() {
                Backend::Sqlite => {
                    u64::from(self.contained(id, self.resolve_page(id)).await? == Some(true))
                }
                Backend::Postgres => {
                    let started = Instant::now();
                    let half = || async {
                        let mut n = 0;
                        while self.contained(id, self.resolve_page(id)).await? == Some(true) {
                            n += 1;
                            if started.elapsed() >= PAGING_BUDGET {
                                break;
                            }
                        }
                        Result::<u64>::Ok(n)
                    };
                    let (a, b) = tokio::join!(half(), half());
                    a? + b?
                }
            };
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
