//! The quality guard pauses a campaign whose recent sends fail or opt out too often, and tells
//! the admin. The network is played by a channel that refuses some addresses.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use herald::channels::console::ConsoleChannel;
use herald::channels::{Channel, ChannelKind, ErrorClass, Outbound, SendError, Sent};
use herald::clock::ManualClock;
use herald::config::Config;

use crate::support::console_app::{t0, ConsoleApp};
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

/// Who got a message so far, in order.
fn reached(app: &ConsoleApp) -> Vec<String> {
    app.console
        .delivered()
        .into_iter()
        .map(|(to, _)| to)
        .collect()
}

async fn say_stop(app: &ConsoleApp, who: &[String]) {
    for to in who {
        app.customer(to, "STOP").await;
    }
}

/// Sends one paced step at a time until `at_least` messages went out; returns who got one.
async fn send_until(app: &ConsoleApp, at_least: usize) -> Vec<String> {
    for _ in 0..200 {
        let got = reached(app);
        if got.len() >= at_least {
            return got;
        }
        app.engine.dispatch_step().await.unwrap();
        app.clock.advance(chrono::Duration::seconds(1));
    }
    panic!("fewer than {at_least} messages went out");
}

async fn paced_campaign_to_100(app: &ConsoleApp) {
    let mut lines = Vec::new();
    for i in 0..100 {
        lines.push(format!("/contact add +1555030{i:02} labels=crowd optin"));
    }
    lines.extend(
        [
            "/template add note en utility Note",
            "/campaign new Careful",
            "/campaign audience 1 all",
            "/campaign template 1 note en",
            "/campaign pace 1 rate=5",
            "/campaign send 1",
        ]
        .map(String::from),
    );
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    app.setup(&lines).await;
}

#[tokio::test]
async fn customers_who_answer_stop_count_against_the_sends_they_answered() {
    let app = ConsoleApp::start().await;
    paced_campaign_to_100(&app).await;
    let got = send_until(&app, 30).await;
    assert_eq!(app.count(1, "skipped").await, 0);
    // 3 of the first 30 (10 %, over the 5 % allowed) say STOP after their message arrived.
    say_stop(&app, &got[..3]).await;
    let report = app.admin("/campaign report 1").await;
    assert!(
        report.contains("status: sending"),
        "not judged yet: {report}"
    );

    app.engine.dispatch_step().await.unwrap();
    let report = app.admin("/campaign report 1").await;
    assert!(report.contains("status: paused"), "{report}");
    let told = app.console.transcript().join("\n");
    assert!(
        told.contains("campaign 1 paused: quality guard: 3 of the last"),
        "{told}"
    );
    assert!(told.contains("opted out"), "{told}");
}

#[tokio::test]
async fn a_restarted_process_judges_again_after_a_fresh_sample() {
    let app = ConsoleApp::start().await;
    paced_campaign_to_100(&app).await;
    let got = send_until(&app, 10).await;
    say_stop(&app, &got[..3]).await;
    // Too few sends to judge (20 at least): the campaign goes on, in a new process too.
    let app = app.restart().await;
    app.engine.dispatch_step().await.unwrap();
    let report = app.admin("/campaign report 1").await;
    assert!(report.contains("status: sending"), "{report}");
    // The new process's window holds only its own sends: the early opt-outs are not among them.
    send_until(&app, 40).await;
    let report = app.admin("/campaign report 1").await;
    assert!(report.contains("status: sending"), "{report}");
    // A later opt-out among its own sends is.
    say_stop(&app, &reached(&app)[..3]).await;
    app.engine.dispatch_step().await.unwrap();
    let report = app.admin("/campaign report 1").await;
    assert!(report.contains("status: paused"), "{report}");
}
