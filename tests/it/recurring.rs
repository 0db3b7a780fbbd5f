//! Recurring campaigns: each occurrence is its own run, a contact gets each run once, and the
//! series ends at `until` or on cancel.

use chrono::Duration;

use crate::support::console_app::ConsoleApp;

async fn weekly_news(app: &ConsoleApp) {
    app.setup(&[
        "/contact add +15550001 name=Ann labels=news optin",
        "/contact add +15550002 name=Bob labels=news optin",
        "/template add digest en marketing Your digest, {{1}}",
        "/campaign new Digest",
        "/campaign audience 1 news",
        "/campaign template 1 digest en {{name}}",
    ])
    .await;
}

#[tokio::test]
async fn a_daily_campaign_sends_one_run_per_day_until_its_last_day() {
    let app = ConsoleApp::start().await;
    weekly_news(&app).await;
    // The suite's clock starts at 2026-11-22 10:00 UTC: 09:00 has passed, so the first run is
    // tomorrow.
    let reply = app
        .admin("/campaign repeat 1 every 1d at 09:00 until 2026-11-24")
        .await;
    assert!(reply.contains("2026-11-23 09:00"), "{reply}");
    app.settle().await;
    assert!(app.received("+15550001").is_empty());

    app.clock.advance(Duration::hours(23));
    app.settle().await;
    assert_eq!(app.received("+15550001"), vec!["Your digest, Ann"]);
    app.settle().await;
    assert_eq!(app.received("+15550001").len(), 1, "one run per occurrence");

    app.clock.advance(Duration::days(1));
    app.settle().await;
    assert_eq!(app.received("+15550001").len(), 2);
    assert_eq!(app.received("+15550002").len(), 2);

    app.clock.advance(Duration::days(1));
    app.settle().await;
    assert_eq!(
        app.received("+15550001").len(),
        2,
        "until 2026-11-24 means two runs"
    );
    let report = app.report(1).await;
    assert_eq!(report["status"], "completed");
    assert_eq!(report["sent"], "4");
    assert_eq!(report["targeted"], "4");
    let show = app.admin("/campaign show 1").await;
    assert!(show.contains("run #2"), "{show}");
}

#[tokio::test]
async fn cancelling_a_series_stops_future_runs() {
    let app = ConsoleApp::start().await;
    weekly_news(&app).await;
    app.admin("/campaign repeat 1 every 12h").await;
    app.settle().await;
    assert_eq!(
        app.received("+15550001").len(),
        1,
        "no `at`: the first run is now"
    );
    let reply = app.admin("/campaign cancel 1").await;
    assert!(reply.contains("cancelled"), "{reply}");
    app.clock.advance(Duration::days(2));
    app.settle().await;
    assert_eq!(app.received("+15550001").len(), 1);
}

#[tokio::test]
async fn pausing_a_series_skips_runs_until_resumed_then_sends_one() {
    let app = ConsoleApp::start().await;
    weekly_news(&app).await;
    app.admin("/campaign repeat 1 every 1d").await;
    app.settle().await;
    assert_eq!(app.received("+15550001").len(), 1);
    assert!(app.admin("/campaign pause 1").await.contains("paused"));
    app.clock.advance(Duration::days(3));
    app.settle().await;
    assert_eq!(app.received("+15550001").len(), 1);
    let reply = app.admin("/campaign resume 1").await;
    assert!(reply.contains("scheduled"), "{reply}");
    app.settle().await;
    assert_eq!(
        app.received("+15550001").len(),
        2,
        "one catch-up run, not three"
    );
}

#[tokio::test]
async fn a_bad_repeat_rule_changes_nothing() {
    let app = ConsoleApp::start().await;
    weekly_news(&app).await;
    for line in [
        "/campaign repeat 1 every 3y",
        "/campaign repeat 1 each 1d",
        "/campaign repeat 1 every 2h at 09:00",
        "/campaign repeat 1 every 1d until 2026-01-01",
    ] {
        let reply = app.admin(line).await;
        assert_eq!(reply.lines().count(), 1, "{line}: {reply}");
    }
    assert_eq!(app.report(1).await["status"], "draft");
}
