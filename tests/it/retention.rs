//! Retention (README "Retention"): webhook de-duplication rows are kept 7 days, then pruned; the
//! recipient rows of campaigns finished more than `RETENTION_DAYS` ago are summarised into their
//! campaign and removed, with every report and export reading the same; consent history stays.
//! Time moves on the test clock and the maintenance step is called as `herald run` calls it.

use std::collections::BTreeMap;

use chrono::Duration;
use sqlx::Row;

use herald::engine::retention::MaintenanceOutcome;
use herald::engine::Engine;

use crate::support::console_app::ConsoleApp;
use crate::support::fake_graph::{webhooks, RecordedRequest};
use crate::support::run_app::RunApp;

const ANN: &str = "15550001";
const BOB: &str = "15550002";
const CY: &str = "15550003";
const DEE: &str = "15550004";
const EVE: &str = "15550005";

/// herald run whose background maintenance never comes round during a test: the test runs each
/// step itself.
async fn app_with(reports_dir: Option<&std::path::Path>) -> RunApp {
    let dir = reports_dir.map(|d| d.to_str().expect("UTF-8 path").to_string());
    RunApp::start_with(&[], move |c| {
        c.maintenance_every = std::time::Duration::from_secs(24 * 3600);
        if let Some(dir) = dir {
            c.reports_dir = dir;
        }
    })
    .await
}

async fn scalar(app: &RunApp, sql: &str, bind: i64) -> i64 {
    sqlx::query(sql)
        .bind(bind)
        .fetch_one(app.engine.store.pool())
        .await
        .expect("query answers")
        .try_get::<i64, _>(0)
        .expect("a number")
}

/// Runs maintenance steps until one says nothing is left.
async fn maintain(engine: &Engine) -> MaintenanceOutcome {
    let mut total = MaintenanceOutcome::default();
    loop {
        let out = engine.maintenance_step().await.expect("maintenance runs");
        total.seen_pruned += out.seen_pruned;
        total.tier_pruned += out.tier_pruned;
        total.campaigns_summarised += out.campaigns_summarised;
        total.recipients_removed += out.recipients_removed;
        if !out.more {
            return total;
        }
    }
}

/// What herald answered the customer `to` (digits): opt-out confirmations and the like.
fn answers_to(app: &RunApp, to: &str) -> Vec<RecordedRequest> {
    app.fake
        .accepted()
        .into_iter()
        .filter(|r| r.to() == Some(to) && r.callback().is_none())
        .collect()
}

#[tokio::test]
async fn thirty_days_of_inbound_traffic_keep_seven_days_of_dedup_rows() {
    let app = app_with(None).await;
    // Each simulated day: eight messages (one every three hours) from ordinary customers and
    // one STOP from that day's own customer, whose confirmation shows whether a redelivery was
    // processed.
    let mut days: Vec<(String, String)> = Vec::new(); // (the STOP's sender, its body)
    for day in 0..30 {
        for slot in 0..8 {
            let from = format!("1555100{:04}", slot);
            let at = app.now_secs() + slot * 3 * 3600;
            let hi = webhooks::text(&from, "Customer", "hi", &app.wamid(), at);
            assert_eq!(app.post_webhook(&hi).await, 200);
        }
        let stopper = format!("1555200{:04}", day);
        let stop = webhooks::text(&stopper, "Stopper", "STOP", &app.wamid(), app.now_secs());
        assert_eq!(app.post_webhook(&stop).await, 200);
        days.push((stopper, stop));
        app.advance(Duration::days(1));
        maintain(&app.engine).await;
    }
    let now = app.now();
    let cutoff = now - Duration::days(7);
    let stale = scalar(
        &app,
        "SELECT COUNT(*) FROM inbound_seen WHERE at < $1",
        cutoff.timestamp_millis(),
    )
    .await;
    assert_eq!(stale, 0, "no de-duplication row older than 7 days");
    let kept = scalar(&app, "SELECT COUNT(*) FROM inbound_seen WHERE at >= $1", 0).await;
    // Days 23..=29 are within the last 7 days: 7 days of 9 messages each.
    assert_eq!(kept, 7 * 9, "the last 7 days are kept");

    // A redelivery from 6 days ago is still recognised: no second confirmation.
    let (stopper, body) = &days[24];
    assert_eq!(answers_to(&app, stopper).len(), 1);
    assert_eq!(app.post_webhook(body).await, 200);
    assert_eq!(
        answers_to(&app, stopper).len(),
        1,
        "the redelivery was recognised"
    );

    // Consent history is kept forever: the first day's opt-out is still on record.
    let first = app.contact(&format!("wa:{}", days[0].0)).await;
    assert_eq!(first.consent, herald::store::Consent::OptedOut);
    let history = app
        .engine
        .store
        .consent_history(first.id)
        .await
        .expect("history reads");
    assert_eq!(history.len(), 1, "{history:?}");

    let status = app.admin("/status").await;
    assert!(
        status.contains("dedup: oldest message id seen 7d 0h ago (kept 7d 0h)"),
        "{status}"
    );
    app.stop().await;
}

/// Everything an admin can read about campaign 1: the report, show, the list line, and the CSV
/// and chart exports (file bytes).
async fn everything_about_campaign_1(app: &RunApp) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::new();
    seen.insert("report".into(), app.admin("/campaign report 1").await);
    seen.insert("show".into(), app.admin("/campaign show 1").await);
    seen.insert("list".into(), app.admin("/campaign list").await);
    seen.insert("report of 2".into(), app.admin("/campaign report 2").await);
    let reply = app.admin("/campaign report 1 csv").await;
    assert!(reply.contains("campaign-1.csv"), "{reply}");
    // An admin on WhatsApp gets the file itself: the bytes herald uploaded.
    let csv = app
        .fake
        .uploads()
        .last()
        .expect("the CSV was uploaded")
        .bytes
        .clone();
    seen.insert("csv".into(), String::from_utf8(csv).expect("UTF-8"));
    let reply = app.admin("/campaign report 1 chart").await;
    assert!(reply.contains("campaign-1.png"), "{reply}");
    let png = app
        .fake
        .uploads()
        .last()
        .expect("the chart was uploaded")
        .bytes
        .clone();
    seen.insert("chart".into(), hex::encode(png));
    seen
}

#[tokio::test]
async fn finished_campaigns_read_the_same_after_their_rows_are_summarised() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = app_with(Some(dir.path())).await;
    app.setup(&[
        "/contact add +15550001 name=Ann labels=vip optin",
        "/contact add +15550002 name=Bob labels=vip optin",
        "/contact add +15550003 name=Cy labels=vip optin",
        "/contact add +15550004 name=Dee labels=vip",
        "/contact add +15550005 name=Eve labels=vip optin",
        "/contact add +15550006 name=Fay labels=vip optin",
    ])
    .await;
    let at = app.now_secs();
    for who in [ANN, BOB, CY, DEE, EVE] {
        app.post_webhook(&webhooks::text(who, "C", "hi", &app.wamid(), at))
            .await;
    }
    // Fay opts out; Dee never opted in; Eve's number is undeliverable.
    app.post_webhook(&webhooks::text("15550006", "Fay", "STOP", &app.wamid(), at))
        .await;
    app.fake.on_recipient(
        EVE,
        400,
        crate::support::fake_graph::FakeGraph::meta_error(
            131026,
            "Message undeliverable",
            "Message Undeliverable.",
        ),
    );
    app.setup(&[
        "/campaign new Spring sale",
        "/campaign audience 1 vip",
        "/campaign text 1 Hello {{name}}, 20% off today",
        "/campaign variant 1 Hi {{name}}, spring is here: 20% off",
        "/on 1 read label+=readers",
        "/campaign buttons 1 Yes|No",
        "/campaign send 1",
    ])
    .await;
    app.wait_for_campaign_sends(3).await;
    app.wait_for_idle(1).await;
    let (ann, bob) = (app.campaign_send_to(ANN), app.campaign_send_to(BOB));
    let wamid = |r: &RecordedRequest| r.wamid.clone().expect("a wamid");
    let t = app.now_secs();
    let statuses = webhooks::batch(&[
        webhooks::status(&wamid(&ann), "delivered", ANN, ann.callback(), t + 2),
        webhooks::status(&wamid(&ann), "read", ANN, ann.callback(), t + 9),
        webhooks::status(&wamid(&bob), "delivered", BOB, bob.callback(), t + 3),
    ]);
    assert_eq!(app.post_webhook(&statuses).await, 200);
    // What Meta billed for Ann's message rides on a status, as Meta sends it.
    let mut priced: serde_json::Value = serde_json::from_str(&webhooks::status(
        &wamid(&ann),
        "read",
        ANN,
        ann.callback(),
        t + 9,
    ))
    .expect("a status webhook");
    priced["entry"][0]["changes"][0]["value"]["statuses"][0]["pricing"] = serde_json::json!({
        "billable": true, "pricing_model": "PMP", "category": "marketing", "type": "regular"
    });
    assert_eq!(app.post_webhook(&priced.to_string()).await, 200);
    app.advance(Duration::minutes(5));
    app.customer_says(BOB, "thanks!").await;
    // Cy taps a button under the message.
    let tap = webhooks::interactive_reply(
        CY,
        "Cy",
        "button_reply",
        "Yes",
        "Yes",
        &app.wamid(),
        app.now_secs(),
    );
    assert_eq!(app.post_webhook(&tap).await, 200);
    // A second campaign, still a draft: nothing of it may change.
    app.setup(&["/campaign new Summer", "/campaign audience 2 vip"])
        .await;

    let before = everything_about_campaign_1(&app).await;
    for key in [
        "sent: 3",
        "delivered: 2",
        "read: 1",
        "replied: 2",
        "failed: 1",
        "skipped: 2",
        "billed.marketing: 1",
        "clicked.Yes: 1",
        "clicked.No: 0",
    ] {
        assert!(
            before["report"].contains(key),
            "{key} in {}",
            before["report"]
        );
    }

    // 180 days later nothing is summarised yet; a day after that, campaign 1 is.
    app.advance(Duration::days(180) - Duration::minutes(10));
    let early = maintain(&app.engine).await;
    assert_eq!(early.campaigns_summarised, 0);
    app.advance(Duration::days(1));
    let rows_before = scalar(
        &app,
        "SELECT COUNT(*) FROM recipients WHERE campaign_id = $1",
        1,
    )
    .await;
    assert_eq!(rows_before, 6);
    let done = maintain(&app.engine).await;
    assert_eq!(done.campaigns_summarised, 1);
    assert_eq!(done.recipients_removed, 6);
    let rows_after = scalar(
        &app,
        "SELECT COUNT(*) FROM recipients WHERE campaign_id = $1",
        1,
    )
    .await;
    assert_eq!(rows_after, 0, "the recipient rows are gone");

    let after = everything_about_campaign_1(&app).await;
    for (key, was) in &before {
        assert_eq!(&after[key], was, "{key} reads the same after summarising");
    }
    // A second pass finds nothing more to do.
    let again = maintain(&app.engine).await;
    assert_eq!(
        (again.campaigns_summarised, again.recipients_removed),
        (0, 0)
    );
    let status = app.admin("/status").await;
    assert!(
        status.contains("1 campaign(s) summarised (6 rows)"),
        "{status}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_recurring_campaign_sums_summarised_and_live_runs() {
    let app = ConsoleApp::start().await;
    app.setup(&[
        "/contact add +15550001 name=Ann labels=news optin",
        "/contact add +15550002 name=Bob labels=news optin",
        "/template add digest en marketing Your digest, {{1}}",
        "/campaign new Digest",
        "/campaign audience 1 news",
        "/campaign template 1 digest en {{name}}",
        "/campaign repeat 1 every 100d",
    ])
    .await;
    app.settle().await;
    // Runs 100 days apart until three have gone out: the first then finished 200 days ago.
    while app.received("+15550001").len() < 3 {
        app.clock.advance(Duration::days(100));
        app.settle().await;
    }
    let before = app.admin("/campaign report 1").await;
    assert!(before.contains("sent: 6"), "{before}");
    let show = app.admin("/campaign show 1").await;
    let done = maintain(&app.engine).await;
    assert_eq!(
        done.campaigns_summarised, 1,
        "only the run finished over 180 days ago"
    );
    assert_eq!(done.recipients_removed, 2);
    assert_eq!(app.admin("/campaign report 1").await, before);
    assert_eq!(app.admin("/campaign show 1").await, show);
}
