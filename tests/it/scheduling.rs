//! Scheduled campaigns start when the clock reaches their time, in the admin's or a given zone.

use chrono::Duration;

use crate::support::console_app::ConsoleApp;

async fn ready(app: &ConsoleApp) {
    app.setup(&[
        "/contact add +15550001 name=Ann labels=vip optin",
        "/template add hello en utility Hello {{1}}",
        "/campaign new Later",
        "/campaign audience 1 vip",
        "/campaign template 1 hello en {{name}}",
    ])
    .await;
}

#[tokio::test]
async fn a_scheduled_campaign_starts_when_the_clock_reaches_its_time() {
    let app = ConsoleApp::start().await;
    ready(&app).await;
    // The suite's clock starts at 2026-11-22 10:00 UTC.
    let reply = app.admin("/campaign schedule 1 2026-11-22 12:30").await;
    assert!(reply.contains("scheduled"), "{reply}");
    app.settle().await;
    assert!(app.received("+15550001").is_empty());
    assert_eq!(app.report(1).await["status"], "scheduled");

    app.clock.advance(Duration::minutes(149));
    app.settle().await;
    assert!(app.received("+15550001").is_empty(), "a minute early");

    app.clock.advance(Duration::minutes(1));
    app.settle().await;
    assert_eq!(app.received("+15550001"), vec!["Hello Ann"]);
    assert_eq!(app.report(1).await["status"], "completed");
}

#[tokio::test]
async fn a_zone_after_the_time_is_honoured() {
    let app = ConsoleApp::start().await;
    ready(&app).await;
    // 12:00 in Sao Paulo (UTC-3) is 15:00 UTC.
    app.admin("/campaign schedule 1 2026-11-22 12:00 America/Sao_Paulo")
        .await;
    app.clock
        .advance(Duration::hours(4) + Duration::minutes(59));
    app.settle().await;
    assert!(app.received("+15550001").is_empty());
    app.clock.advance(Duration::minutes(1));
    app.settle().await;
    assert_eq!(app.received("+15550001").len(), 1);
}

#[tokio::test]
async fn a_time_in_the_past_is_refused() {
    let app = ConsoleApp::start().await;
    ready(&app).await;
    let reply = app.admin("/campaign schedule 1 2026-11-21 09:00").await;
    assert!(reply.contains("past"), "{reply}");
    assert_eq!(app.report(1).await["status"], "draft");
}

#[tokio::test]
async fn a_scheduled_campaign_stays_scheduled_across_restarts() {
    let app = ConsoleApp::start().await;
    ready(&app).await;
    app.admin("/campaign schedule 1 2026-11-22 11:00").await;
    let later = app.restart().await;
    later.clock.advance(Duration::hours(1));
    later.settle().await;
    assert_eq!(later.received("+15550001"), vec!["Hello Ann"]);
}
