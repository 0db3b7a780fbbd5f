//! SPEC section 3's error taxonomy, as `herald run` lives it: the fake Graph API answers a send
//! with Meta's error JSON, and herald waits, retries, defers, fails the recipient, or pauses the
//! campaign and tells the admin on WhatsApp. Time moves only when a test advances the clock.

use chrono::Duration;
use reqwest::StatusCode;

use crate::support::fake_graph::{webhooks, FakeGraph};
use crate::support::run_app::{count, RunApp};

const ANN: &str = "15550001";
const BOB: &str = "15550002";
const CY: &str = "15550003";

/// Campaign 1: the `promo` marketing template to the opted-in VIPs among Ann, Bob and Cy
/// (`contacts` of them, in that order). Not sent yet.
async fn campaign(app: &RunApp, contacts: usize) {
    app.setup(&["/template add promo en marketing Hi {{1}}, 20% off this week"])
        .await;
    for (digits, name) in [(ANN, "Ann"), (BOB, "Bob"), (CY, "Cy")]
        .into_iter()
        .take(contacts)
    {
        app.setup(&[&format!(
            "/contact add +{digits} name={name} labels=vip optin"
        )])
        .await;
    }
    app.setup(&[
        "/campaign new Promo",
        "/campaign audience 1 vip",
        "/campaign template 1 promo en {{name}}",
    ])
    .await;
}

fn meta(code: i64, message: &str, details: &str) -> String {
    FakeGraph::meta_error(code, message, details)
}

#[tokio::test]
async fn a_rate_limit_waits_and_slows_down_without_failing_anyone() {
    let app = RunApp::start().await;
    campaign(&app, 3).await;
    // Cloud API throughput reached: Meta answers Ann's message with 130429.
    app.fake.on_recipient(
        ANN,
        429,
        meta(
            130429,
            "Rate limit hit",
            "Cloud API message throughput has been reached.",
        ),
    );
    app.setup(&["/campaign send 1"]).await;
    app.wait_for_campaign_sends(2).await;
    app.wait_for_idle(1).await;

    // Nobody failed: Ann waits in the queue while the others went out, later and slower.
    let report = app.report(1).await;
    assert_eq!(report["failed"], "0");
    assert_eq!(report["sent"], "2");
    assert_eq!(report["queued"], "1");
    let rows = app.engine.store.recipient_rows(1).await.unwrap();
    let sent_at = |address: &str| {
        rows.iter()
            .find(|r| r.address == address)
            .and_then(|r| r.sent_at)
            .unwrap()
    };
    // Meta said "slow down": Bob went out only after the default wait of a second, and the next
    // message came later than the campaign's 50 ms spacing.
    let bob = sent_at("wa:15550002");
    let cy = sent_at("wa:15550003");
    assert!(
        bob - crate::support::run_app::t0() >= Duration::seconds(1),
        "{bob}"
    );
    assert!(cy - bob > Duration::milliseconds(50), "{}", cy - bob);

    // Throughput is back: Ann's message goes out once, and counts no failed attempt.
    app.fake.clear_recipient(ANN);
    app.advance(Duration::seconds(2));
    app.wait_for_campaign_sends(3).await;
    app.wait_for_idle(1).await;
    assert_eq!(app.fake.accepted_for(ANN), 1);
    let report = app.report(1).await;
    assert_eq!(report["status"], "completed");
    assert_eq!(report["sent"], "3");
    assert_eq!(report["failed"], "0");
    app.stop().await;
}

#[tokio::test]
async fn a_bare_429_is_a_rate_limit_too() {
    let app = RunApp::start().await;
    campaign(&app, 1).await;
    // A proxy's 429, without Meta's JSON.
    app.fake.on_recipient(ANN, 429, "Too Many Requests");
    app.setup(&["/campaign send 1"]).await;
    app.wait_for_customer_requests(1).await;
    app.wait_for_idle(1).await;
    assert_eq!(app.report(1).await["failed"], "0");
    app.fake.clear_recipient(ANN);
    app.advance(Duration::seconds(2));
    app.wait_for_campaign_sends(1).await;
    assert_eq!(app.fake.accepted_for(ANN), 1);
    app.stop().await;
}

#[tokio::test]
async fn server_errors_are_retried_with_growing_backoff_then_fail() {
    let app = RunApp::start().await;
    campaign(&app, 1).await;
    app.fake
        .on_recipient(ANN, 503, "<html><body>Service Unavailable</body></html>");
    app.setup(&["/campaign send 1"]).await;
    app.wait_for_customer_requests(1).await;
    app.wait_for_idle(1).await;

    // Backoff doubles: 2 s, 4 s, 8 s, 16 s; no retry comes before its time.
    for (attempt, backoff) in [(2, 2), (3, 4), (4, 8), (5, 16)] {
        app.advance(Duration::seconds(backoff - 1));
        app.wait_for_idle(1).await;
        assert_eq!(
            app.fake.count_for(ANN),
            attempt - 1,
            "before retry {attempt}"
        );
        app.advance(Duration::seconds(1));
        app.wait_for_customer_requests(attempt).await;
        app.wait_for_idle(1).await;
    }
    // Five attempts (the default bound) and the recipient fails with the status and its reason.
    let report = app.report(1).await;
    assert_eq!(report["failed"], "1");
    assert!(
        report["failed.503"].contains("Service Unavailable"),
        "{report:?}"
    );
    assert_eq!(report["status"], "completed");
    app.advance(Duration::hours(1));
    app.wait_for_idle(1).await;
    assert_eq!(app.fake.count_for(ANN), 5);
    app.stop().await;
}

#[tokio::test]
async fn a_transient_error_then_success_delivers_exactly_once() {
    let app = RunApp::start().await;
    campaign(&app, 2).await;
    app.fake.on_recipient(
        ANN,
        500,
        meta(131000, "Something went wrong", "Unknown error"),
    );
    app.setup(&["/campaign send 1"]).await;
    app.wait_for_campaign_sends(1).await;
    app.wait_for_idle(1).await;
    assert_eq!(app.fake.accepted_for(BOB), 1);
    app.fake.clear_recipient(ANN);
    app.advance(Duration::seconds(2));
    app.wait_for_campaign_sends(2).await;
    app.wait_for_idle(1).await;
    assert_eq!(app.fake.count_for(ANN), 2);
    assert_eq!(app.fake.accepted_for(ANN), 1);
    let report = app.report(1).await;
    assert_eq!((count(&report, "sent"), count(&report, "failed")), (2, 0));
    app.stop().await;
}

#[tokio::test]
async fn the_per_user_marketing_limit_defers_for_hours_a_bounded_number_of_times() {
    let app = RunApp::start().await;
    campaign(&app, 2).await;
    let limited = meta(
        131049,
        "This message was not delivered to maintain healthy ecosystem engagement.",
        "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
    );
    app.fake.on_recipient(ANN, 400, limited.clone());
    app.fake.on_recipient(BOB, 400, limited);
    app.setup(&["/campaign send 1"]).await;
    app.wait_for_customer_requests(2).await;
    app.wait_for_idle(1).await;
    let report = app.report(1).await;
    assert_eq!(
        (report["failed"].as_str(), report["queued"].as_str()),
        ("0", "2")
    );

    // Hours later, not minutes.
    app.advance(Duration::hours(5));
    app.wait_for_idle(1).await;
    assert_eq!(app.customer_requests().len(), 2);

    // Ann's limit has passed by the next try; Bob's has not, try after try.
    app.fake.clear_recipient(ANN);
    app.advance(Duration::hours(1) + Duration::minutes(1));
    app.wait_for_campaign_sends(1).await;
    app.wait_for_idle(1).await;
    assert_eq!(app.fake.accepted_for(ANN), 1);
    for _ in 0..3 {
        app.advance(Duration::hours(6) + Duration::minutes(1));
        app.wait_for_idle(1).await;
    }
    assert_eq!(app.fake.count_for(BOB), 4, "four tries, then no more");
    let report = app.report(1).await;
    assert_eq!(report["sent"], "1");
    assert_eq!(report["failed"], "1");
    assert!(
        report["failed.131049"].contains("healthy ecosystem"),
        "{report:?}"
    );
    assert_eq!(report["status"], "completed");
    app.stop().await;
}

/// Meta mostly reports the per-user marketing limit after taking the message, in a `failed`
/// status. That defers the recipient just the same, even when the campaign completed meanwhile;
/// and once the recipient is sent again, late news of the first message moves nothing.
#[tokio::test]
async fn a_per_user_marketing_limit_reported_by_webhook_defers_the_recipient_too() {
    let app = RunApp::start().await;
    campaign(&app, 2).await;
    app.setup(&["/campaign send 1"]).await;
    app.wait_for_campaign_sends(2).await;
    app.wait_for_idle(1).await;
    assert_eq!(app.report(1).await["status"], "completed");

    let first = app.campaign_send_to(ANN);
    let first_wamid = first.wamid.clone().expect("the fake answered a wamid");
    let limited = webhooks::failed(
        &first_wamid,
        ANN,
        131049,
        "This message was not delivered to maintain healthy ecosystem engagement.",
        first.callback(),
        app.now_secs(),
    );
    assert_eq!(app.post_webhook(&limited).await, StatusCode::OK);
    let report = app.report(1).await;
    assert_eq!(
        (
            report["status"].as_str(),
            report["sent"].as_str(),
            report["queued"].as_str(),
            report["failed"].as_str()
        ),
        ("sending", "1", "1", "0"),
        "{report:?}"
    );
    let notice = app.wait_for_admin_text("campaign 1 is sending again").await;
    assert!(
        notice.contains("131049") && notice.contains("6 hours"),
        "{notice}"
    );

    // Hours later, not minutes.
    app.advance(Duration::hours(5));
    app.wait_for_idle(1).await;
    assert_eq!(app.fake.count_for(ANN), 1);
    app.advance(Duration::hours(1) + Duration::minutes(1));
    app.wait_for_campaign_sends(3).await;
    app.wait_for_idle(1).await;
    assert_eq!(app.fake.count_for(ANN), 2);

    let late = webhooks::status(
        &first_wamid,
        "delivered",
        ANN,
        first.callback(),
        app.now_secs(),
    );
    assert_eq!(app.post_webhook(&late).await, StatusCode::OK);
    let report = app.report(1).await;
    assert_eq!(
        (
            report["status"].as_str(),
            report["sent"].as_str(),
            report["delivered"].as_str(),
            report["failed"].as_str()
        ),
        ("completed", "2", "0", "0"),
        "{report:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn undeliverable_and_outside_window_fail_the_recipient_for_good() {
    let app = RunApp::start().await;
    campaign(&app, 3).await;
    app.fake.on_recipient(
        ANN,
        400,
        meta(131026, "Message undeliverable", "Message Undeliverable."),
    );
    app.fake.on_recipient(
        BOB,
        400,
        meta(
            131047,
            "Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
        ),
    );
    app.setup(&["/campaign send 1"]).await;
    app.wait_for_campaign_sends(1).await;
    app.wait_for_idle(1).await;
    let report = app.report(1).await;
    assert_eq!(report["status"], "completed");
    assert_eq!(report["sent"], "1");
    assert_eq!(report["failed"], "2");
    assert!(report["failed.131026"].contains("Message undeliverable"));
    assert!(report["failed.131047"].contains("Re-engagement message"));
    // Never retried.
    app.advance(Duration::days(2));
    app.wait_for_idle(1).await;
    assert_eq!(app.fake.count_for(ANN), 1);
    assert_eq!(app.fake.count_for(BOB), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_user_who_stopped_marketing_fails_and_is_skipped_by_later_marketing() {
    let app = RunApp::start().await;
    campaign(&app, 2).await;
    app.fake.on_recipient(
        ANN,
        400,
        meta(
            131050,
            "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business",
            "",
        ),
    );
    app.setup(&["/campaign send 1"]).await;
    app.wait_for_campaign_sends(1).await;
    app.wait_for_idle(1).await;
    let report = app.report(1).await;
    assert_eq!(report["failed"], "1");
    assert!(report["failed.131050"].contains("stop receiving marketing"));
    let ann = app.contact("wa:15550001").await;
    assert!(ann.marketing_stopped);

    app.setup(&[
        "/campaign new Promo 2",
        "/campaign audience 2 vip",
        "/campaign template 2 promo en {{name}}",
        "/campaign send 2",
    ])
    .await;
    app.wait_for_campaign_sends(2).await;
    app.wait_for_idle(2).await;
    let report = app.report(2).await;
    assert_eq!(report["skipped.marketing_stopped"], "1");
    assert_eq!(report["sent"], "1");
    assert_eq!(app.fake.count_for(ANN), 1, "no second attempt at Ann");
    app.stop().await;
}

#[tokio::test]
async fn account_wide_errors_pause_the_campaign_and_tell_the_admin_why() {
    let cases = [
        (131048, "Spam rate limit hit", "Message failed to send because there are restrictions on how many messages can be sent from this phone number."),
        (368, "Temporarily blocked for policies violations", ""),
        (131042, "Business eligibility payment issue", "Message failed to send because there were one or more errors related to your payment method."),
        (132000, "Number of parameters does not match the expected number of params", "body: number of localizable_params (1) does not match the expected number of params (2)"),
        (132001, "Template name does not exist in the translation", "template name (promo) does not exist in en"),
    ];
    for (code, message, details) in cases {
        let app = RunApp::start().await;
        campaign(&app, 2).await;
        app.fake
            .on_recipient(ANN, 400, meta(code, message, details));
        let admin_before = app.admin_texts().len();
        let status = app
            .post_webhook(&webhooks::text(
                crate::support::run_app::ADMIN,
                "Admin",
                "/campaign send 1",
                &app.wamid(),
                app.now_secs(),
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
        app.wait_until(&format!("the admin is told about {code}"), || {
            app.admin_texts()[admin_before..]
                .iter()
                .any(|t| t.starts_with("campaign 1 paused"))
        })
        .await;
        app.wait_for_idle(1).await;
        let notice = app.admin_texts()[admin_before..]
            .iter()
            .find(|t| t.starts_with("campaign 1 paused"))
            .cloned()
            .unwrap();
        assert!(
            notice.contains(&code.to_string()) && notice.contains(message),
            "{code}: {notice}"
        );
        assert!(notice.contains("/campaign resume 1"), "{notice}");

        // Nothing more went out, and nobody is failed for the account's problem.
        assert_eq!(app.fake.count_for(BOB), 0, "{code}");
        let report = app.report(1).await;
        assert_eq!(report["status"], "paused", "{code}");
        assert_eq!(report["failed"], "0", "{code}");
        assert_eq!(report["queued"], "2", "{code}");

        // Fixed: resuming sends to exactly the recipients not yet sent.
        app.fake.clear_recipient(ANN);
        let reply = app.admin("/campaign resume 1").await;
        assert!(reply.contains("resumed"), "{reply}");
        app.wait_for_campaign_sends(2).await;
        app.wait_for_idle(1).await;
        assert_eq!(app.fake.accepted_for(ANN), 1);
        assert_eq!(app.fake.accepted_for(BOB), 1);
        assert_eq!(app.report(1).await["status"], "completed");
        app.stop().await;
    }
}

#[tokio::test]
async fn failures_reported_in_status_webhooks_follow_the_same_taxonomy() {
    let app = RunApp::start().await;
    campaign(&app, 3).await;
    // Cy's message is held back by a rate limit, so the campaign is still sending when Meta
    // reports on the other two.
    app.fake.on_recipient(
        CY,
        429,
        meta(
            130429,
            "Rate limit hit",
            "Cloud API message throughput has been reached.",
        ),
    );
    app.setup(&["/campaign send 1"]).await;
    app.wait_for_campaign_sends(2).await;
    app.wait_for_idle(1).await;
    let (ann, bob) = (app.campaign_send_to(ANN), app.campaign_send_to(BOB));
    let webhooks_at = app.now_secs();
    let stopped = webhooks::failed(
        ann.wamid.as_deref().unwrap(),
        ANN,
        131050,
        "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business",
        ann.callback(),
        webhooks_at,
    );
    let spam = webhooks::failed(
        bob.wamid.as_deref().unwrap(),
        BOB,
        131048,
        "Spam rate limit hit",
        bob.callback(),
        webhooks_at,
    );
    for body in [&stopped, &spam, &stopped, &spam] {
        assert_eq!(app.post_webhook(body).await, StatusCode::OK);
    }

    // Ann stopped marketing: recorded on her contact.
    let contact = app.contact("wa:15550001").await;
    assert!(contact.marketing_stopped);
    // The spam limit paused the campaign, and the admin was told once, with the reason.
    let notices: Vec<String> = app
        .admin_texts()
        .into_iter()
        .filter(|t| t.starts_with("campaign 1 paused"))
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].contains("131048 Spam rate limit hit"),
        "{}",
        notices[0]
    );
    let report = app.report(1).await;
    assert_eq!(report["status"], "paused");
    assert_eq!(report["failed"], "2");
    assert!(report["failed.131050"].contains("stop receiving marketing"));
    assert!(report["failed.131048"].contains("Spam rate limit hit"));

    // Later, the admin resumes: Cy gets the message, once, and nobody else again.
    app.fake.clear_recipient(CY);
    app.admin("/campaign resume 1").await;
    app.advance(Duration::seconds(2));
    app.wait_for_campaign_sends(3).await;
    app.wait_for_idle(1).await;
    assert_eq!(app.fake.accepted_for(CY), 1);
    assert_eq!(app.fake.count_for(ANN), 1);
    assert_eq!(app.fake.count_for(BOB), 1);
    assert_eq!(app.report(1).await["status"], "completed");
    app.stop().await;
}
