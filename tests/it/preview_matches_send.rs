//! `/campaign preview` and `/campaign send` decide with one function: for an audience that mixes
//! every skip reason, the preview's `eligible` is exactly what the send reaches, and each skip
//! count it shows is what the report shows afterwards.

use std::collections::BTreeMap;

use reqwest::StatusCode;

use crate::support::fake_graph::webhooks;
use crate::support::run_app::{count, RunApp};

/// `reason: n` lines of a preview.
fn preview_counts(preview: &str) -> BTreeMap<String, i64> {
    preview
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?)))
        .collect()
}

const REASONS: [&str; 7] = [
    "opted_out",
    "no_consent",
    "outside_window",
    "marketing_stopped",
    "unreachable",
    "missing_variable",
    "no_channel",
];

/// Previews campaign `id`, sends it, and checks the preview against the report; returns the
/// skip counts the preview showed.
async fn preview_then_send(app: &RunApp, id: i64) -> BTreeMap<String, i64> {
    let preview = app.admin(&format!("/campaign preview {id}")).await;
    let shown = preview_counts(&preview);
    let eligible = shown["eligible"];
    app.setup(&[&format!("/campaign send {id}")]).await;
    app.wait_for_idle(id).await;
    let report = app.report(id).await;
    assert_eq!(count(&report, "sent"), eligible, "{preview}\n{report:?}");
    for reason in REASONS {
        assert_eq!(
            count(&report, &format!("skipped.{reason}")),
            shown[reason],
            "{reason}: {preview}\n{report:?}"
        );
    }
    shown
}

#[tokio::test]
async fn preview_eligible_is_what_the_send_reaches_for_every_skip_reason() {
    let app = RunApp::start().await;
    app.setup(&[
        "/contact add +15550001 name=Ann labels=mix optin attr.city=Lisbon",
        "/contact add +15550002 name=Bob labels=mix optin attr.city=Porto",
        "/contact add +15550003 name=Cy labels=mix attr.city=Faro",
        "/contact add +15550004 name=Dee labels=mix optin attr.city=Braga",
        "/contact add +15550005 name=Eve labels=mix optin",
        "/contact add +15550006 name=Fay labels=mix optin attr.city=Evora",
        "/contact add +15550007 name=Gus labels=mix optin attr.city=Beja",
        "/contact add tg:42 name=Tom labels=mix optin attr.city=Tomar",
        "/template add promo en marketing Hi {{1}}, a deal in {{2}}",
    ])
    .await;
    // Everyone but Dee writes in (their windows open); Bob writes STOP.
    for digits in ["15550001", "15550003", "15550005", "15550006", "15550007"] {
        app.customer_says(digits, "hello").await;
    }
    app.customer_says("15550002", "STOP").await;
    // Gus stops marketing messages in WhatsApp's own menu.
    let stop = webhooks::marketing_preference("15550007", "stop", app.now_secs());
    assert_eq!(app.post_webhook(&stop).await, StatusCode::OK);
    // Fay's number cannot receive messages (what a blocked bot or undeliverable number leaves).
    let fay = app.contact("+15550006").await;
    app.engine
        .store
        .set_unreachable(fay.id, Some("blocked"))
        .await
        .expect("store answers");

    // Free text: reaches Ann and Gus; the window, a variable, a channel and consent skip the rest.
    app.setup(&[
        "/campaign new Text",
        "/campaign audience 1 mix",
        "/campaign text 1 Hi {{name}}, see you in {{attr.city}}",
    ])
    .await;
    let text = preview_then_send(&app, 1).await;
    assert_eq!(text["eligible"], 2);

    // A marketing template: Dee's closed window no longer matters; Gus's stop does.
    app.setup(&[
        "/campaign new Template",
        "/campaign audience 2 mix",
        "/campaign template 2 promo en {{name}}|{{attr.city}}",
    ])
    .await;
    let template = preview_then_send(&app, 2).await;
    assert_eq!(template["eligible"], 2);

    // Between them the two campaigns met every skip reason.
    for reason in REASONS {
        assert!(
            text[reason] + template[reason] > 0,
            "no recipient was skipped as {reason}"
        );
    }
    app.stop().await;
}
