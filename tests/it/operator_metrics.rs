//! What an operator watches: `/metrics` after a campaign (histograms of send and webhook time,
//! channel errors by code and class, the queue, the tier, campaigns by status, the database) and
//! `/status`, the same state in one screen.

use std::collections::BTreeMap;

use chrono::Duration;

use crate::support::fake_graph::{webhooks, FakeGraph, RecordedRequest};
use crate::support::run_app::RunApp;

const ANN: &str = "15550001";
const BOB: &str = "15550002";
const EVE: &str = "15550005";

/// One sample per series: `name{label="v",...}` with the labels sorted, to its value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("a value in {line:?}"));
        let key = match series.split_once('{') {
            None => series.to_string(),
            Some((name, labels)) => {
                let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                labels.sort();
                format!("{name}{{{}}}", labels.join(","))
            }
        };
        out.insert(key, value);
    }
    out
}

fn value(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in /metrics: {:#?}", samples.keys()))
}

/// A finished campaign of four (one undeliverable), then, at night, a second one held by quiet
/// hours.
async fn day_then_night(app: &RunApp) {
    app.setup(&[
        "/template add spring_sale en_US marketing Hi {{1}}, {{2}} off everything this Friday",
        "/contact add +15550001 name=Ann labels=vip optin",
        "/contact add +15550002 name=Bob labels=vip optin",
        "/contact add +15550003 name=Cy labels=vip optin",
        "/contact add +15550005 name=Eve labels=vip optin",
        "/campaign new Spring sale",
        "/campaign audience 1 vip",
        "/campaign template 1 spring_sale en_US {{name}}|20%",
    ])
    .await;
    app.fake.on_recipient(
        EVE,
        400,
        FakeGraph::meta_error(131026, "Message undeliverable", "Message Undeliverable."),
    );
    app.setup(&["/campaign send 1"]).await;
    app.wait_for_campaign_sends(3).await;
    app.wait_for_idle(1).await;
    let ann: RecordedRequest = app.campaign_send_to(ANN);
    let delivered = webhooks::status(
        &ann.wamid.clone().expect("a wamid"),
        "delivered",
        ANN,
        ann.callback(),
        app.now_secs(),
    );
    assert_eq!(app.post_webhook(&delivered).await, 200);
    // Bob's message was accepted, then failed: Meta says so in a status webhook.
    let bob: RecordedRequest = app.campaign_send_to(BOB);
    let failed = webhooks::failed(
        &bob.wamid.clone().expect("a wamid"),
        BOB,
        131000,
        "Something went wrong",
        bob.callback(),
        app.now_secs(),
    );
    assert_eq!(app.post_webhook(&failed).await, 200);

    // 22:00: quiet hours (21:00-08:00) hold the second campaign until morning.
    app.advance(Duration::hours(12));
    app.setup(&[
        "/campaign new Night owls",
        "/campaign audience 2 vip",
        "/campaign template 2 spring_sale en_US {{name}}|10%",
        "/campaign send 2",
    ])
    .await;
    app.wait_for_idle(2).await;
}

#[tokio::test]
async fn metrics_after_a_campaign_show_timings_errors_queue_tier_and_campaigns() {
    let app = RunApp::start_with(&[("QUIET_HOURS", "21:00-08:00")], |_| {}).await;
    day_then_night(&app).await;

    let (status, text) = app.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(text.ends_with("# EOF\n"));
    let m = samples(&text);
    let wa = "{channel=\"whatsapp\"}";

    // The families kept from before.
    assert_eq!(value(&m, &format!("herald_messages_sent_total{wa}")), 3.0);
    assert_eq!(value(&m, &format!("herald_messages_failed_total{wa}")), 2.0);
    assert_eq!(value(&m, "herald_campaigns_sending"), 1.0);

    // Four sends were timed, each in some bucket.
    assert_eq!(
        value(&m, &format!("herald_send_duration_seconds_count{wa}")),
        4.0
    );
    assert_eq!(
        value(
            &m,
            "herald_send_duration_seconds_bucket{channel=\"whatsapp\",le=\"+Inf\"}"
        ),
        4.0
    );
    assert!(value(&m, &format!("herald_send_duration_seconds_sum{wa}")) > 0.0);
    assert!(text.contains("# TYPE herald_send_duration_seconds histogram"));

    // Every webhook herald took (the admin's commands, the status) was timed.
    let received = value(&m, &format!("herald_webhooks_received_total{wa}"));
    assert!(received >= 10.0, "{received}");
    assert_eq!(
        value(
            &m,
            &format!("herald_webhook_processing_duration_seconds_count{wa}")
        ),
        received
    );

    // The undeliverable number, by code and class; and the failure reported by a status
    // webhook after the send was accepted, counted the same way.
    assert_eq!(
        value(
            &m,
            "herald_channel_errors_total{channel=\"whatsapp\",class=\"permanent\",code=\"131026\"}"
        ),
        1.0
    );
    let failed_later: f64 = m
        .iter()
        .filter(|(k, _)| {
            k.starts_with("herald_channel_errors_total{") && k.contains("code=\"131000\"")
        })
        .map(|(_, v)| v)
        .sum();
    assert_eq!(failed_later, 1.0, "{:#?}", m.keys());

    // The queue: campaign 2's four recipients held by quiet hours, nothing else waiting.
    assert_eq!(value(&m, "herald_recipients_queued"), 0.0);
    assert_eq!(value(&m, "herald_recipients_in_flight"), 0.0);
    assert_eq!(
        value(&m, "herald_recipients_held{reason=\"quiet_hours\"}"),
        4.0
    );
    assert_eq!(
        value(&m, "herald_recipients_held{reason=\"tier_limit\"}"),
        0.0
    );

    // The tier: the four contacts reached outside their window by campaign 1, of 250.
    assert_eq!(value(&m, "herald_tier_used"), 4.0);
    assert_eq!(value(&m, "herald_tier_limit"), 250.0);

    // Campaigns by status, every status present.
    assert_eq!(value(&m, "herald_campaigns{status=\"completed\"}"), 1.0);
    assert_eq!(value(&m, "herald_campaigns{status=\"sending\"}"), 1.0);
    assert_eq!(value(&m, "herald_campaigns{status=\"draft\"}"), 0.0);

    // The database, and the oldest message id kept: the first command, 12 hours ago.
    assert!(value(&m, "herald_database_size_bytes") > 0.0);
    assert_eq!(value(&m, "herald_dedup_oldest_age_seconds"), 12.0 * 3600.0);
    app.stop().await;
}

#[tokio::test]
async fn status_shows_what_is_sending_held_and_why_in_one_screen() {
    let app = RunApp::start_with(&[("QUIET_HOURS", "21:00-08:00")], |_| {}).await;
    day_then_night(&app).await;

    let screen = app.admin("/status").await;
    let lines: Vec<&str> = screen.lines().collect();
    assert!(
        lines.contains(&"herald status at 2026-11-22 22:00 UTC"),
        "{screen}"
    );
    assert!(lines.contains(&"sending: 1"), "{screen}");
    assert!(
        lines.contains(
            &"  campaign 2 \"Night owls\": 0 queued, 0 in flight, held: quiet_hours 4 (next 2026-11-23 08:00 UTC)"
        ),
        "{screen}"
    );
    assert!(lines.contains(&"paused: none"), "{screen}");
    assert!(
        lines.contains(
            &"queue: 0 queued, 0 in flight, held: quiet_hours 4 (next 2026-11-23 08:00 UTC)"
        ),
        "{screen}"
    );
    assert!(
        lines.contains(&"tier: 4 of 250 contacts outside their window in the last 24 h"),
        "{screen}"
    );
    assert!(
        lines.contains(&"campaigns: draft 0, scheduled 0, sending 1, completed 1, paused 0, cancelled 0, failed 0"),
        "{screen}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("database: ")),
        "{screen}"
    );
    assert!(
        lines.contains(&"dedup: oldest message id seen 12h 0m ago (kept 7d 0h)"),
        "{screen}"
    );
    assert!(
        lines.iter().any(|l| l
            .starts_with("retention: oldest finished campaign with recipient rows finished 12h")),
        "{screen}"
    );
    // A typo changes nothing and says how to write it. (The dispatcher's progress notice about
    // the held campaign may reach the admin in the same moment, on a busy machine: the answer
    // is the last line.)
    let reply = app.admin("/status please").await;
    assert_eq!(
        reply.lines().last(),
        Some("unexpected \"please\". Usage: /status"),
        "{reply}"
    );
    assert!(
        reply
            .lines()
            .rev()
            .skip(1)
            .all(|l| l.starts_with("campaign 2 sending: ")),
        "{reply}"
    );
    app.stop().await;
}
