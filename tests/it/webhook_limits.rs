//! Webhooks under load, as a hostile client or a second business number would send them: herald
//! refuses what cannot be signed before reading it, caps the requests in flight, cuts off a body
//! that stalls, and ignores changes for a number that is not its own.

use std::time::{Duration, Instant};

use herald::channels::whatsapp::{sign, SIGNATURE_HEADER};
use herald::store::Consent;
use reqwest::StatusCode;

use crate::support::fake_graph::webhooks;
use crate::support::raw_http::{RawRequest, PROMPTLY};
use crate::support::run_app::{RunApp, ADMIN, APP_SECRET};

const ANN: &str = "15550001";
const BOB: &str = "15550002";
const CY: &str = "15550003";
const PATH: &str = "/webhooks/whatsapp";
/// The WhatsApp body limit.
const LIMIT: usize = 8 * 1024 * 1024;
/// Another business number served by the same Meta app.
const OTHER_NUMBER: &str = "9988776655443";

/// The value of one metric line (`name{labels}`) on `/metrics`; 0 when absent.
async fn metric(app: &RunApp, series: &str) -> u64 {
    let (_, text) = app.get("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits (for I/O, a few seconds at most) until `series` reads `value`.
async fn wait_for_metric(app: &RunApp, series: &str, value: u64) {
    let deadline = Instant::now() + PROMPTLY;
    while metric(app, series).await != value {
        assert!(Instant::now() < deadline, "{series} never reached {value}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_huge_body_that_cannot_be_signed_or_is_too_large_is_refused_without_being_read() {
    // The body deadline is far beyond the test's patience: only a refusal before reading the
    // body can answer in time.
    let app = RunApp::start_with(&[], |c| c.webhook_body_timeout = Duration::from_secs(120)).await;
    let well_formed = sign(b"anything", b"anything");
    for (headers, expected) in [
        (vec![], 401),
        (vec![(SIGNATURE_HEADER, "garbage")], 401),
        (vec![(SIGNATURE_HEADER, "sha256=abcd")], 401),
    ] {
        let started = Instant::now();
        let mut request = RawRequest::post(&app.base, PATH, LIMIT, &headers).await;
        request.send(&[b' '; 1024]).await;
        assert_eq!(request.status().await, expected, "{headers:?}");
        assert!(started.elapsed() < PROMPTLY);
        assert!(
            request.hangs_up().await,
            "{headers:?}: the connection stays open"
        );
    }
    // Signed in form, but announcing more than the limit: refused by its length alone.
    let mut request = RawRequest::post(
        &app.base,
        PATH,
        LIMIT + 1,
        &[(SIGNATURE_HEADER, well_formed.as_str())],
    )
    .await;
    request.send(&[b' '; 1024]).await;
    assert_eq!(request.status().await, 413);
    assert!(request.hangs_up().await);

    let rejected = "herald_webhooks_rejected_total{channel=\"whatsapp\",reason=";
    assert_eq!(metric(&app, &format!("{rejected}\"signature\"}}")).await, 3);
    assert_eq!(metric(&app, &format!("{rejected}\"too_large\"}}")).await, 1);
    assert_eq!(metric(&app, "herald_webhook_buffered_bytes").await, 0);
    // herald still answers a signed webhook as before.
    app.customer_says(ANN, "hello").await;
    app.stop().await;
}

#[tokio::test]
async fn past_the_cap_webhooks_are_answered_503_and_those_within_it_200() {
    let app = RunApp::start_with(&[("WEBHOOK_MAX_IN_FLIGHT", "2")], |c| {
        c.webhook_body_timeout = Duration::from_secs(120)
    })
    .await;
    // Ann and Bob's webhooks arrive slowly: each holds a place while its body streams in.
    let mut slow = Vec::new();
    for from in [ANN, BOB] {
        let body = webhooks::text(from, "Customer", "hi", &app.wamid(), app.now_secs());
        let signature = sign(APP_SECRET.as_bytes(), body.as_bytes());
        let mut request = RawRequest::post(
            &app.base,
            PATH,
            body.len(),
            &[(SIGNATURE_HEADER, signature.as_str())],
        )
        .await;
        let (first, rest) = body.as_bytes().split_at(body.len() / 2);
        request.send(first).await;
        slow.push((request, rest.to_vec()));
    }
    wait_for_metric(&app, "herald_webhook_requests_in_flight", 2).await;

    // A third is one too many: 503 at once, so Meta redelivers it later.
    let cy = webhooks::text(CY, "Cy", "hello", &app.wamid(), app.now_secs());
    assert_eq!(app.post_webhook(&cy).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        metric(
            &app,
            "herald_webhooks_rejected_total{channel=\"whatsapp\",reason=\"busy\"}"
        )
        .await,
        1
    );
    let store = &app.engine.store;
    let cy_address = format!("wa:{CY}").parse().expect("an address");
    assert!(store.find_contact(&cy_address).await.unwrap().is_none());

    // Those within the cap are answered in full once their bodies are in.
    let (mut ann, rest) = slow.remove(0);
    ann.send(&rest).await;
    assert_eq!(ann.status().await, 200);
    // Ann's place is free again: Meta's redelivery of Cy's webhook goes through.
    assert_eq!(app.post_webhook(&cy).await, StatusCode::OK);
    let (mut bob, rest) = slow.remove(0);
    bob.send(&rest).await;
    assert_eq!(bob.status().await, 200);

    for who in [ANN, BOB, CY] {
        assert!(
            app.contact(&format!("wa:{who}"))
                .await
                .last_inbound_at
                .is_some(),
            "{who}"
        );
    }
    wait_for_metric(&app, "herald_webhook_requests_in_flight", 0).await;
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_stalls_is_cut_off_at_the_deadline() {
    let app =
        RunApp::start_with(&[], |c| c.webhook_body_timeout = Duration::from_millis(300)).await;
    let body = webhooks::text(ANN, "Ann", "hi", &app.wamid(), app.now_secs());
    let signature = sign(APP_SECRET.as_bytes(), body.as_bytes());
    let mut request = RawRequest::post(
        &app.base,
        PATH,
        body.len(),
        &[(SIGNATURE_HEADER, signature.as_str())],
    )
    .await;
    request.send(&body.as_bytes()[..10]).await;
    // Nothing more is sent: herald gives up on the body and hangs up.
    assert_eq!(request.status().await, 408);
    assert!(request.hangs_up().await);
    assert_eq!(
        metric(
            &app,
            "herald_webhooks_rejected_total{channel=\"whatsapp\",reason=\"timeout\"}"
        )
        .await,
        1
    );
    assert_eq!(metric(&app, "herald_webhook_requests_in_flight").await, 0);
    assert_eq!(metric(&app, "herald_webhook_buffered_bytes").await, 0);
    let ann = format!("wa:{ANN}").parse().expect("an address");
    assert!(app.engine.store.find_contact(&ann).await.unwrap().is_none());

    // The same webhook sent whole is taken.
    assert_eq!(app.post_webhook(&body).await, StatusCode::OK);
    assert!(app.engine.store.find_contact(&ann).await.unwrap().is_some());
    app.stop().await;
}

#[tokio::test]
async fn webhooks_for_another_business_number_change_nothing() {
    let app = RunApp::start().await;
    app.setup(&["/contact add +15550001 name=Ann labels=vip optin"])
        .await;
    let admin_texts = app.admin_texts().len();
    let requests = app.fake.requests().len();

    // The same Meta app serves another number: its admin command, its customer's STOP and a
    // marketing stop arrive signed with our app secret.
    let command = webhooks::text(ADMIN, "Admin", "/campaign new Elsewhere", &app.wamid(), 1);
    let stop = webhooks::text(ANN, "Ann", "STOP", &app.wamid(), app.now_secs());
    let no_marketing = webhooks::marketing_preference(ANN, "stop", app.now_secs());
    for body in [&command, &stop, &no_marketing] {
        let theirs = webhooks::for_number(body, OTHER_NUMBER);
        // 200, so that Meta does not redeliver what is not ours.
        assert_eq!(app.post_webhook(&theirs).await, StatusCode::OK, "{theirs}");
    }

    assert!(app.engine.store.campaigns(None).await.unwrap().is_empty());
    let ann = app.contact("wa:15550001").await;
    assert_eq!(ann.consent, Consent::OptedIn);
    assert!(!ann.marketing_stopped);
    assert_eq!(ann.last_inbound_at, None);
    assert_eq!(app.admin_texts().len(), admin_texts);
    assert_eq!(
        app.fake.requests().len(),
        requests,
        "herald wrote to someone"
    );
    assert_eq!(
        metric(
            &app,
            "herald_webhook_changes_other_number_total{channel=\"whatsapp\"}"
        )
        .await,
        3
    );

    // The very same messages to our number are acted on.
    assert_eq!(app.post_webhook(&command).await, StatusCode::OK);
    assert_eq!(app.engine.store.campaigns(None).await.unwrap().len(), 1);
    assert_eq!(app.post_webhook(&stop).await, StatusCode::OK);
    assert_eq!(app.contact("wa:15550001").await.consent, Consent::OptedOut);
    app.stop().await;
}
