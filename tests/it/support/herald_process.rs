//! `herald run` as a child process against a fake Graph API, for the shutdown and crash tests:
//! the real binary, its real signal handling, and a database the test reads alongside.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::channels::whatsapp::{WhatsAppClient, WhatsAppConfig};
use herald::channels::Channel;
use herald::clock::{SharedClock, SystemClock};
use herald::config::{Config, Tier};
use herald::engine::Engine;

use super::fake_graph::FakeGraph;

pub const PHONE_NUMBER_ID: &str = "1122334455667";
pub const TOKEN: &str = "EAAG-test-token";

/// A configuration on `db_url` with an unlimited tier (campaigns here are about delivery, not
/// about the tier budget).
pub fn config(db_url: &str) -> Config {
    Config {
        database_url: db_url.to_string(),
        tier: Tier::Unlimited,
        ..Config::default()
    }
}

/// An engine on `db_url` whose WhatsApp channel talks to `fake` without a throughput ceiling.
pub async fn whatsapp_engine(
    mut config: Config,
    fake: &FakeGraph,
    clock: SharedClock,
) -> Arc<Engine> {
    let mut wa = WhatsAppConfig::new(&fake.url, PHONE_NUMBER_ID, TOKEN);
    wa.max_per_second = 1e6;
    let client: Arc<dyn Channel> = Arc::new(WhatsAppClient::new(wa).expect("client"));
    config.whatsapp_token = Some(TOKEN.into());
    config.whatsapp_phone_number_id = Some(PHONE_NUMBER_ID.into());
    herald::app::build_engine(config, clock, vec![client])
        .await
        .expect("engine builds")
}

/// Runs admin commands, panicking on a refusal.
pub async fn admin(engine: &Engine, lines: &[&str]) {
    for line in lines {
        let reply = herald::commands::handlers::run(engine, "console", line).await;
        let lowered = reply.to_lowercase();
        assert!(
            !(lowered.contains("usage:")
                || lowered.starts_with("no ")
                || lowered.contains("cannot")),
            "{line:?} was refused: {reply}"
        );
    }
}

/// Seeds `n` opted-in contacts labelled `all` and prepares campaign 1 to them, unpaced (not
/// started).
pub async fn campaign_to_all(engine: &Engine, n: u64) {
    herald::bench::seed::contacts(&engine.store, n, &[("all", n)], engine.clock.now())
        .await
        .unwrap();
    admin(
        engine,
        &[
            "/campaign new Everyone",
            "/campaign audience 1 all",
            "/campaign text 1 Hello {{name}}",
            "/campaign pace 1 rate=0",
        ],
    )
    .await;
}

/// Seeds `n` opted-in contacts labelled `all` (window open now) and starts campaign 1 to them
/// with the given pace, through the library on the same database the child process will use.
/// Returns when the campaign is `sending`.
pub async fn seed_sending_campaign(db_url: &str, n: u64, pace: &str) {
    seed_sending_campaign_paged(db_url, n, pace, herald::config::DEFAULT_RESOLVE_PAGE).await
}

/// [`seed_sending_campaign`] with its audience resolved in pages of `page` contact ids: the
/// start writes the first, the process under test resolves the rest.
pub async fn seed_sending_campaign_paged(db_url: &str, n: u64, pace: &str, page: u64) {
    let config = Config {
        resolve_page: page,
        ..config(db_url)
    };
    let engine = herald::app::build_engine(config, Arc::new(SystemClock), vec![])
        .await
        .expect("engine builds");
    herald::bench::seed::contacts(
        &engine.store,
        n,
        &[("all", n)],
        herald::clock::Clock::now(&SystemClock),
    )
    .await
    .expect("contacts seeded");
    admin(
        &engine,
        &[
            "/campaign new Crash and shutdown",
            "/campaign audience 1 all",
            "/campaign text 1 Hello {{name}}",
            &format!("/campaign pace 1 {pace}"),
            "/campaign send 1",
        ],
    )
    .await;
    engine.store.close().await;
}

/// A running `herald run`.
pub struct HeraldProcess {
    pub child: Child,
}

impl HeraldProcess {
    /// Starts `herald run` on `db_url`, sending WhatsApp through `graph_url`, with `env` on top.
    pub fn start(db_url: &str, graph_url: &str, env: &[(&str, &str)]) -> HeraldProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
        command
            .args(["--config", "/nonexistent/herald.toml", "run"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", db_url)
            .env("WHATSAPP_API_URL", graph_url)
            .env("WHATSAPP_TOKEN", TOKEN)
            .env("WHATSAPP_PHONE_NUMBER_ID", PHONE_NUMBER_ID)
            .env("WHATSAPP_TIER", "unlimited")
            .env("HTTP_ADDR", "127.0.0.1:0")
            .env(
                "HERALD_LOG",
                std::env::var("HERALD_TEST_CHILD_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        HeraldProcess {
            child: command.spawn().expect("herald starts"),
        }
    }

    /// Sends a signal by name (`TERM`, `INT`) through the `kill` command.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill_hard(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// Waits up to `limit` for the process to end. It polls without blocking the thread: the
    /// fake servers the process is talking to run on the test's runtime.
    pub async fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for HeraldProcess {
    fn drop(&mut self) {
        // A failed test must not leave a sender running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `check` every 20 ms until it holds or `limit` passes; says whether it held.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Recipients per status of campaign `campaign`, read straight from the database.
/// The rows of `campaign` still in flight (`claimed` or `sending`), each with its worker, and
/// every lease: what a campaign that never finishes is waiting for.
pub async fn in_flight(store: &herald::store::Store, campaign: i64) -> String {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT id, status, claimed_by, attempts FROM recipients \
         WHERE campaign_id = $1 AND status IN ('claimed', 'sending') ORDER BY id LIMIT 20",
    )
    .bind(campaign)
    .fetch_all(store.pool())
    .await
    .expect("rows in flight");
    let leases = sqlx::query("SELECT id, worker, until, recipient_ids FROM leases ORDER BY id")
        .fetch_all(store.pool())
        .await
        .expect("leases");
    let rows: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {} by {:?} (attempts {})",
                r.get::<i64, _>("id"),
                r.get::<String, _>("status"),
                r.get::<Option<String>, _>("claimed_by"),
                r.get::<i64, _>("attempts")
            )
        })
        .collect();
    let leases: Vec<String> = leases
        .iter()
        .map(|l| {
            let ids: String = l.get("recipient_ids");
            format!(
                "lease {} of {} until {}: {}",
                l.get::<i64, _>("id"),
                l.get::<String, _>("worker"),
                l.get::<i64, _>("until"),
                ids.chars().take(80).collect::<String>()
            )
        })
        .collect();
    format!("in flight: {rows:?}; leases: {leases:?}")
}

pub async fn statuses(
    store: &herald::store::Store,
    campaign: i64,
) -> std::collections::BTreeMap<String, i64> {
    use sqlx::Row;
    sqlx::query(
        "SELECT status, COUNT(*) AS n FROM recipients WHERE campaign_id = $1 GROUP BY status",
    )
    .bind(campaign)
    .fetch_all(store.pool())
    .await
    .expect("statuses")
    .iter()
    .map(|r| (r.get::<String, _>("status"), r.get::<i64, _>("n")))
    .collect()
}

/// Accepted messages per recipient digits at the fake.
pub fn accepted_per_recipient(fake: &FakeGraph) -> std::collections::HashMap<String, usize> {
    let mut counts = std::collections::HashMap::new();
    for r in fake.accepted() {
        *counts
            .entry(r.to().unwrap_or_default().to_string())
            .or_insert(0) += 1;
    }
    counts
}
