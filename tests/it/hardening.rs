//! Hostile and careless input never crashes herald: absurd numbers are refused where they are
//! typed, stored data an older release accepted cannot crash the engine (or every restart after
//! it), and a bug in one campaign's work pauses that campaign instead of ending the process.

use std::sync::Arc;

use async_trait::async_trait;
use herald::channels::{Channel, ChannelKind, Outbound, SendError, Sent};
use herald::clock::ManualClock;
use herald::config::Config;
use herald::store::CampaignStatus;

use crate::support::console_app::{t0, ConsoleApp};
use crate::support::db::TestDb;

#[tokio::test]
async fn absurd_pacing_is_refused_where_it_is_typed() {
    let app = ConsoleApp::start().await;
    app.setup(&["/campaign new Slow"]).await;
    for line in [
        "/campaign pace 1 batch=1 pause=1e300",
        "/campaign pace 1 rate=1e-300",
        "/campaign pace 1 delay=0-1e300",
    ] {
        let reply = app.admin(line).await;
        assert!(reply.contains("Usage: /campaign pace"), "{line}: {reply}");
    }
    let show = app.admin("/campaign show 1").await;
    assert!(show.contains("rate 20 msg/s"), "pace unchanged: {show}");
}

#[tokio::test]
async fn a_database_holding_an_absurd_pace_restarts_and_keeps_working() {
    let app = ConsoleApp::start().await;
    app.setup(&[
        "/contact add +15550001 name=Ann labels=vip optin",
        "/contact add +15550002 name=Bob labels=vip optin",
        "/campaign new Slow",
        "/campaign audience 1 vip",
        "/campaign text 1 Hi {{name}}",
    ])
    .await;
    app.customer("+15550001", "hi").await;
    app.customer("+15550002", "hi").await;
    // What an older release let `/campaign pace 1 batch=1 pause=1e300` store.
    sqlx::query(
        "UPDATE campaigns SET rate = 1e-300, batch_size = 1, batch_pause_ms = $1, \
         delay_min_ms = $1, delay_max_ms = 5 WHERE id = 1",
    )
    .bind(i64::MAX)
    .execute(app.engine.store.pool())
    .await
    .expect("pace stored");
    app.setup(&["/campaign send 1"]).await;

    // The restart after it resumes the campaign; nothing panics, and commands still answer.
    let app = app.restart().await;
    app.engine.recover(true).await.expect("recovery");
    app.settle().await;
    let list = app.admin("/campaign list").await;
    assert!(list.contains("Slow"), "{list}");
    // The gaps are capped, not skipped: both messages go, a day or so apart.
    assert_eq!(
        app.received("+15550001").len() + app.received("+15550002").len(),
        2
    );
}

/// A channel with a bug: it panics when asked to send to `wa:15550666`.
struct Buggy;

#[async_trait]
impl Channel for Buggy {
    fn kind(&self) -> ChannelKind {
        ChannelKind::WhatsApp
    }

    async fn send(&self, msg: &Outbound) -> Result<Sent, SendError> {
        assert!(msg.to != "wa:15550666", "a bug in a channel");
        Ok(Sent {
            provider_id: Some(format!("wamid.{}", msg.to)),
        })
    }
}

#[tokio::test]
async fn a_panic_in_one_campaign_pauses_it_and_the_others_go_on() {
    let db = TestDb::new().await;
    let config = Config {
        database_url: db.url.clone(),
        tier: herald::config::Tier::Unlimited,
        ..Config::default()
    };
    let clock = ManualClock::new(t0());
    let engine = herald::app::build_engine(config, Arc::new(clock), vec![Arc::new(Buggy)])
        .await
        .expect("engine builds");
    let admin = |line: &'static str| {
        let engine = engine.clone();
        async move { herald::commands::handlers::run(&engine, "console", line).await }
    };
    for line in [
        "/contact add +15550666 name=Bug labels=bug optin",
        "/contact add +15550001 name=Ann labels=fine optin",
        "/template add hello en utility Hello {{1}}",
        "/campaign new Broken",
        "/campaign audience 1 bug",
        "/campaign template 1 hello en {{name}}",
        "/campaign new Fine",
        "/campaign audience 2 fine",
        "/campaign template 2 hello en {{name}}",
        "/campaign send 1",
        "/campaign send 2",
    ] {
        admin(line).await;
    }

    engine.settle().await.expect("a panic is contained");

    let broken = engine.store.campaign(1).await.unwrap().unwrap();
    assert_eq!(broken.status, CampaignStatus::Paused);
    let reason = broken.status_reason.unwrap_or_default();
    assert!(reason.contains("a bug in a channel"), "{reason}");
    let fine = engine.store.campaign(2).await.unwrap().unwrap();
    assert_eq!(fine.status, CampaignStatus::Completed);
    assert!(admin("/campaign list").await.contains("Broken"));
}

#[tokio::test]
async fn schedules_that_cannot_happen_are_refused() {
    let app = ConsoleApp::start().await;
    app.setup(&[
        "/contact add +15550001 name=Ann labels=vip optin",
        "/campaign new Later",
        "/campaign audience 1 vip",
        "/campaign text 1 Hi",
    ])
    .await;
    let reply = app.admin("/campaign schedule 1 9999-01-01 09:00").await;
    assert!(reply.contains("more than"), "{reply}");
    // A run scheduled first, then an `until` long before it: nothing would ever be sent.
    app.setup(&["/campaign schedule 1 2027-01-01 09:00"]).await;
    let reply = app
        .admin("/campaign repeat 1 every 1d until 2001-01-01")
        .await;
    assert!(
        reply.contains("until day is before the first run"),
        "{reply}"
    );
    let reply = app
        .admin("/campaign repeat 1 every 1d until 2026-11-01")
        .await;
    assert!(
        reply.contains("until day is before the first run"),
        "{reply}"
    );
    let show = app.admin("/campaign show 1").await;
    assert!(!show.contains("every 1d"), "nothing changed: {show}");
}

#[tokio::test]
async fn a_huge_audience_is_refused_and_nothing_is_stored() {
    let app = ConsoleApp::start().await;
    app.setup(&[
        "/contact add +15550001 name=Ann labels=l0,l1 optin",
        "/campaign new Huge",
        "/campaign text 1 Hi",
    ])
    .await;
    let labels: Vec<String> = (0..5000).map(|i| format!("l{i}")).collect();
    let reply = app
        .admin(&format!("/campaign audience 1 {}", labels.join("+")))
        .await;
    assert!(reply.contains("too many labels"), "{reply}");
    let reply = app.admin("/campaign send 1").await;
    assert!(
        reply.contains("has no audience"),
        "nothing was stored: {reply}"
    );
    // The largest audience allowed works on the store, whichever backend it is.
    let reply = app
        .admin(&format!("/campaign audience 1 {}", labels[..100].join("+")))
        .await;
    assert!(reply.contains("(0 contact(s) now)"), "{reply}");
    let reply = app
        .admin(&format!("/campaign audience 1 {}", labels[..100].join(",")))
        .await;
    assert!(reply.contains("(1 contact(s) now)"), "{reply}");
}

#[tokio::test]
async fn full_width_and_bot_addressed_stop_words_opt_out() {
    let app = crate::support::run_app::RunApp::start().await;
    app.setup(&[
        "/contact add +15550001 name=Ann optin",
        "/contact add +15550002 name=Bob optin",
    ])
    .await;
    app.customer_says("15550001", "ＳＴＯＰ").await;
    app.customer_says("15550002", "/stop@herald_bot").await;
    for address in ["+15550001", "+15550002"] {
        let contact = app.contact(address).await;
        assert_eq!(
            contact.consent,
            herald::store::Consent::OptedOut,
            "{address}"
        );
    }
    app.stop().await;
}
