//! SPEC section 3's send rules, each checked at send time on the console (which keeps WhatsApp's
//! window and template rules).

use chrono::Duration;
use herald::channels::ChannelEvent;
use herald::config::{Config, QuietHours, Tier};

use crate::support::console_app::{ClockExt, ConsoleApp};
use crate::support::db;

async fn contacts(app: &ConsoleApp) {
    app.setup(&[
        "/contact add +15550001 name=Ann labels=vip optin",
        "/contact add +15550002 name=Bob labels=vip optin",
        "/contact add +15550003 name=Cy labels=vip",
    ])
    .await;
}

/// Campaign 1, "Big": the `promo` marketing template to the three contacts, set up with `extra`
/// commands and not sent yet.
async fn promo_campaign(app: &ConsoleApp, extra: &[&str]) {
    contacts(app).await;
    app.setup(&[
        "/template add promo en marketing Hello {{1}}",
        "/campaign new Big",
        "/campaign audience 1 vip",
        "/campaign template 1 promo en {{name}}",
    ])
    .await;
    app.setup(extra).await;
}

#[tokio::test]
async fn free_text_needs_an_open_window_but_a_template_does_not() {
    let app = ConsoleApp::start().await;
    contacts(&app).await;
    app.customer("+15550001", "hi").await;
    app.customer("+15550002", "hi").await;
    // Bob's window closes: a day and a minute pass, and only Ann writes again.
    app.clock
        .advance(Duration::hours(24) + Duration::minutes(1));
    app.customer("+15550001", "still here").await;
    app.setup(&[
        "/campaign new Text",
        "/campaign audience 1 vip",
        "/campaign text 1 Hi {{name}}",
        "/campaign send 1",
    ])
    .await;
    app.settle().await;
    assert_eq!(app.received("+15550001"), vec!["Hi Ann"]);
    assert!(app.received("+15550002").is_empty());
    let report = app.report(1).await;
    assert_eq!(report["skipped.outside_window"], "1");
    assert_eq!(report["skipped.no_consent"], "1");

    app.setup(&[
        "/template add promo en marketing Hello {{1}}, your code is {{2}}",
        "/campaign new Template",
        "/campaign audience 2 vip",
        "/campaign template 2 promo en {{name}}|SPRING",
        "/campaign send 2",
    ])
    .await;
    app.settle().await;
    assert_eq!(
        app.received("+15550002"),
        vec!["Hello Bob, your code is SPRING"]
    );
    assert_eq!(app.count(2, "sent").await, 2);
    assert_eq!(app.count(2, "skipped.no_consent").await, 1);
}

#[tokio::test]
async fn tier_budget_holds_the_rest_until_the_window_rolls() {
    let config = Config {
        tier: Tier::Limited(1),
        ..Config::default()
    };
    let app = ConsoleApp::with_config(config).await;
    promo_campaign(&app, &[]).await;
    let preview = app.admin("/campaign preview 1").await;
    assert!(preview.contains("exceed"), "{preview}");
    app.admin("/campaign send 1").await;
    app.settle().await;
    assert_eq!(app.count(1, "sent").await, 1);
    assert_eq!(app.count(1, "queued").await, 1, "held, not failed");
    assert_eq!(app.count(1, "failed").await, 0);

    app.clock
        .advance(Duration::hours(24) + Duration::minutes(1));
    app.settle().await;
    assert_eq!(app.count(1, "sent").await, 2);
    assert_eq!(app.report(1).await["status"], "completed");
    for who in ["+15550001", "+15550002"] {
        assert_eq!(app.received(who).len(), 1, "{who}");
    }
}

/// Quiet hours 21:00-08:00 and a template campaign to Ann (New York) and Bob (Lisbon), sent
/// with `extra` commands before `/campaign send 1`. The suite's clock starts at 10:00 UTC, which
/// is 05:00 in New York.
async fn morning_campaign(extra: &[&str]) -> ConsoleApp {
    let config = Config {
        quiet_hours: QuietHours::parse("21:00-08:00"),
        ..Config::default()
    };
    let app = ConsoleApp::with_config(config).await;
    app.setup(&[
        "/contact add +15550001 name=Ann labels=vip optin tz=America/New_York",
        "/contact add +15550002 name=Bob labels=vip optin tz=Europe/Lisbon",
        "/template add promo en utility Hello {{1}}",
        "/campaign new Morning",
        "/campaign audience 1 vip",
        "/campaign template 1 promo en {{name}}",
    ])
    .await;
    app.setup(extra).await;
    app.setup(&["/campaign send 1"]).await;
    app.settle().await;
    assert_eq!(app.received("+15550002"), vec!["Hello Bob"]);
    assert!(app.received("+15550001").is_empty(), "Ann is asleep");
    assert_eq!(app.count(1, "queued").await, 1);
    app
}

#[tokio::test]
async fn quiet_hours_hold_until_morning_in_the_contacts_zone() {
    let app = morning_campaign(&[]).await;
    // 08:00 in New York is 13:00 UTC.
    app.clock.advance(Duration::hours(3));
    app.settle().await;
    assert_eq!(app.received("+15550001"), vec!["Hello Ann"]);
}

/// Attempts each recipient has used, by address.
async fn attempts(app: &ConsoleApp, campaign: i64) -> Vec<(String, i64)> {
    use sqlx::Row;
    sqlx::query(
        "SELECT c.address, r.attempts FROM recipients r JOIN contacts c ON c.id = r.contact_id \
         WHERE r.campaign_id = $1 ORDER BY c.address",
    )
    .bind(campaign)
    .fetch_all(app.engine.store.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("address"), r.get("attempts")))
    .collect()
}

#[tokio::test]
async fn a_hold_of_an_unpaced_campaign_uses_no_attempt() {
    // Pacing off, rows are claimed straight into `sending` with their attempt counted; one that
    // the rules hold instead gets that attempt back.
    let app = morning_campaign(&["/campaign pace 1 rate=0"]).await;
    assert_eq!(
        attempts(&app, 1).await,
        vec![("wa:15550001".into(), 0), ("wa:15550002".into(), 1)]
    );
    app.clock.advance(Duration::hours(3));
    app.settle().await;
    assert_eq!(app.received("+15550001"), vec!["Hello Ann"]);
    assert_eq!(
        attempts(&app, 1).await,
        vec![("wa:15550001".into(), 1), ("wa:15550002".into(), 1)]
    );
}

#[tokio::test]
async fn a_missing_variable_is_named_in_the_preview_and_never_sent_blank() {
    let app = ConsoleApp::start().await;
    app.setup(&[
        "/contact add +15550001 name=Ann labels=vip optin attr.city=Lisbon",
        "/contact add +15550002 name=Bob labels=vip optin",
    ])
    .await;
    app.customer("+15550001", "hi").await;
    app.customer("+15550002", "hi").await;
    app.setup(&[
        "/campaign new Cities",
        "/campaign audience 1 vip",
        "/campaign text 1 See you in {{attr.city}}, {{name}}",
    ])
    .await;
    let preview = app.admin("/campaign preview 1").await;
    assert!(preview.contains("attr.city"), "{preview}");
    assert!(preview.contains("wa:15550002"), "{preview}");
    assert!(preview.contains("See you in Lisbon, Ann"), "{preview}");
    app.admin("/campaign send 1").await;
    app.settle().await;
    assert_eq!(app.received("+15550001"), vec!["See you in Lisbon, Ann"]);
    assert!(app.received("+15550002").is_empty());
    assert_eq!(app.count(1, "skipped.missing_variable").await, 1);
}

#[tokio::test]
async fn a_user_who_stopped_marketing_gets_no_marketing_template() {
    let app = ConsoleApp::start().await;
    contacts(&app).await;
    app.engine
        .handle_event(ChannelEvent::MarketingPreference {
            from: "+15550001".into(),
            stop: true,
            at: app.clock.now_utc(),
        })
        .await
        .unwrap();
    app.setup(&[
        "/template add promo en marketing Deal for {{1}}",
        "/campaign new Deals",
        "/campaign audience 1 vip",
        "/campaign template 1 promo en {{name}}",
        "/campaign send 1",
    ])
    .await;
    app.settle().await;
    assert!(app.received("+15550001").is_empty());
    assert_eq!(app.received("+15550002"), vec!["Deal for Bob"]);
    assert_eq!(app.count(1, "skipped.marketing_stopped").await, 1);
}

#[tokio::test]
async fn variants_are_chosen_once_per_contact_and_kept() {
    let app = ConsoleApp::start().await;
    let mut lines = Vec::new();
    for i in 0..40 {
        lines.push(format!(
            "/contact add +1555010{i:02} name=C{i} labels=ab optin"
        ));
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    app.setup(&refs).await;
    for i in 0..40 {
        app.customer(&format!("+1555010{i:02}"), "hi").await;
    }
    app.setup(&[
        "/campaign new AB",
        "/campaign audience 1 ab",
        "/campaign text 1 A for {{name}}",
        "/campaign variant 1 B for {{name}}",
        "/campaign send 1",
    ])
    .await;
    app.settle().await;
    let got: Vec<String> = (0..40)
        .flat_map(|i| app.received(&format!("+1555010{i:02}")))
        .collect();
    assert_eq!(got.len(), 40);
    let a = got.iter().filter(|t| t.starts_with("A for")).count();
    assert!((8..=32).contains(&a), "both variants used: {a} of 40 got A");
}

#[tokio::test]
async fn an_unpaced_chunk_stopped_by_an_error_before_sending_goes_back_to_the_queue() {
    // Pacing off, rows are claimed straight into `sending`. When the checks before sending fail,
    // none of the chunk left: it is queued again with its attempts given back, not left to run
    // out its lease and be reported `unknown`.
    let app = ConsoleApp::start().await;
    promo_campaign(&app, &["/campaign pace 1 rate=0"]).await;
    // Recording the send against the tier budget, the last check before it goes out, fails.
    db::inject_failure(app.engine.store.pool(), "INSERT", "tier_usage", None).await;
    app.admin("/campaign send 1").await;
    assert!(app.engine.settle().await.is_err(), "the failure surfaces");
    assert!(app.received("+15550001").is_empty());
    assert_eq!(app.count(1, "queued").await, 3);
    assert_eq!(
        attempts(&app, 1).await,
        vec![
            ("wa:15550001".into(), 0),
            ("wa:15550002".into(), 0),
            ("wa:15550003".into(), 0)
        ]
    );

    db::heal(app.engine.store.pool(), "tier_usage").await;
    app.settle().await;
    assert_eq!(app.received("+15550001"), vec!["Hello Ann"]);
    assert_eq!(app.received("+15550002"), vec!["Hello Bob"]);
    assert_eq!(app.count(1, "sent").await, 2);
    assert_eq!(app.count(1, "skipped").await, 1, "Cy never opted in");
    assert_eq!(app.count(1, "unknown").await, 0);
}
