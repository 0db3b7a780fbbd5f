//! `herald run` serving a WhatsApp Business number: an admin and customers talk to it only
//! through signed webhooks, as Meta delivers them, and everything herald sends goes to a fake
//! Graph API on 127.0.0.1.

use std::time::Instant;

use chrono::Duration;
use herald::channels::whatsapp::{parse_webhook, sign};
use herald::channels::ChannelEvent;
use herald::store::{CampaignStatus, Consent};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::db;
use crate::support::fake_graph::webhooks;
use crate::support::run_app::{
    count, RunApp, ADMIN, APP_SECRET, PHONE_NUMBER_ID, TOKEN, VERIFY_TOKEN,
};

const ANN: &str = "15550001";
const BOB: &str = "15550002";
const CY: &str = "15550003";

/// The spring sale as the admin types it on WhatsApp: a marketing template with two
/// parameters, three opted-in VIPs, campaign 1 on the template.
async fn spring_sale_setup(app: &RunApp) {
    app.setup(&[
        "/template add spring_sale en_US marketing Hi {{1}}, {{2}} off everything this Friday",
        "/contact add +15550001 name=Ann labels=vip optin",
        "/contact add +15550002 name=Bob labels=vip optin",
        "/contact add +15550003 name=Cy labels=vip optin",
    ])
    .await;
    let reply = app.admin("/campaign new Spring sale").await;
    assert_eq!(reply, "campaign 1 created (draft)");
    app.setup(&[
        "/campaign audience 1 vip",
        "/campaign template 1 spring_sale en_US {{name}}|20%",
    ])
    .await;
}

/// The body of an image message without caption, as Meta sends it.
fn image_message(from: &str, wamid: &str, at: i64) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "1122334455667"},
            "contacts": [{"profile": {"name": "Customer"}, "wa_id": from}],
            "messages": [{
                "from": from, "id": wamid, "timestamp": at.to_string(), "type": "image",
                "image": {"mime_type": "image/jpeg", "sha256": "Jt8LQ5pX1n0=", "id": "1479537139650973"}
            }]
        }}]}]
    })
    .to_string()
}

#[tokio::test]
async fn admin_drives_a_template_campaign_to_three_contacts_through_signed_webhooks() {
    let app = RunApp::start().await;
    spring_sale_setup(&app).await;
    let reply = app.admin("/campaign send 1").await;
    assert_eq!(reply, "campaign 1 sending to 3 recipient(s)");

    // Three well-formed POSTs with the right components reach the Graph API.
    app.wait_for_campaign_sends(3).await;
    app.wait_for_idle(1).await;
    let sends = app.campaign_sends();
    assert_eq!(sends.len(), 3, "{sends:?}");
    for (to, name) in [(ANN, "Ann"), (BOB, "Bob"), (CY, "Cy")] {
        let send = app.campaign_send_to(to);
        assert_eq!(send.path, "/1122334455667/messages");
        assert_eq!(
            send.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        let callback = send.callback().expect("callback data").to_string();
        assert!(
            callback.starts_with('r') && callback.ends_with(":c1"),
            "{callback}"
        );
        assert_eq!(
            send.body,
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "template",
                "template": {
                    "name": "spring_sale",
                    "language": {"code": "en_US"},
                    "components": [{"type": "body", "parameters": [
                        {"type": "text", "text": name},
                        {"type": "text", "text": "20%"}
                    ]}]
                },
                "biz_opaque_callback_data": callback
            })
        );
    }
    // Every message sent: the campaign completes and the admin is told on WhatsApp.
    let notice = app.wait_for_admin_text("campaign 1 completed").await;
    assert_eq!(
        notice,
        "campaign 1 completed: 3 sent, 0 failed, 0 skipped of 3 targeted"
    );

    // Meta reports back: delivered, read, duplicated, out of order, and one failure.
    let ann = app.campaign_send_to(ANN);
    let bob = app.campaign_send_to(BOB);
    let cy = app.campaign_send_to(CY);
    let at = app.now_secs();
    let status = |r: &crate::support::fake_graph::RecordedRequest, s: &str, at: i64| {
        webhooks::status(
            r.wamid.as_deref().unwrap(),
            s,
            r.to().unwrap(),
            r.callback(),
            at,
        )
    };
    let bodies = [
        status(&ann, "sent", at),
        status(&ann, "delivered", at + 1),
        status(&ann, "read", at + 5),
        status(&ann, "read", at + 5),      // duplicated
        status(&ann, "delivered", at + 1), // late: must not undo the read
        status(&bob, "read", at + 7),      // read arrives before delivered
        status(&bob, "delivered", at + 2),
        status(&bob, "sent", at),
        status(&cy, "sent", at),
        webhooks::failed(
            cy.wamid.as_deref().unwrap(),
            CY,
            131026,
            "Message undeliverable",
            cy.callback(),
            at + 3,
        ),
        status(&cy, "delivered", at + 4), // a failure is final
    ];
    for body in &bodies {
        assert_eq!(app.post_webhook(body).await, StatusCode::OK);
    }

    // The admin asks for the report on WhatsApp and gets it as a text.
    let report = app.report(1).await;
    assert_eq!(report["status"], "completed");
    assert_eq!(report["targeted"], "3");
    assert_eq!(report["sent"], "2");
    assert_eq!(report["delivered"], "2");
    assert_eq!(report["read"], "2");
    assert_eq!(report["failed"], "1");
    assert_eq!(report["skipped"], "0");
    assert_eq!(report["replied"], "0");
    let failure = &report["failed.131026"];
    assert!(
        failure.starts_with("1 ") && failure.contains("Message undeliverable"),
        "{failure}"
    );
    assert_eq!(report["sent.marketing"], "2");

    // Replies of any type count: a text from Ann, a captionless image from Bob.
    app.customer_says(ANN, "Thanks, see you Friday!").await;
    let image = image_message(BOB, &app.wamid(), app.now_secs());
    assert_eq!(app.post_webhook(&image).await, StatusCode::OK);
    let report = app.report(1).await;
    assert_eq!(report["replied"], "2");
    // Ordinary replies get no automatic answer.
    assert_eq!(app.fake.accepted_for(ANN), 1);
    assert_eq!(app.fake.accepted_for(BOB), 1);

    app.stop().await;
}

#[tokio::test]
async fn forged_or_unsigned_webhooks_get_401_and_change_nothing() {
    let app = RunApp::start().await;
    app.setup(&["/contact add +15550001 name=Ann labels=vip optin"])
        .await;
    let admin_texts = app.admin_texts().len();

    let command = webhooks::text(ADMIN, "Admin", "/campaign new Forged", "wamid.f1", 1);
    let stop = webhooks::text(ANN, "Ann", "STOP", "wamid.f2", app.now_secs());
    let forged = sign(b"not-the-app-secret", command.as_bytes());
    let other_body = sign(APP_SECRET.as_bytes(), b"{}");
    let truncated = &sign(APP_SECRET.as_bytes(), command.as_bytes())[..40];
    for signature in [
        None,
        Some(forged.as_str()),
        Some(other_body.as_str()),
        Some(truncated),
        Some("sha256="),
        Some("garbage"),
    ] {
        assert_eq!(
            app.post_with_signature(&command, signature).await,
            StatusCode::UNAUTHORIZED,
            "signature {signature:?}"
        );
        assert_eq!(
            app.post_with_signature(&stop, signature).await,
            StatusCode::UNAUTHORIZED,
            "signature {signature:?}"
        );
    }
    assert_eq!(app.post_unsigned(&stop).await, StatusCode::UNAUTHORIZED);

    // Nothing happened: no campaign, Ann still opted in, nobody was written to.
    assert!(app.engine.store.campaigns(None).await.unwrap().is_empty());
    let ann = app.contact("wa:15550001").await;
    assert_eq!(ann.consent, Consent::OptedIn);
    assert_eq!(ann.last_inbound_at, None);
    assert_eq!(app.admin_texts().len(), admin_texts);
    assert_eq!(app.fake.count_for(ANN), 0);

    // The very same bodies, signed by Meta, go through; the ids were never marked as seen.
    assert_eq!(app.post_webhook(&command).await, StatusCode::OK);
    assert_eq!(app.engine.store.campaigns(None).await.unwrap().len(), 1);
    assert_eq!(app.post_webhook(&stop).await, StatusCode::OK);
    let ann = app.contact("wa:15550001").await;
    assert_eq!(ann.consent, Consent::OptedOut);

    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains(
            "herald_webhooks_rejected_total{channel=\"whatsapp\",reason=\"signature\"} 13"
        ),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_an_app_secret_every_post_is_refused() {
    let app = RunApp::start_with(&[("WHATSAPP_APP_SECRET", "")], |_| {}).await;
    let command = webhooks::text(ADMIN, "Admin", "/campaign new X", "wamid.n1", 1);
    let signed_with_empty = sign(b"", command.as_bytes());
    assert_eq!(app.post_webhook(&command).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.post_with_signature(&command, Some(&signed_with_empty))
            .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.post_unsigned(&command).await, StatusCode::UNAUTHORIZED);
    assert!(app.engine.store.campaigns(None).await.unwrap().is_empty());
    assert!(app.fake.requests().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn the_handshake_echoes_the_challenge_only_for_the_right_verify_token() {
    let app = RunApp::start().await;
    let url = |mode: &str, token: &str, challenge: &str| {
        format!(
            "/webhooks/whatsapp?hub.mode={mode}&hub.verify_token={token}&hub.challenge={challenge}"
        )
    };
    let (status, body) = app.get(&url("subscribe", VERIFY_TOKEN, "1158201444")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "1158201444"));

    for path in [
        url("subscribe", "wrong-token", "1158201444"),
        url("unsubscribe", VERIFY_TOKEN, "1158201444"),
        url("subscribe", "", "1158201444"),
        "/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=1158201444".to_string(),
        format!("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}"),
        "/webhooks/whatsapp".to_string(),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(!body.contains("1158201444"), "{path}: {body}");
    }
    app.stop().await;

    // No verify token configured: nobody can subscribe, not even with an empty one.
    let app = RunApp::start_with(&[("WHATSAPP_VERIFY_TOKEN", "")], |_| {}).await;
    let (status, _) = app.get(&url("subscribe", "", "42")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.stop().await;
}

/// Every body in `tests/fixtures/whatsapp/`, as `(file/sample, body)`.
fn fixture_samples() -> Vec<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/whatsapp");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures folder")
        .map(|e| e.expect("fixture entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 19, "fixtures missing: {files:?}");
    let mut samples = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("fixture readable");
        let all: serde_json::Map<String, Value> =
            serde_json::from_str(&text).expect("fixture is a JSON object");
        let stem = file.file_stem().unwrap().to_string_lossy().to_string();
        for (name, body) in all {
            samples.push((format!("{stem}/{name}"), body));
        }
    }
    samples
}

/// Gives every inbound message of a sample its own id, so no sample is dropped as a redelivery
/// of another one (the samples share placeholder ids), and addresses every change to our number
/// (a few samples come from other numbers, which herald leaves out).
fn with_unique_message_ids(body: &Value, tag: &str) -> Value {
    let mut body = body.clone();
    if let Some(entries) = body["entry"].as_array_mut() {
        for (e, entry) in entries.iter_mut().enumerate() {
            if let Some(changes) = entry["changes"].as_array_mut() {
                for (c, change) in changes.iter_mut().enumerate() {
                    if change["value"]["metadata"].is_object() {
                        change["value"]["metadata"]["phone_number_id"] = json!(PHONE_NUMBER_ID);
                    }
                    if let Some(messages) = change["value"]["messages"].as_array_mut() {
                        for (m, message) in messages.iter_mut().enumerate() {
                            message["id"] = json!(format!("wamid.{tag}.{e}.{c}.{m}"));
                        }
                    }
                }
            }
        }
    }
    body
}

#[tokio::test]
async fn every_fixture_sample_is_accepted_through_the_endpoint_and_records_nothing_odd() {
    let app = RunApp::start().await;
    // The samples' user (972987654321) is a customer who got a campaign message: no sample may
    // touch that send, since none of their statuses is about it.
    app.setup(&[
        "/template add notice en utility Your order {{1}} has shipped",
        "/contact add +972987654321 name=Tal labels=buyers optin",
        "/campaign new Shipping",
        "/campaign audience 1 buyers",
        "/campaign template 1 notice en A-1001",
        "/campaign send 1",
    ])
    .await;
    app.wait_for_campaign_sends(1).await;
    app.wait_for_admin_text("campaign 1 completed").await;
    let requests_before = app.fake.requests().len();

    let samples = fixture_samples();
    let mut inbound_at = Vec::new();
    let mut expected_contacts = std::collections::BTreeSet::from(["wa:972987654321".to_string()]);
    for (i, (name, body)) in samples.iter().enumerate() {
        // As Meta sent it, then with ids of its own so that every message is processed.
        for body in [body.clone(), with_unique_message_ids(body, &i.to_string())] {
            let raw = serde_json::to_string(&body).unwrap();
            let decoded = parse_webhook(raw.as_bytes(), PHONE_NUMBER_ID).expect("a fixture parses");
            for event in decoded.events {
                match event {
                    ChannelEvent::Inbound(m) => {
                        inbound_at.push(m.at);
                        expected_contacts.insert(m.from);
                    }
                    ChannelEvent::MarketingPreference { from, .. } => {
                        expected_contacts.insert(from);
                    }
                    ChannelEvent::Status(_)
                    | ChannelEvent::Billed(_)
                    | ChannelEvent::Account(_) => {}
                }
            }
            assert_eq!(app.post_webhook(&raw).await, StatusCode::OK, "{name}");
        }
    }

    let store = &app.engine.store;
    // Contacts exist only for people who wrote or changed a preference, under sane addresses.
    let mut contacts = std::collections::BTreeSet::new();
    for address in &expected_contacts {
        let contact = store
            .find_contact(&address.parse().expect("an address"))
            .await
            .unwrap();
        assert!(contact.is_some(), "no contact for {address}");
        contacts.insert(address.clone());
    }
    assert_eq!(
        store.count_contacts().await.unwrap(),
        contacts.len() as i64,
        "contacts beyond {contacts:?}"
    );
    assert!(contacts.iter().all(|a| a
        .strip_prefix("wa:")
        .is_some_and(|d| d.chars().all(|c| c.is_ascii_digit()))));

    // Tal wrote many times: the window opened at their latest message, and nothing opted them
    // out or stopped their marketing.
    let tal = store
        .find_contact(&"wa:972987654321".parse().expect("an address"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tal.last_inbound_at, inbound_at.iter().max().copied());
    assert_eq!(tal.consent, Consent::OptedIn);
    assert!(!tal.marketing_stopped);
    assert_eq!(tal.name.as_deref(), Some("Tal"));

    // The campaign message was not touched by statuses about other messages, and messages
    // dated 2023 are no reply to a campaign sent in 2026.
    let report = app.report(1).await;
    assert_eq!(report["sent"], "1");
    assert_eq!(report["delivered"], "0");
    assert_eq!(report["read"], "0");
    assert_eq!(report["failed"], "0");
    assert_eq!(report["replied"], "0");
    assert_eq!(store.campaigns(None).await.unwrap().len(), 1);
    // No sample made herald write to a customer; the admins heard only what Meta said about
    // the account (a restriction, a violation), and the report just asked for.
    let written = &app.fake.requests()[requests_before..];
    let (to_admin, to_others): (Vec<_>, Vec<_>) =
        written.iter().partition(|r| r.to() == Some(ADMIN));
    assert!(to_others.is_empty(), "{to_others:#?}");
    let notices: Vec<&str> = to_admin.iter().filter_map(|r| r.text()).collect();
    assert_eq!(notices.len(), 3, "{notices:#?}");
    assert!(
        notices[..2].iter().all(|t| t.starts_with("WhatsApp ")),
        "{notices:#?}"
    );

    let (status, body) = app.get("/healthz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    app.stop().await;
}

#[tokio::test]
async fn a_redelivered_webhook_changes_nothing() {
    let app = RunApp::start().await;
    app.setup(&["/contact add +15550001 name=Ann labels=vip optin"])
        .await;

    // An admin command delivered twice runs once.
    let command = webhooks::text(
        ADMIN,
        "Admin",
        "/campaign new Once",
        "wamid.cmd1",
        app.now_secs(),
    );
    let before = app.admin_texts().len();
    assert_eq!(app.post_webhook(&command).await, StatusCode::OK);
    assert_eq!(app.post_webhook(&command).await, StatusCode::OK);
    assert_eq!(app.engine.store.campaigns(None).await.unwrap().len(), 1);
    assert_eq!(app.admin_texts().len(), before + 1);

    // A STOP delivered twice opts out once and confirms once.
    let stop = webhooks::text(ANN, "Ann", "STOP", "wamid.stop1", app.now_secs());
    assert_eq!(app.post_webhook(&stop).await, StatusCode::OK);
    assert_eq!(app.post_webhook(&stop).await, StatusCode::OK);
    let ann = app.contact("wa:15550001").await;
    let history = app.engine.store.consent_history(ann.id).await.unwrap();
    let opt_outs = history
        .iter()
        .filter(|e| e.kind.as_str() == "opt_out")
        .count();
    assert_eq!(opt_outs, 1, "{history:?}");
    assert_eq!(app.fake.accepted_for(ANN), 1);
    let confirmation = app.fake.accepted()[app.fake.accepted().len() - 1].clone();
    assert!(
        confirmation
            .text()
            .unwrap_or_default()
            .contains("unsubscribed"),
        "{confirmation:?}"
    );
    app.stop().await;
}

/// Campaign 1 sent to Ann, Bob and Cy, and the statuses Meta then reports for them, oldest news
/// last or out of order: Ann's message is read (a later failure cannot take that back), Bob's
/// fails after it was sent, Cy's fails after it was delivered (matched by wamid alone).
async fn sent_then_mixed_statuses(app: &RunApp) -> Vec<String> {
    spring_sale_setup(app).await;
    app.setup(&["/on 1 read label+=readers", "/campaign send 1"])
        .await;
    app.wait_for_campaign_sends(3).await;
    app.wait_for_idle(1).await;
    let (ann, bob, cy) = (
        app.campaign_send_to(ANN),
        app.campaign_send_to(BOB),
        app.campaign_send_to(CY),
    );
    let at = app.now_secs();
    let wamid = |r: &crate::support::fake_graph::RecordedRequest| r.wamid.clone().unwrap();
    vec![
        webhooks::status(&wamid(&ann), "read", ANN, ann.callback(), at + 9),
        webhooks::status(&wamid(&ann), "delivered", ANN, ann.callback(), at + 2),
        webhooks::status(&wamid(&ann), "sent", ANN, ann.callback(), at + 1),
        webhooks::failed(
            &wamid(&ann),
            ANN,
            131026,
            "Message undeliverable",
            None,
            at + 10,
        ),
        webhooks::status(&wamid(&bob), "sent", BOB, bob.callback(), at + 1),
        webhooks::failed(
            &wamid(&bob),
            BOB,
            131047,
            "Re-engagement message",
            bob.callback(),
            at + 2,
        ),
        webhooks::status(&wamid(&cy), "delivered", CY, None, at + 1),
        webhooks::failed(
            &wamid(&cy),
            CY,
            131000,
            "Something went wrong",
            None,
            at + 2,
        ),
    ]
}

async fn assert_mixed_statuses_applied(app: &RunApp) {
    let report = app.report(1).await;
    assert_eq!(report["sent"], "1");
    assert_eq!(report["delivered"], "1");
    assert_eq!(report["read"], "1");
    assert_eq!(report["failed"], "2");
    assert!(report["failed.131047"].contains("Re-engagement message"));
    assert!(report["failed.131000"].contains("Something went wrong"));
    assert!(!report.contains_key("failed.131026"));
    assert_eq!(
        app.contact("wa:15550001").await.labels,
        vec!["readers", "vip"]
    );
    assert_eq!(app.contact("wa:15550003").await.labels, vec!["vip"]);
}

#[tokio::test]
async fn statuses_never_move_backwards_but_a_failure_overrides_sent() {
    let app = RunApp::start().await;
    for body in sent_then_mixed_statuses(&app).await {
        assert_eq!(app.post_webhook(&body).await, StatusCode::OK);
    }
    assert_mixed_statuses_applied(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn statuses_batched_in_one_body_apply_as_if_posted_one_by_one() {
    let app = RunApp::start().await;
    let bodies = sent_then_mixed_statuses(&app).await;
    let body = webhooks::batch(&bodies);
    let decoded = parse_webhook(body.as_bytes(), PHONE_NUMBER_ID).unwrap();
    assert_eq!(decoded.events.len(), 8);
    assert_eq!(app.post_webhook(&body).await, StatusCode::OK);
    assert_mixed_statuses_applied(&app).await;
    // Redelivered whole, it changes nothing.
    assert_eq!(app.post_webhook(&body).await, StatusCode::OK);
    assert_mixed_statuses_applied(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn concurrent_replayed_statuses_count_once() {
    let app = RunApp::start().await;
    spring_sale_setup(&app).await;
    app.setup(&["/on 1 delivered attr.seen=yes", "/campaign send 1"])
        .await;
    app.wait_for_campaign_sends(3).await;
    app.wait_for_idle(1).await;
    let at = app.now_secs();
    let mut bodies = Vec::new();
    for (to, statuses) in [
        (ANN, &["sent", "delivered", "read"][..]),
        (BOB, &["sent", "delivered"][..]),
        (CY, &["sent"][..]),
    ] {
        let send = app.campaign_send_to(to);
        let wamid = send.wamid.clone().unwrap();
        for status in statuses {
            // Meta retries deliveries it thinks failed: each status arrives three times.
            for _ in 0..3 {
                bodies.push(webhooks::status(
                    &wamid,
                    status,
                    to,
                    send.callback(),
                    at + 1,
                ));
            }
        }
    }
    let answers = futures::future::join_all(bodies.iter().map(|body| app.post_webhook(body))).await;
    assert!(answers.iter().all(|a| *a == StatusCode::OK), "{answers:?}");
    let report = app.report(1).await;
    assert_eq!(report["sent"], "3");
    assert_eq!(report["delivered"], "2");
    assert_eq!(report["read"], "1");
    for (who, seen) in [
        ("wa:15550001", true),
        ("wa:15550002", true),
        ("wa:15550003", false),
    ] {
        let contact = app.contact(who).await;
        assert_eq!(
            contact.attrs.contains_key("seen"),
            seen,
            "{who}: {:?}",
            contact.attrs
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_status_finds_its_recipient_by_callback_data_when_the_send_answer_was_lost() {
    let app = RunApp::start().await;
    app.setup(&[
        "/template add hello en utility Hello {{1}}",
        "/contact add +15550001 name=Ann labels=vip optin",
        "/campaign new Hello",
        "/campaign audience 1 vip",
        "/campaign template 1 hello en {{name}}",
    ])
    .await;
    // Meta takes the message but its answer is unreadable: no wamid comes back.
    app.fake.on_recipient(ANN, 200, "<html>proxy hiccup</html>");
    app.setup(&["/campaign send 1"]).await;
    app.wait_for_customer_requests(1).await;
    app.wait_for_idle(1).await;
    let sent = &app.customer_requests()[0];
    let callback = sent.callback().unwrap().to_string();

    // Data that is not herald's, or names another campaign, matches nothing.
    for foreign in ["random_string", "r1", &callback.replace(":c1", ":c99")] {
        let failed = webhooks::failed("wamid.other", ANN, 131026, "x", Some(foreign), 1);
        assert_eq!(app.post_webhook(&failed).await, StatusCode::OK);
    }
    assert_eq!(app.report(1).await["failed"], "0");

    let wamid = "wamid.HBgLMTU1NTAwMDAwMDEVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA";
    let delivered = webhooks::status(wamid, "delivered", ANN, Some(&callback), app.now_secs());
    assert_eq!(app.post_webhook(&delivered).await, StatusCode::OK);
    // The wamid is now known, so a later status without callback data matches too.
    let read = webhooks::status(wamid, "read", ANN, None, app.now_secs() + 5);
    assert_eq!(app.post_webhook(&read).await, StatusCode::OK);
    let report = app.report(1).await;
    assert_eq!(report["sent"], "1");
    assert_eq!(report["delivered"], "1");
    assert_eq!(report["read"], "1");
    app.stop().await;
}

#[tokio::test]
async fn a_user_who_stops_marketing_in_the_app_gets_no_marketing_template() {
    let app = RunApp::start().await;
    spring_sale_setup(&app).await;
    app.setup(&["/template add receipt en_US utility Your receipt {{1}} is ready"])
        .await;
    let stop = webhooks::marketing_preference(ANN, "stop", app.now_secs());
    assert_eq!(app.post_webhook(&stop).await, StatusCode::OK);

    app.setup(&["/campaign send 1"]).await;
    app.wait_for_campaign_sends(2).await;
    app.wait_for_idle(1).await;
    let report = app.report(1).await;
    assert_eq!(report["sent"], "2");
    assert_eq!(report["skipped"], "1");
    assert_eq!(report["skipped.marketing_stopped"], "1");
    assert_eq!(app.fake.count_for(ANN), 0);

    // Utility messages still reach her.
    app.setup(&[
        "/campaign new Receipts",
        "/campaign audience 2 vip",
        "/campaign template 2 receipt en_US R-7",
        "/campaign send 2",
    ])
    .await;
    app.wait_for_campaign_sends(5).await;
    app.wait_for_idle(2).await;
    assert_eq!(app.fake.accepted_for(ANN), 1);

    // She resumes marketing in the app: the next marketing campaign reaches her.
    let resume = webhooks::marketing_preference(ANN, "resume", app.now_secs());
    assert_eq!(app.post_webhook(&resume).await, StatusCode::OK);
    app.setup(&[
        "/campaign new Spring again",
        "/campaign audience 3 +15550001",
        "/campaign template 3 spring_sale en_US {{name}}|30%",
        "/campaign send 3",
    ])
    .await;
    app.wait_for_campaign_sends(6).await;
    app.wait_for_idle(3).await;
    assert_eq!(app.fake.accepted_for(ANN), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_stop_quick_reply_button_opts_out_like_typed_stop() {
    let app = RunApp::start().await;
    spring_sale_setup(&app).await;
    let press = webhooks::quick_reply(
        ANN,
        "Ann",
        "STOP",
        "Stop promotions",
        &app.wamid(),
        app.now_secs(),
    );
    assert_eq!(app.post_webhook(&press).await, StatusCode::OK);
    let ann = app.contact("wa:15550001").await;
    assert_eq!(ann.consent, Consent::OptedOut);
    let confirmation = app.fake.accepted();
    let confirmation = confirmation.last().unwrap();
    assert_eq!(confirmation.to(), Some(ANN));
    assert!(confirmation.text().unwrap().contains("unsubscribed"));

    app.setup(&["/campaign send 1"]).await;
    app.wait_for_campaign_sends(2).await;
    app.wait_for_idle(1).await;
    let report = app.report(1).await;
    assert_eq!(report["skipped.opted_out"], "1");
    assert_eq!(app.fake.accepted_for(ANN), 1, "only the confirmation");
    app.stop().await;
}

#[tokio::test]
async fn any_inbound_message_opens_the_window_for_free_text() {
    let app = RunApp::start().await;
    app.setup(&[
        "/contact add +15550001 name=Ann labels=vip optin",
        "/contact add +15550002 name=Bob labels=vip optin",
    ])
    .await;
    // Ann sends a photo without a word; Bob has never written.
    let image = image_message(ANN, &app.wamid(), app.now_secs());
    assert_eq!(app.post_webhook(&image).await, StatusCode::OK);
    app.setup(&[
        "/campaign new Free text",
        "/campaign audience 1 vip",
        "/campaign text 1 Thanks {{name}}, here is your 10% code: SPRING10",
        "/campaign send 1",
    ])
    .await;
    app.wait_for_campaign_sends(1).await;
    app.wait_for_idle(1).await;
    let sent = app.campaign_send_to(ANN);
    assert_eq!(
        sent.body["text"],
        json!({"preview_url": false, "body": "Thanks Ann, here is your 10% code: SPRING10"})
    );
    let report = app.report(1).await;
    assert_eq!(report["skipped.outside_window"], "1");
    assert_eq!(app.fake.count_for(BOB), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_stranger_typing_a_command_learns_nothing() {
    let app = RunApp::start().await;
    spring_sale_setup(&app).await;
    app.customer_says(ANN, "/campaign list").await;
    app.customer_says(ANN, "/campaign report 1").await;
    assert_eq!(app.fake.count_for(ANN), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_long_admin_reply_arrives_as_several_texts() {
    let app = RunApp::start().await;
    let filler = "x".repeat(900);
    for i in 0..6 {
        app.setup(&[&format!(
            "/template add promo_{i} en marketing Hi {{{{1}}}} {filler}"
        )])
        .await;
    }
    let before = app.admin_texts().len();
    let reply = app.admin("/template list").await;
    let texts = &app.admin_texts()[before..];
    assert!(texts.len() >= 2, "{} text(s)", texts.len());
    assert!(texts.iter().all(|t| t.chars().count() <= 4096));
    for i in 0..6 {
        assert!(
            reply.contains(&format!("promo_{i} en [marketing]")),
            "promo_{i}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn healthz_and_metrics_report_on_the_process() {
    let app = RunApp::start().await;
    let (status, body) = app.get("/healthz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));

    app.setup(&[
        "/template add hello en utility Hello {{1}}",
        "/contact add +15550001 name=Ann labels=vip optin",
        "/campaign new Hello",
        "/campaign audience 1 vip",
        "/campaign template 1 hello en {{name}}",
        "/campaign send 1",
    ])
    .await;
    app.wait_for_campaign_sends(1).await;
    app.wait_for_idle(1).await;
    assert_eq!(app.post_unsigned("{}").await, StatusCode::UNAUTHORIZED);

    let response = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(content_type.contains("openmetrics-text"), "{content_type}");
    let text = response.text().await.unwrap();
    for line in [
        "herald_webhooks_received_total{channel=\"whatsapp\"} 7",
        "herald_webhooks_rejected_total{channel=\"whatsapp\",reason=\"signature\"} 1",
        "herald_webhook_events_total{channel=\"whatsapp\",kind=\"inbound\"} 6",
        "herald_messages_sent_total{channel=\"whatsapp\"} 1",
        "herald_campaigns_sending 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
    app.stop().await;
}

#[tokio::test]
async fn the_tier_limit_holds_the_rest_until_the_24h_window_rolls() {
    let app = RunApp::start_with(&[("WHATSAPP_TIER", "2")], |_| {}).await;
    spring_sale_setup(&app).await;
    let preview = app.admin("/campaign preview 1").await;
    assert!(preview.contains("exceed"), "{preview}");

    // Nobody wrote in: all three are business-initiated, and the tier allows two a day.
    app.setup(&["/campaign send 1"]).await;
    app.wait_for_campaign_sends(2).await;
    app.wait_for_idle(1).await;
    assert_eq!(app.campaign_sends().len(), 2);
    let report = app.report(1).await;
    assert_eq!(report["status"], "sending");
    assert_eq!(report["sent"], "2");
    assert_eq!(report["queued"], "1");
    assert_eq!(report["failed"], "0");

    // Nothing moves before the oldest send is 24 h old.
    app.advance(Duration::hours(23));
    app.wait_for_idle(1).await;
    assert_eq!(app.campaign_sends().len(), 2);

    app.advance(Duration::hours(1) + Duration::seconds(5));
    app.wait_for_campaign_sends(3).await;
    app.wait_for_idle(1).await;
    let report = app.report(1).await;
    assert_eq!(report["status"], "completed");
    assert_eq!(report["sent"], "3");
    // Each got the campaign exactly once.
    for to in [ANN, BOB, CY] {
        assert_eq!(app.fake.accepted_for(to), 1, "{to}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_per_number_ceiling_spaces_sends() {
    // 5 messages a second from this number, campaign pacing off: six sends take a second.
    let app = RunApp::start_with(&[("WHATSAPP_MPS", "5")], |_| {}).await;
    app.setup(&["/template add hello en utility Hello {{1}}"])
        .await;
    for i in 1..=6 {
        app.setup(&[&format!("/contact add +1555000{i} labels=vip optin")])
            .await;
    }
    app.setup(&[
        "/campaign new Paced",
        "/campaign audience 1 vip",
        "/campaign template 1 hello en friend",
        "/campaign pace 1 rate=0",
    ])
    .await;
    let started = Instant::now();
    app.setup(&["/campaign send 1"]).await;
    app.wait_for_campaign_sends(6).await;
    let elapsed = started.elapsed();
    // The slot after the admin's reply is the first; five more at 200 ms each.
    assert!(
        elapsed >= std::time::Duration::from_millis(950),
        "6 sends at 5/s took only {elapsed:?}"
    );
    app.wait_for_idle(1).await;
    assert_eq!(count(&app.report(1).await, "sent"), 6);
    app.stop().await;
}

#[tokio::test]
async fn statuses_that_arrive_after_a_restart_still_count() {
    let mut app = RunApp::start().await;
    spring_sale_setup(&app).await;
    app.setup(&["/campaign send 1"]).await;
    app.wait_for_campaign_sends(3).await;
    app.wait_for_idle(1).await;

    // SIGTERM, then a new process on the same database.
    app.restart().await;
    let ann = app.campaign_send_to(ANN);
    let body = webhooks::status(
        ann.wamid.as_deref().unwrap(),
        "read",
        ANN,
        ann.callback(),
        app.now_secs(),
    );
    assert_eq!(app.post_webhook(&body).await, StatusCode::OK);
    let report = app.report(1).await;
    assert_eq!(report["status"], "completed");
    assert_eq!(report["sent"], "3");
    assert_eq!(report["read"], "1");
    // Nobody got the campaign twice.
    assert_eq!(app.campaign_sends().len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn a_refused_access_token_pauses_the_campaign() {
    let app = RunApp::start().await;
    spring_sale_setup(&app).await;
    // The token was revoked: Meta answers every request with 401 / code 190, the admin's texts
    // included, so the pause shows in the campaign's state (and the log).
    app.fake.require_token("a-newer-token");
    let body = webhooks::text(
        ADMIN,
        "Admin",
        "/campaign send 1",
        &app.wamid(),
        app.now_secs(),
    );
    assert_eq!(app.post_webhook(&body).await, StatusCode::OK);
    app.wait_for_customer_requests(1).await;
    app.wait_for_idle(1).await;
    let campaign = app.engine.store.campaign(1).await.unwrap().unwrap();
    assert_eq!(campaign.status, CampaignStatus::Paused);
    let why = campaign.status_reason.unwrap_or_default();
    assert!(why.starts_with("190 "), "{why}");
    // One refused request was enough to stop.
    assert_eq!(app.customer_requests().len(), 1);
    assert_eq!(app.engine.store.report(1).await.unwrap().queued, 3);
    app.stop().await;
}

#[tokio::test]
async fn a_webhook_that_cannot_be_stored_gets_500_and_its_redelivery_is_processed_once() {
    let app = RunApp::start().await;
    app.setup(&["/contact add +15550001 name=Ann labels=vip optin"])
        .await;
    let stop = webhooks::text(ANN, "Ann", "STOP", &app.wamid(), app.now_secs());

    // The database fails mid-way: herald does not answer 200, so Meta will redeliver.
    db::inject_failure(app.engine.store.pool(), "UPDATE", "contacts", None).await;
    assert_eq!(
        app.post_webhook(&stop).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    db::heal(app.engine.store.pool(), "contacts").await;

    // The redelivery is processed (not dropped as already seen), and a second one changes nothing.
    assert_eq!(app.post_webhook(&stop).await, StatusCode::OK);
    assert_eq!(app.post_webhook(&stop).await, StatusCode::OK);
    let ann = app.contact("wa:15550001").await;
    assert_eq!(ann.consent, Consent::OptedOut);
    let history = app.engine.store.consent_history(ann.id).await.unwrap();
    assert_eq!(
        history
            .iter()
            .filter(|e| e.kind.as_str() == "opt_out")
            .count(),
        1
    );
    assert_eq!(app.fake.accepted_for(ANN), 1, "one confirmation");
    app.stop().await;
}

#[tokio::test]
async fn a_status_batch_that_fails_half_way_fires_its_rules_when_redelivered() {
    let app = RunApp::start().await;
    spring_sale_setup(&app).await;
    app.setup(&["/on 1 delivered label+=got", "/campaign send 1"])
        .await;
    app.wait_for_campaign_sends(3).await;
    app.wait_for_idle(1).await;
    let (ann, bob) = (app.campaign_send_to(ANN), app.campaign_send_to(BOB));
    let at = app.now_secs();
    // Ann's delivery is one write, Bob's failure another; the second fails in the database.
    let body = webhooks::batch(&[
        webhooks::status(
            ann.wamid.as_deref().unwrap(),
            "delivered",
            ANN,
            ann.callback(),
            at,
        ),
        webhooks::failed(
            bob.wamid.as_deref().unwrap(),
            BOB,
            131026,
            "Message undeliverable",
            bob.callback(),
            at,
        ),
    ]);
    let pool = app.engine.store.pool();
    db::inject_failure(pool, "UPDATE", "recipients", Some("NEW.status = 'failed'")).await;
    assert_eq!(
        app.post_webhook(&body).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    db::heal(pool, "recipients").await;

    // Nothing was half-written, so the redelivery applies both and Ann's rule fires.
    assert_eq!(app.post_webhook(&body).await, StatusCode::OK);
    let report = app.report(1).await;
    assert_eq!(
        (count(&report, "delivered"), count(&report, "failed")),
        (1, 1)
    );
    assert_eq!(app.contact("wa:15550001").await.labels, vec!["got", "vip"]);
    app.stop().await;
}

/// A press on an interactive reply button, as Meta sends it.
fn button_reply(
    from: &str,
    id: &str,
    title: &str,
    replying_to: &str,
    wamid: &str,
    at: i64,
) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "1122334455667"},
            "contacts": [{"profile": {"name": "Customer"}, "wa_id": from}],
            "messages": [{
                "context": {"from": "15550783881", "id": replying_to},
                "from": from, "id": wamid, "timestamp": at.to_string(), "type": "interactive",
                "interactive": {"type": "button_reply", "button_reply": {"id": id, "title": title}}
            }]
        }}]}]
    })
    .to_string()
}

#[tokio::test]
async fn interactive_reply_buttons_go_out_and_a_stop_press_opts_out() {
    use herald::channels::whatsapp::{ReplyButton, WhatsAppClient, WhatsAppConfig};
    let app = RunApp::start().await;
    app.setup(&["/contact add +15550001 name=Ann labels=vip optin"])
        .await;
    app.customer_says(ANN, "Any news?").await;

    // Inside the window the business may answer with buttons.
    let client = WhatsAppClient::new(WhatsAppConfig::new(
        format!("{}/v21.0", app.fake.url),
        crate::support::run_app::PHONE_NUMBER_ID,
        TOKEN,
    ))
    .unwrap();
    let buttons = [
        ReplyButton::new("MORE", "Tell me more"),
        ReplyButton::new("STOP", "Stop messages"),
    ];
    let sent = client
        .send_buttons(
            "wa:15550001",
            "Spring sale on Friday: want the details?",
            &buttons,
            None,
        )
        .await
        .unwrap();
    let request = app.fake.requests().last().cloned().unwrap();
    assert_eq!(request.to(), Some(ANN));
    assert_eq!(request.body["type"], "interactive");
    assert_eq!(
        request.body["interactive"]["action"]["buttons"],
        json!([
            {"type": "reply", "reply": {"id": "MORE", "title": "Tell me more"}},
            {"type": "reply", "reply": {"id": "STOP", "title": "Stop messages"}}
        ])
    );
    // Four buttons are refused before anything is sent.
    let four: Vec<ReplyButton> = (1..=4)
        .map(|i| ReplyButton::new(format!("B{i}"), format!("Option {i}")))
        .collect();
    let before = app.fake.requests().len();
    let refused = client
        .send_buttons("wa:15550001", "Pick one", &four, None)
        .await;
    assert_eq!(refused.unwrap_err().code, "invalid_buttons");
    assert_eq!(app.fake.requests().len(), before);

    // Ann presses "Stop messages": the button's id is an opt-out word.
    let wamid = sent.provider_id.unwrap();
    let press = button_reply(
        ANN,
        "STOP",
        "Stop messages",
        &wamid,
        &app.wamid(),
        app.now_secs(),
    );
    assert_eq!(app.post_webhook(&press).await, StatusCode::OK);
    let ann = app.contact("wa:15550001").await;
    assert_eq!(ann.consent, Consent::OptedOut);
    let last = app.fake.accepted().last().cloned().unwrap();
    assert_eq!(last.to(), Some(ANN));
    assert!(last.text().unwrap().contains("unsubscribed"));
    app.stop().await;
}
