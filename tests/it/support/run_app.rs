//! `herald run` for real, in-process: [`App::build`] + [`App::run`] with the HTTP server on
//! 127.0.0.1:0, WhatsApp pointed at a [`FakeGraph`], a fresh database, and a [`ManualClock`] the
//! test moves. Tests play Meta: they POST signed webhook bodies to `/webhooks/whatsapp` and read
//! what herald sent from the fake Graph API.
//!
//! A webhook is answered only after it is processed, so whatever it causes directly (an admin's
//! reply, an opt-out confirmation) is at the fake Graph API when `post_webhook` returns. Campaign
//! sends happen on the background dispatcher; [`RunApp::wait_until`] polls for them with a short
//! bounded loop (waiting for I/O, never for a schedule: time only moves when a test advances the
//! clock).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use herald::app::{App, AppError};
use herald::channels::whatsapp::{sign, SIGNATURE_HEADER};
use herald::clock::{Clock, ManualClock};
use herald::config::Config;
use herald::engine::Engine;
use reqwest::StatusCode;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::db::TestDb;
use super::fake_graph::{webhooks, FakeGraph, RecordedRequest};

/// The admin's WhatsApp number (`ADMIN_WHATSAPP`), digits as Meta writes `from`.
pub const ADMIN: &str = "15550100";
pub const APP_SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";
pub const PHONE_NUMBER_ID: &str = "1122334455667";
pub const TOKEN: &str = "EAAG-test-token";

/// How long a wait for the background dispatcher may take before the test fails.
const WAIT_LIMIT: Duration = Duration::from_secs(15);

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
}

pub struct RunApp {
    pub fake: FakeGraph,
    pub clock: ManualClock,
    pub engine: Arc<Engine>,
    /// `http://127.0.0.1:<port>` of herald's HTTP server.
    pub base: String,
    pub http: reqwest::Client,
    config: Config,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), AppError>>>,
    wamids: AtomicU64,
    _db: TestDb,
}

/// A running `herald run`: its engine, where it listens, and how to stop it.
struct Running {
    engine: Arc<Engine>,
    base: String,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), AppError>>,
}

async fn launch(config: Config, clock: &ManualClock) -> Running {
    let app = App::build(config, Arc::new(clock.clone()))
        .await
        .expect("herald run builds");
    let base = format!("http://{}", app.http_addr());
    let engine = app.engine.clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run(shutdown.clone()));
    Running {
        engine,
        base,
        shutdown,
        task,
    }
}

impl Drop for RunApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl RunApp {
    /// The stored contact at `address`; panics if there is none.
    pub async fn contact(&self, address: &str) -> herald::store::Contact {
        self.engine
            .store
            .find_contact(&address.parse().expect("an address"))
            .await
            .expect("store answers")
            .unwrap_or_else(|| panic!("no contact {address}"))
    }

    /// herald run with the default settings of the tests.
    pub async fn start() -> RunApp {
        Self::start_with(&[], |_| {}).await
    }

    /// herald run with extra environment variables (`WHATSAPP_TIER`, `WHATSAPP_MPS`, ... or an
    /// empty value to unset one of the defaults) and a last edit of the configuration.
    pub async fn start_with(env: &[(&str, &str)], edit: impl FnOnce(&mut Config)) -> RunApp {
        // `HERALD_LOG=debug cargo test ...` shows herald's log for a failing test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
            )
            .with_test_writer()
            .try_init();
        let fake = FakeGraph::start().await;
        fake.require_token(TOKEN);
        let db = TestDb::new().await;
        let api_url = format!("{}/v21.0", fake.url);
        let mut vars: std::collections::HashMap<String, String> = [
            ("DATABASE_URL", db.url.as_str()),
            ("HTTP_ADDR", "127.0.0.1:0"),
            ("WHATSAPP_API_URL", api_url.as_str()),
            ("WHATSAPP_TOKEN", TOKEN),
            ("WHATSAPP_PHONE_NUMBER_ID", PHONE_NUMBER_ID),
            ("WHATSAPP_APP_SECRET", APP_SECRET),
            ("WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN),
            ("ADMIN_WHATSAPP", "+15550100"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in env {
            vars.insert(k.to_string(), v.to_string());
        }
        let mut config = Config::from_vars(&vars).expect("test configuration is valid");
        edit(&mut config);

        let clock = ManualClock::new(t0());
        let running = launch(config.clone(), &clock).await;
        RunApp {
            fake,
            clock,
            engine: running.engine,
            base: running.base,
            http: reqwest::Client::new(),
            config,
            shutdown: running.shutdown,
            task: Some(running.task),
            wamids: AtomicU64::new(1),
            _db: db,
        }
    }

    /// Stops herald as SIGTERM would, and checks it exits cleanly.
    pub async fn stop(mut self) {
        self.stop_running().await;
    }

    async fn stop_running(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(WAIT_LIMIT, task)
                .await
                .expect("herald stops in time")
                .expect("herald's task did not panic");
            result.expect("herald run ends without error");
        }
    }

    /// Stops herald cleanly and starts a new process on the same database, Graph API and clock
    /// (on a new port).
    pub async fn restart(&mut self) {
        self.stop_running().await;
        let running = launch(self.config.clone(), &self.clock).await;
        self.engine = running.engine;
        self.base = running.base;
        self.shutdown = running.shutdown;
        self.task = Some(running.task);
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Unix seconds of the test clock, for webhook timestamps.
    pub fn now_secs(&self) -> i64 {
        self.clock.now().timestamp()
    }

    /// Moves time forward and nudges the dispatcher to look at it.
    pub fn advance(&self, d: chrono::Duration) {
        self.clock.advance(d);
        self.engine.wake();
    }

    /// A new message id, as Meta would give each inbound message.
    pub fn wamid(&self) -> String {
        format!(
            "wamid.test{:06}",
            self.wamids.fetch_add(1, Ordering::Relaxed)
        )
    }

    // ---- playing Meta -------------------------------------------------------------------------

    /// POSTs a webhook body signed with the app secret, as Meta does.
    pub async fn post_webhook(&self, body: &str) -> StatusCode {
        let signature = sign(APP_SECRET.as_bytes(), body.as_bytes());
        self.post_with_signature(body, Some(&signature)).await
    }

    /// POSTs a webhook body without `X-Hub-Signature-256`.
    pub async fn post_unsigned(&self, body: &str) -> StatusCode {
        self.post_with_signature(body, None).await
    }

    /// POSTs a webhook body with this `X-Hub-Signature-256` value (or none).
    pub async fn post_with_signature(&self, body: &str, signature: Option<&str>) -> StatusCode {
        let mut request = self
            .http
            .post(format!("{}/webhooks/whatsapp", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(signature) = signature {
            request = request.header(SIGNATURE_HEADER, signature);
        }
        request.send().await.expect("herald answers").status()
    }

    /// GETs a path of herald's HTTP server: (status, body).
    pub async fn get(&self, path_and_query: &str) -> (StatusCode, String) {
        let response = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .send()
            .await
            .expect("herald answers");
        let status = response.status();
        (status, response.text().await.unwrap_or_default())
    }

    /// A customer (`from`: digits or `wa:` address) writes `text` now; asserts herald took it.
    pub async fn customer_says(&self, from: &str, text: &str) {
        let body = webhooks::text(from, "Customer", text, &self.wamid(), self.now_secs());
        assert_eq!(self.post_webhook(&body).await, StatusCode::OK, "{text:?}");
    }

    /// The admin types `line` on WhatsApp; returns herald's answer (every text the admin
    /// received while the webhook was processed, joined by newlines).
    pub async fn admin(&self, line: &str) -> String {
        let before = self.admin_texts().len();
        let body = webhooks::text(ADMIN, "Admin", line, &self.wamid(), self.now_secs());
        assert_eq!(self.post_webhook(&body).await, StatusCode::OK, "{line:?}");
        let texts = self.admin_texts();
        assert!(
            texts.len() > before,
            "the admin got no answer to {line:?} over WhatsApp"
        );
        texts[before..].join("\n")
    }

    /// Runs admin commands, panicking with the reply if one was refused (for setup).
    pub async fn setup(&self, lines: &[&str]) {
        for line in lines {
            let reply = self.admin(line).await;
            let lowered = reply.to_lowercase();
            assert!(
                !(lowered.contains("usage:")
                    || lowered.starts_with("no ")
                    || lowered.contains("cannot")
                    || lowered.contains("went wrong")),
                "setup command {line:?} was refused: {reply}"
            );
        }
    }

    /// `key: value` lines of `/campaign report <id>`, asked over WhatsApp.
    pub async fn report(&self, id: i64) -> BTreeMap<String, String> {
        let text = self.admin(&format!("/campaign report {id}")).await;
        text.lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // ---- what herald sent -------------------------------------------------------------------

    /// Texts the admin received over WhatsApp (accepted by the fake), in order.
    pub fn admin_texts(&self) -> Vec<String> {
        self.fake
            .accepted()
            .iter()
            .filter(|r| r.to() == Some(ADMIN))
            .filter_map(|r| r.text().map(str::to_string))
            .collect()
    }

    /// Every POST herald made for customers (anyone but the admin), accepted or not.
    pub fn customer_requests(&self) -> Vec<RecordedRequest> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.to() != Some(ADMIN))
            .collect()
    }

    /// Campaign messages (those carrying callback data) the fake accepted, in order.
    pub fn campaign_sends(&self) -> Vec<RecordedRequest> {
        self.fake
            .accepted()
            .into_iter()
            .filter(|r| r.callback().is_some())
            .collect()
    }

    /// The accepted campaign message to `to` (digits); panics if there is not exactly one.
    pub fn campaign_send_to(&self, to: &str) -> RecordedRequest {
        let sends: Vec<_> = self
            .campaign_sends()
            .into_iter()
            .filter(|r| r.to() == Some(to))
            .collect();
        assert_eq!(sends.len(), 1, "campaign messages to {to}: {sends:?}");
        sends.into_iter().next().unwrap()
    }

    /// Polls `check` until it holds; fails the test after a few seconds with `what`.
    pub async fn wait_until(&self, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        while !check() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for: {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for a text to the admin starting with `prefix` (a notice from the background
    /// dispatcher) and returns it.
    pub async fn wait_for_admin_text(&self, prefix: &str) -> String {
        self.wait_until(&format!("a text to the admin starting {prefix:?}"), || {
            self.admin_texts().iter().any(|t| t.starts_with(prefix))
        })
        .await;
        self.admin_texts()
            .into_iter()
            .find(|t| t.starts_with(prefix))
            .unwrap_or_default()
    }

    /// Waits until the fake has accepted `n` campaign messages in all.
    pub async fn wait_for_campaign_sends(&self, n: usize) {
        self.wait_until(&format!("{n} campaign message(s) accepted"), || {
            self.campaign_sends().len() >= n
        })
        .await;
    }

    /// Waits until the fake has received `n` POSTs for customers in all (accepted or not).
    pub async fn wait_for_customer_requests(&self, n: usize) {
        self.wait_until(&format!("{n} customer request(s)"), || {
            self.customer_requests().len() >= n
        })
        .await;
    }

    /// Waits until campaign `id` has nothing in flight, and nothing due now while it sends: every
    /// recipient is sent, skipped, failed, or held for a later time.
    pub async fn wait_for_idle(&self, id: i64) {
        use sqlx::Row;
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        loop {
            let store = &self.engine.store;
            let campaign = store.campaign(id).await.expect("campaign").expect("exists");
            let row = sqlx::query(
                "SELECT COUNT(*) FILTER (WHERE status IN ('claimed', 'sending')) AS in_flight, \
                 COUNT(*) FILTER (WHERE status = 'queued' AND next_attempt_at <= $2) AS due, \
                 COUNT(*) FILTER (WHERE status = 'queued') AS queued \
                 FROM recipients WHERE campaign_id = $1",
            )
            .bind(id)
            .bind(self.now().timestamp_millis())
            .fetch_one(store.pool())
            .await
            .expect("count busy recipients");
            let in_flight: i64 = row.get("in_flight");
            let due: i64 = row.get("due");
            let queued: i64 = row.get("queued");
            let sending = campaign.status == herald::store::CampaignStatus::Sending;
            // A one-time campaign with nothing left is about to complete: wait for that too.
            let completing =
                sending && queued == 0 && campaign.kind == herald::store::CampaignKind::OneTime;
            if in_flight == 0 && (due == 0 || !sending) && !completing {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for campaign {id} to go idle \
                 ({in_flight} in flight, {due} due, {})",
                campaign.status
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The leading number of a report value (`"1 (131026 ...)"` → 1), 0 when absent.
pub fn count(report: &BTreeMap<String, String>, key: &str) -> i64 {
    report
        .get(key)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
