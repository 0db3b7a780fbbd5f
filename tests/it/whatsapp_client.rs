//! The WhatsApp client against the fake Graph API: what goes over the wire, and how each of Meta's
//! answers comes back as a [`SendError`] class.

use std::time::{Duration, Instant};

use crate::support::fake_graph::FakeGraph;
use herald::channels::whatsapp::{WhatsAppClient, WhatsAppConfig};
use herald::channels::{Audience, Channel, ErrorClass, Outbound, OutboundBody, SendError};
use serde_json::json;

const PHONE_NUMBER_ID: &str = "1122334455667";
const TOKEN: &str = "EAAG-test-token";

fn client_for(url: &str) -> WhatsAppClient {
    WhatsAppClient::new(WhatsAppConfig::new(url, PHONE_NUMBER_ID, TOKEN)).unwrap()
}

fn text_to(to: &str, text: &str) -> Outbound {
    Outbound {
        to: to.into(),
        audience: Audience::Customer,
        body: OutboundBody::Text(text.into()),
        callback: None,
    }
}

async fn send_expecting_error(fake: &FakeGraph, to: &str) -> SendError {
    client_for(&fake.url)
        .send(&text_to(to, "hello"))
        .await
        .expect_err("the fake was told to fail")
}

#[tokio::test]
async fn text_message_goes_out_as_meta_expects() {
    let fake = FakeGraph::start().await;
    let client = client_for(&fake.url);

    let sent = client
        .send(&text_to("wa:+1 555-0001", "Hi Ana, 20% off today"))
        .await
        .unwrap();

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, format!("/{PHONE_NUMBER_ID}/messages"));
    assert_eq!(
        request.authorization.as_deref(),
        Some("Bearer EAAG-test-token")
    );
    assert_eq!(
        request.body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "15550001",
            "type": "text",
            "text": {"preview_url": false, "body": "Hi Ana, 20% off today"}
        })
    );
    assert_eq!(sent.provider_id, request.wamid);
    assert!(sent.provider_id.unwrap().starts_with("wamid."));
    assert_eq!(fake.accepted_for("wa:15550001"), 1);
}

#[tokio::test]
async fn template_message_carries_components_and_callback() {
    let fake = FakeGraph::start().await;
    let client = client_for(&fake.url);
    let msg = Outbound {
        to: "wa:15550002".into(),
        audience: Audience::Customer,
        body: OutboundBody::Template {
            name: "spring_sale".into(),
            lang: "en_US".into(),
            params: vec!["Ana".into(), "Lisbon".into()],
            rendered: "Hi Ana, our Lisbon store...".into(),
            buttons: vec!["Yes".into(), "STOP".into()],
            parts: Default::default(),
        },
        callback: Some("campaign=7;recipient=42".into()),
    };

    client.send(&msg).await.unwrap();

    let request = &fake.requests()[0];
    assert_eq!(request.template_name(), Some("spring_sale"));
    assert_eq!(request.callback(), Some("campaign=7;recipient=42"));
    assert_eq!(request.body["type"], "template");
    assert_eq!(
        request.body["template"]["language"],
        json!({"code": "en_US"})
    );
    assert_eq!(
        request.body["template"]["components"],
        json!([
            {"type": "body", "parameters": [
                {"type": "text", "text": "Ana"},
                {"type": "text", "text": "Lisbon"}
            ]},
            {"type": "button", "sub_type": "quick_reply", "index": "0",
             "parameters": [{"type": "payload", "payload": "Yes"}]},
            {"type": "button", "sub_type": "quick_reply", "index": "1",
             "parameters": [{"type": "payload", "payload": "STOP"}]}
        ])
    );
}

#[tokio::test]
async fn send_text_helper_and_versioned_base_url() {
    let fake = FakeGraph::start().await;
    let client = client_for(&format!("{}/v21.0/", fake.url));
    client
        .send_text("wa:15550009", "admin reply")
        .await
        .unwrap();
    let request = &fake.requests()[0];
    assert_eq!(request.text(), Some("admin reply"));
    assert_eq!(request.phone_number_id, PHONE_NUMBER_ID);
}

#[tokio::test]
async fn each_meta_error_lands_in_its_class() {
    let cases = [
        (400, 131026, "Message undeliverable", ErrorClass::Permanent),
        (400, 131047, "Re-engagement message", ErrorClass::Permanent),
        (
            400,
            131051,
            "Unsupported message type",
            ErrorClass::Permanent,
        ),
        (
            400,
            131050,
            "User stopped marketing messages",
            ErrorClass::MarketingStopped,
        ),
        (
            400,
            131049,
            "Not delivered to maintain healthy ecosystem engagement",
            ErrorClass::Defer,
        ),
        (400, 130429, "Rate limit hit", ErrorClass::RateLimited),
        (400, 131056, "Pair rate limit hit", ErrorClass::RateLimited),
        (
            400,
            131057,
            "Account in maintenance mode",
            ErrorClass::RateLimited,
        ),
        (400, 4, "Too many calls", ErrorClass::RateLimited),
        (400, 80007, "Rate limit issues", ErrorClass::RateLimited),
        (500, 131000, "Something went wrong", ErrorClass::Transient),
        (
            503,
            2,
            "Service temporarily unavailable",
            ErrorClass::Transient,
        ),
        (
            400,
            131048,
            "Spam rate limit hit",
            ErrorClass::PauseCampaign,
        ),
        (
            403,
            368,
            "Temporarily blocked for policies violations",
            ErrorClass::PauseCampaign,
        ),
        (
            400,
            131042,
            "Business eligibility payment issue",
            ErrorClass::PauseCampaign,
        ),
        (
            400,
            132000,
            "Template Param Count Mismatch",
            ErrorClass::PauseCampaign,
        ),
        (
            404,
            132001,
            "Template does not exist",
            ErrorClass::PauseCampaign,
        ),
        (
            401,
            190,
            "Access token has expired",
            ErrorClass::PauseCampaign,
        ),
    ];
    let fake = FakeGraph::start().await;
    for (status, code, title, class) in cases {
        fake.fail_next(
            1,
            status,
            FakeGraph::meta_error(code, title, "details here"),
        );
        let error = send_expecting_error(&fake, "wa:15550003").await;
        assert_eq!(error.class, class, "code {code}");
        assert_eq!(error.code, code.to_string());
        assert_eq!(error.reason, format!("{title}: details here"));
    }
    assert_eq!(fake.accepted_for("15550003"), 0);
}

#[tokio::test]
async fn a_per_recipient_rule_fails_only_that_recipient() {
    let fake = FakeGraph::start().await;
    fake.on_recipient(
        "wa:15550003",
        400,
        FakeGraph::meta_error(131026, "Message undeliverable", ""),
    );
    let client = client_for(&fake.url);

    assert!(client.send(&text_to("wa:15550001", "hi")).await.is_ok());
    let error = client
        .send(&text_to("wa:15550003", "hi"))
        .await
        .unwrap_err();
    assert_eq!(
        (error.class, error.code.as_str()),
        (ErrorClass::Permanent, "131026")
    );

    fake.clear_recipient("15550003");
    assert!(client.send(&text_to("wa:15550003", "hi")).await.is_ok());
    assert_eq!(fake.count_for("15550003"), 2);
    assert_eq!(fake.accepted_for("15550003"), 1);
}

#[tokio::test]
async fn http_429_with_retry_after_is_a_rate_limit_to_wait_out() {
    let fake = FakeGraph::start().await;
    fake.rate_limit_next(1, 2);
    let error = send_expecting_error(&fake, "wa:15550004").await;
    assert_eq!(error.class, ErrorClass::RateLimited);
    assert_eq!(error.code, "130429");
    assert_eq!(error.retry_after, Some(Duration::from_secs(2)));

    // The script is used up: the retry goes through.
    client_for(&fake.url)
        .send(&text_to("wa:15550004", "hello"))
        .await
        .unwrap();
}

#[tokio::test]
async fn bare_5xx_is_transient() {
    let fake = FakeGraph::start().await;
    fake.fail_next(1, 502, "<html>Bad Gateway</html>");
    let error = send_expecting_error(&fake, "wa:15550005").await;
    assert_eq!(error.class, ErrorClass::Transient);
    assert_eq!(error.code, "502");
}

#[tokio::test]
async fn a_wrong_token_pauses_the_campaign() {
    let fake = FakeGraph::start().await;
    fake.require_token("another-token");
    let error = send_expecting_error(&fake, "wa:15550006").await;
    assert_eq!(
        (error.class, error.code.as_str()),
        (ErrorClass::PauseCampaign, "190")
    );
}

#[tokio::test]
async fn connection_refused_is_transient() {
    // Take a free port, then close it so nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);

    let error = client_for(&url)
        .send(&text_to("wa:15550007", "hello"))
        .await
        .unwrap_err();
    assert_eq!(
        (error.class, error.code.as_str()),
        (ErrorClass::Transient, "connect")
    );
}

#[tokio::test]
async fn a_slow_answer_is_unknown_since_the_message_may_have_left() {
    let fake = FakeGraph::start().await;
    fake.set_latency(Duration::from_secs(2));
    let mut config = WhatsAppConfig::new(&fake.url, PHONE_NUMBER_ID, TOKEN);
    config.request_timeout = Duration::from_millis(200);
    let client = WhatsAppClient::new(config).unwrap();

    let error = client
        .send(&text_to("wa:15550008", "hello"))
        .await
        .unwrap_err();
    assert_eq!(
        (error.class, error.code.as_str()),
        (ErrorClass::Unknown, "timeout")
    );
    assert_eq!(
        fake.count_for("15550008"),
        1,
        "the request did reach the API"
    );
}

#[tokio::test]
async fn an_address_of_another_network_is_refused_without_a_request() {
    let fake = FakeGraph::start().await;
    let error = send_expecting_error(&fake, "tg:42").await;
    assert_eq!(
        (error.class, error.code.as_str()),
        (ErrorClass::Permanent, "invalid_address")
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn the_throughput_ceiling_holds_across_concurrent_senders() {
    let fake = FakeGraph::start().await;
    let mut config = WhatsAppConfig::new(&fake.url, PHONE_NUMBER_ID, TOKEN);
    config.max_per_second = 20.0;
    let client = std::sync::Arc::new(WhatsAppClient::new(config).unwrap());

    let started = Instant::now();
    let sends: Vec<_> = (0..6)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(
                async move { client.send(&text_to(&format!("wa:1555100{i}"), "hi")).await },
            )
        })
        .collect();
    for send in sends {
        send.await.unwrap().unwrap();
    }
    // Six sends at 20/s need five 50 ms gaps.
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.accepted().len(), 6);
}

#[test]
fn webhook_builders_parse_into_the_events_they_name() {
    use crate::support::fake_graph::webhooks;
    use chrono::DateTime;
    use herald::channels::whatsapp::{parse_webhook, sign, verify_signature};
    use herald::channels::{ChannelEvent, DeliveryStatus, Inbound, StatusUpdate};

    let at = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
    let parse = |body: String| {
        let signature = sign(b"app-secret", body.as_bytes());
        assert!(verify_signature(
            b"app-secret",
            body.as_bytes(),
            Some(&signature)
        ));
        parse_webhook(body.as_bytes(), crate::support::run_app::PHONE_NUMBER_ID)
            .unwrap()
            .events
    };

    assert_eq!(
        parse(webhooks::text(
            "wa:15550001",
            "Ana",
            "STOP",
            "wamid.in1",
            1_767_225_600
        )),
        vec![ChannelEvent::Inbound(Inbound {
            from: "wa:15550001".into(),
            name: Some("Ana".into()),
            text: Some("STOP".into()),
            button: None,
            at,
            provider_id: Some("wamid.in1".into()),
            file: None,
        })]
    );
    match parse(webhooks::quick_reply(
        "15550001",
        "Ana",
        "YES",
        "Yes!",
        "wamid.in2",
        1_767_225_600,
    ))
    .as_slice()
    {
        [ChannelEvent::Inbound(i)] => assert_eq!(
            (i.text.as_deref(), i.button.as_deref()),
            (Some("Yes!"), Some("YES"))
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse(webhooks::status(
            "wamid.out1",
            "read",
            "wa:15550001",
            Some("cb"),
            1_767_225_600
        )),
        vec![ChannelEvent::Status(StatusUpdate {
            provider_id: "wamid.out1".into(),
            callback: Some("cb".into()),
            status: DeliveryStatus::Read,
            at,
            recipient: Some("wa:15550001".into()),
        })]
    );
    match parse(webhooks::failed(
        "wamid.out2",
        "15550001",
        131026,
        "Message undeliverable",
        None,
        1_767_225_600,
    ))
    .as_slice()
    {
        [ChannelEvent::Status(s)] => assert_eq!(
            s.status,
            DeliveryStatus::Failed {
                code: "131026".into(),
                title: "Message undeliverable".into()
            }
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse(webhooks::marketing_preference(
            "wa:15550001",
            "stop",
            1_767_225_600
        )),
        vec![ChannelEvent::MarketingPreference {
            from: "wa:15550001".into(),
            stop: true,
            at
        }]
    );
}
