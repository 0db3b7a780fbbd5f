//! herald on the console channel with a manual clock: the engine the real channels use, driven
//! step by step.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use herald::channels::console::{ConsoleChannel, CONSOLE_ADMIN};
use herald::channels::{Channel, Inbound};
use herald::clock::ManualClock;
use herald::config::Config;
use herald::engine::Engine;

use super::db::TestDb;

pub struct ConsoleApp {
    pub engine: Arc<Engine>,
    pub console: Arc<ConsoleChannel>,
    pub clock: ManualClock,
    pub db: Arc<TestDb>,
    pub config: Config,
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
}

impl ConsoleApp {
    pub async fn start() -> ConsoleApp {
        Self::with_config(Config::default()).await
    }

    pub async fn with_config(config: Config) -> ConsoleApp {
        let db = Arc::new(TestDb::new().await);
        Self::build(
            db,
            config,
            ManualClock::new(t0()),
            ConsoleChannel::recording(),
        )
        .await
    }

    async fn build(
        db: Arc<TestDb>,
        mut config: Config,
        clock: ManualClock,
        console: Arc<ConsoleChannel>,
    ) -> ConsoleApp {
        config.database_url = db.url.clone();
        let channels: Vec<Arc<dyn Channel>> = vec![console.clone()];
        let engine = herald::app::build_engine(config.clone(), Arc::new(clock.clone()), channels)
            .await
            .expect("engine builds");
        ConsoleApp {
            engine,
            console,
            clock,
            db,
            config,
        }
    }

    /// A new process on the same database (what a restart after a crash looks like): fresh
    /// engine, fresh console output, same clock.
    pub async fn restart(&self) -> ConsoleApp {
        Self::build(
            self.db.clone(),
            self.config.clone(),
            self.clock.clone(),
            ConsoleChannel::recording(),
        )
        .await
    }

    /// Runs an admin command typed on the console and returns the reply.
    pub async fn admin(&self, line: &str) -> String {
        herald::commands::handlers::run(&self.engine, CONSOLE_ADMIN, line).await
    }

    /// Runs admin commands, panicking with the reply if one was refused (for setup).
    pub async fn setup(&self, lines: &[&str]) {
        for line in lines {
            let reply = self.admin(line).await;
            let lowered = reply.to_lowercase();
            assert!(
                !(lowered.contains("usage:")
                    || lowered.starts_with("no ")
                    || lowered.contains("cannot")),
                "setup command {line:?} was refused: {reply}"
            );
        }
    }

    /// A customer writes in, now.
    pub async fn customer(&self, from: &str, text: &str) {
        self.engine
            .handle_inbound(Inbound {
                from: from.into(),
                name: None,
                text: Some(text.into()),
                button: None,
                at: self.clock.now_utc(),
                provider_id: None,
                file: None,
            })
            .await
            .expect("inbound handled");
    }

    /// Runs the scheduler and dispatcher until nothing is due.
    pub async fn settle(&self) {
        self.engine.settle().await.expect("settle");
    }

    /// Messages customer `address` received, in order.
    pub fn received(&self, address: &str) -> Vec<String> {
        self.console
            .delivered()
            .into_iter()
            .filter(|(a, _)| a == address)
            .map(|(_, t)| t)
            .collect()
    }

    /// `key: value` lines of `/campaign report <id>`.
    pub async fn report(&self, id: i64) -> std::collections::BTreeMap<String, String> {
        let text = self.admin(&format!("/campaign report {id}")).await;
        text.lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub async fn count(&self, id: i64, key: &str) -> i64 {
        self.report(id)
            .await
            .get(key)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

pub trait ClockExt {
    fn now_utc(&self) -> DateTime<Utc>;
}

impl ClockExt for ManualClock {
    fn now_utc(&self) -> DateTime<Utc> {
        herald::clock::Clock::now(self)
    }
}
