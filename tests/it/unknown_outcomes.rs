//! A send whose answer never came may have reached Meta: it is recorded `unknown` and never
//! re-sent on its own (SPEC section 3). A later status settles it; `/campaign retry <id>
//! unknown` sends it again on the admin's word.

use std::sync::Arc;
use std::time::Duration;

use herald::channels::whatsapp::{WhatsAppClient, WhatsAppConfig};
use herald::channels::{Channel, ChannelEvent, DeliveryStatus, StatusUpdate};
use herald::clock::{Clock, ManualClock};
use herald::engine::Engine;

use crate::support::console_app::t0;
use crate::support::db::TestDb;
use crate::support::fake_graph::FakeGraph;
use crate::support::herald_process::{config, PHONE_NUMBER_ID, TOKEN};

const ANN: &str = "15550001";
const BOB: &str = "15550002";

/// An engine whose WhatsApp client gives up on an answer after `timeout`.
async fn engine(
    db: &TestDb,
    fake: &FakeGraph,
    clock: &ManualClock,
    timeout: Duration,
) -> Arc<Engine> {
    let mut wa = WhatsAppConfig::new(&fake.url, PHONE_NUMBER_ID, TOKEN);
    wa.max_per_second = 1e6;
    wa.request_timeout = timeout;
    let client: Arc<dyn Channel> = Arc::new(WhatsAppClient::new(wa).expect("client"));
    herald::app::build_engine(config(&db.url), Arc::new(clock.clone()), vec![client])
        .await
        .expect("engine builds")
}

async fn admin(engine: &Engine, line: &str) -> String {
    herald::commands::handlers::run(engine, "console", line).await
}

/// Campaign 1: the `promo` marketing template to Ann and Bob, sending.
async fn send_promo_to_ann_and_bob(engine: &Engine) {
    for line in [
        "/contact add +15550001 name=Ann labels=vip optin",
        "/contact add +15550002 name=Bob labels=vip optin",
        "/template add promo en marketing Hi {{1}}",
        "/campaign new Promo",
        "/campaign audience 1 vip",
        "/campaign template 1 promo en {{name}}",
        "/campaign send 1",
    ] {
        admin(engine, line).await;
    }
}

async fn report(engine: &Engine) -> String {
    admin(engine, "/campaign report 1").await
}

fn line<'a>(report: &'a str, key: &str) -> &'a str {
    report
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or("0")
}

#[tokio::test]
async fn an_unanswered_send_is_unknown_sent_once_and_settled_by_its_status() {
    let db = TestDb::new().await;
    let fake = FakeGraph::start().await;
    let clock = ManualClock::new(t0());
    let engine = engine(&db, &fake, &clock, Duration::from_millis(300)).await;
    send_promo_to_ann_and_bob(&engine).await;
    // Meta takes both messages and never answers in time.
    fake.set_latency(Duration::from_secs(3));
    engine.settle().await.expect("settle");

    let r = report(&engine).await;
    assert_eq!(line(&r, "unknown"), "2", "{r}");
    assert_eq!(line(&r, "sent"), "0", "{r}");
    // Nothing is re-sent on its own, however long we wait.
    fake.set_latency(Duration::ZERO);
    clock.advance(chrono::Duration::hours(6));
    engine.settle().await.expect("settle");
    assert_eq!(fake.count_for(ANN), 1);
    assert_eq!(fake.count_for(BOB), 1);

    // Meta's status for Ann arrives, carrying the callback data herald attached.
    let ann = fake
        .requests()
        .into_iter()
        .find(|r| r.to() == Some(ANN))
        .expect("Ann's request");
    engine
        .handle_event(ChannelEvent::Status(StatusUpdate {
            provider_id: "wamid.late".into(),
            callback: ann.callback().map(str::to_string),
            status: DeliveryStatus::Delivered,
            at: clock.now(),
            recipient: Some(ANN.into()),
        }))
        .await
        .expect("status handled");
    let r = report(&engine).await;
    assert_eq!(line(&r, "delivered"), "1", "{r}");
    assert_eq!(line(&r, "unknown"), "1", "{r}");

    // Bob's stays unknown until the admin says to send it again: then exactly once more.
    let reply = admin(&engine, "/campaign retry 1 unknown").await;
    assert!(reply.contains("1 unknown recipient(s) queued"), "{reply}");
    engine.settle().await.expect("settle");
    assert_eq!(fake.count_for(BOB), 2);
    assert_eq!(fake.count_for(ANN), 1);
    let r = report(&engine).await;
    assert_eq!(line(&r, "unknown"), "0", "{r}");
    assert!(line(&r, "status").starts_with("completed"), "{r}");
    let reply = admin(&engine, "/campaign retry 1 unknown").await;
    assert!(reply.contains("no unknown recipient"), "{reply}");
}

#[tokio::test]
async fn retry_failed_sends_again_only_what_may_succeed() {
    let db = TestDb::new().await;
    let fake = FakeGraph::start().await;
    let clock = ManualClock::new(t0());
    let engine = engine(&db, &fake, &clock, Duration::from_secs(5)).await;
    send_promo_to_ann_and_bob(&engine).await;
    // Ann's number is undeliverable (final); Bob's sends meet server errors until the retries run out.
    fake.on_recipient(
        ANN,
        400,
        FakeGraph::meta_error(131026, "Message undeliverable", ""),
    );
    fake.on_recipient(
        BOB,
        500,
        FakeGraph::meta_error(1, "Service temporarily unavailable", ""),
    );
    for _ in 0..10 {
        engine.settle().await.expect("settle");
        clock.advance(chrono::Duration::minutes(10));
    }
    let r = report(&engine).await;
    assert_eq!(line(&r, "failed"), "2", "{r}");
    let bob_tries = fake.count_for(BOB);

    fake.clear_recipient(BOB);
    let reply = admin(&engine, "/campaign retry 1 failed").await;
    assert!(reply.contains("1 failed recipient(s) queued"), "{reply}");
    engine.settle().await.expect("settle");
    assert_eq!(fake.count_for(BOB), bob_tries + 1);
    assert_eq!(
        fake.count_for(ANN),
        1,
        "an undeliverable number is never retried"
    );
    let r = report(&engine).await;
    assert_eq!(line(&r, "sent"), "1", "{r}");
}
