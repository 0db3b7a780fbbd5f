//! The quality guard pauses a campaign whose recent sends fail or opt out too often, and tells
//! the admin. The network is played by a channel that refuses some addresses.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use herald::channels::console::ConsoleChannel;
use herald::channels::{Channel, ChannelKind, ErrorClass, Outbound, SendError, Sent};
use herald::clock::ManualClock;
use herald::config::Config;

use crate::support::console_app::t0;
use crate::support::db::TestDb;

/// Prints like the console, but answers "undeliverable" for the addresses it is told to.
struct Refusing {
    console: Arc<ConsoleChannel>,
    refuse: Mutex<HashSet<String>>,
}

#[async_trait]
impl Channel for Refusing {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Console
    }

    async fn send(&self, msg: &Outbound) -> Result<Sent, SendError> {
        if self.refuse.lock().unwrap().contains(&msg.to) {
            return Err(SendError::new(
                ErrorClass::Permanent,
                "131026",
                "Message undeliverable",
            ));
        }
        self.console.send(msg).await
    }
}

#[tokio::test]
async fn too_many_failures_pause_the_campaign_and_tell_the_admin() {
    let db = TestDb::new().await;
    let console = ConsoleChannel::recording();
    let refusing = Arc::new(Refusing {
        console: console.clone(),
        refuse: Mutex::new(HashSet::new()),
    });
    let config = Config {
        database_url: db.url.clone(),
        quality_min_sample: 20,
        ..Config::default()
    };
    let engine = herald::app::build_engine(
        config,
        Arc::new(ManualClock::new(t0())),
        vec![refusing.clone()],
    )
    .await
    .unwrap();
    let run = |line: String| {
        let engine = engine.clone();
        async move { herald::commands::handlers::run(&engine, "console", &line).await }
    };
    for i in 0..100 {
        let address = format!("+1555020{i:02}");
        run(format!("/contact add {address} labels=crowd optin")).await;
        if i % 3 == 0 {
            // The channel sees the stored form of the number.
            let stored = format!("wa:{}", &address[1..]);
            refusing.refuse.lock().unwrap().insert(stored);
        }
    }
    run("/template add note en utility Note".into()).await;
    run("/campaign new Risky".into()).await;
    run("/campaign audience 1 all".into()).await;
    run("/campaign template 1 note en".into()).await;
    run("/campaign pace 1 rate=10".into()).await;
    run("/campaign send 1".into()).await;
    engine.settle().await.unwrap();

    let report = run("/campaign report 1".into()).await;
    assert!(report.contains("status: paused"), "{report}");
    assert!(report.contains("failed.131026"), "{report}");
    let sent_or_failed: i64 = report
        .lines()
        .filter(|l| l.starts_with("sent: ") || l.starts_with("failed: "))
        .map(|l| l.split(": ").nth(1).unwrap().parse::<i64>().unwrap())
        .sum();
    assert!(sent_or_failed < 100, "paused before the end: {report}");
    let told = console.transcript().join("\n");
    assert!(told.contains("campaign 1 paused: quality guard"), "{told}");
}
