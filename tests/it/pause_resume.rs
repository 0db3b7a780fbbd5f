//! Pause, resume, cancel and opt-outs while a campaign is sending; restarts mid-campaign.

use crate::support::console_app::ConsoleApp;

const PEOPLE: usize = 6;

fn address(i: usize) -> String {
    format!("+155500{i:02}")
}

/// Six opted-in contacts with open windows, and a slow campaign (1 msg/s: two per window).
async fn slow_campaign(app: &ConsoleApp) {
    for i in 0..PEOPLE {
        app.setup(&[&format!(
            "/contact add {} name=P{i} labels=crowd optin",
            address(i)
        )])
        .await;
        app.customer(&address(i), "hi").await;
    }
    app.setup(&[
        "/campaign new Slow",
        "/campaign audience 1 all",
        "/campaign text 1 News for {{name}}",
        "/campaign pace 1 rate=1",
        "/campaign send 1",
    ])
    .await;
}

fn total_received(app: &[&ConsoleApp], who: &str) -> usize {
    app.iter().map(|a| a.received(who).len()).sum()
}

#[tokio::test]
async fn pause_then_resume_sends_each_remaining_recipient_exactly_once() {
    let app = ConsoleApp::start().await;
    slow_campaign(&app).await;
    app.engine.dispatch_step().await.unwrap();
    let before: usize = (0..PEOPLE).map(|i| app.received(&address(i)).len()).sum();
    assert!(
        before > 0 && before < PEOPLE,
        "sent {before} before the pause"
    );

    let reply = app.admin("/campaign pause 1").await;
    assert!(reply.contains("paused"), "{reply}");
    app.settle().await;
    let during: usize = (0..PEOPLE).map(|i| app.received(&address(i)).len()).sum();
    assert_eq!(during, before, "nothing leaves while paused");
    assert_eq!(app.report(1).await["status"], "paused");

    let reply = app.admin("/campaign resume 1").await;
    assert!(reply.contains("resumed"), "{reply}");
    app.settle().await;
    for i in 0..PEOPLE {
        assert_eq!(app.received(&address(i)).len(), 1, "{}", address(i));
    }
    assert_eq!(app.report(1).await["status"], "completed");
    assert_eq!(app.count(1, "sent").await, PEOPLE as i64);
}

#[tokio::test]
async fn stop_mid_campaign_stops_sends_to_that_contact() {
    let app = ConsoleApp::start().await;
    slow_campaign(&app).await;
    app.engine.dispatch_step().await.unwrap();
    let last = address(PEOPLE - 1);
    assert!(app.received(&last).is_empty());
    app.customer(&last, "STOP").await;
    app.settle().await;
    let got = app.received(&last);
    assert_eq!(got.len(), 1, "only the confirmation: {got:?}");
    assert!(got[0].contains("unsubscribed"));
    assert_eq!(app.count(1, "skipped.opted_out").await, 1);
    assert_eq!(app.count(1, "sent").await, PEOPLE as i64 - 1);
}

#[tokio::test]
async fn stop_while_paused_skips_the_contact_at_once() {
    let app = ConsoleApp::start().await;
    slow_campaign(&app).await;
    app.engine.dispatch_step().await.unwrap();
    let reply = app.admin("/campaign pause 1").await;
    assert!(reply.contains("paused"), "{reply}");
    let last = address(PEOPLE - 1);
    app.customer(&last, "STOP").await;
    // Counted by the opt-out itself, while nothing sends.
    assert_eq!(app.count(1, "skipped.opted_out").await, 1);
    assert_eq!(app.report(1).await["status"], "paused");
    app.admin("/campaign resume 1").await;
    app.settle().await;
    assert_eq!(app.received(&last).len(), 1, "only the confirmation");
    assert_eq!(app.count(1, "sent").await, PEOPLE as i64 - 1);
}

#[tokio::test]
async fn cancel_ends_it_for_good() {
    let app = ConsoleApp::start().await;
    slow_campaign(&app).await;
    app.engine.dispatch_step().await.unwrap();
    let sent = app.count(1, "sent").await;
    let reply = app.admin("/campaign cancel 1").await;
    assert!(reply.contains("cancelled"), "{reply}");
    app.settle().await;
    assert_eq!(app.count(1, "sent").await, sent);
    assert_eq!(app.report(1).await["status"], "cancelled");
    let again = app.admin("/campaign resume 1").await;
    assert!(again.contains("cancelled"), "{again}");
}

#[tokio::test]
async fn a_restart_mid_campaign_sends_no_recipient_twice() {
    let first = ConsoleApp::start().await;
    slow_campaign(&first).await;
    first.engine.dispatch_step().await.unwrap();
    let second = first.restart().await;
    second.settle().await;
    for i in 0..PEOPLE {
        assert_eq!(
            total_received(&[&first, &second], &address(i)),
            1,
            "{}",
            address(i)
        );
    }
    assert_eq!(second.report(1).await["status"], "completed");
}

#[tokio::test]
async fn a_crash_while_sending_reports_unknown_instead_of_sending_again() {
    let first = ConsoleApp::start().await;
    slow_campaign(&first).await;
    // A process claims two recipients and marks them as possibly sent, then dies before it
    // records anything: whether the messages left is unknowable.
    let store = &first.engine.store;
    let claimed = store
        .claim(
            1,
            "dead-worker",
            first.clock.now_utc(),
            chrono::Duration::minutes(5),
            2,
        )
        .await
        .unwrap();
    let ids: Vec<i64> = claimed.iter().map(|c| c.recipient_id).collect();
    assert_eq!(store.mark_sending(&ids, "dead-worker").await.unwrap(), ids);

    // On SQLite the restart itself recovers (one process owns the file); on PostgreSQL other
    // processes may be alive, so only leases that ran out come back.
    let second = first.restart().await;
    second.clock.advance(chrono::Duration::minutes(6));
    second.engine.recover(false).await.unwrap();
    second.settle().await;
    for c in &claimed {
        assert!(
            second.received(&c.contact.address).is_empty(),
            "not re-sent"
        );
    }
    let report = second.report(1).await;
    assert_eq!(report["unknown"], "2");
    assert_eq!(report["sent"], (PEOPLE - 2).to_string());
    assert_eq!(report["status"], "completed");
}

use crate::support::console_app::ClockExt;
