//! One spelling per thing (SPEC §2): a phone number is one contact however it was typed or
//! where it came from, and labels and attribute keys are case-insensitive.

use herald::store::Consent;

use crate::support::console_app::ConsoleApp;
use crate::support::run_app::{count, RunApp};

#[tokio::test]
async fn a_contact_imported_with_a_plus_is_opted_out_by_stop_on_whatsapp() {
    let app = RunApp::start().await;
    // Pasted as a CSV by the admin, as `herald contacts import` would read it: `+` and spaces.
    let reply = app
        .admin("/contact import\naddress,name,labels,consent\n+1 555-999-0001,Ann,vip,yes\n+15559990002,Bob,vip,yes")
        .await;
    assert!(reply.contains("2 added"), "{reply}");
    app.customer_says("15559990001", "hi").await;
    app.customer_says("15559990002", "hi").await;

    // The customer writes STOP on WhatsApp, where Meta names them by digits alone.
    app.customer_says("15559990001", "STOP").await;
    let ann = app.contact("+15559990001").await;
    assert_eq!(ann.address, "wa:15559990001");
    assert_eq!(ann.consent, Consent::OptedOut);
    assert_eq!(
        ann.name.as_deref(),
        Some("Ann"),
        "the imported contact, not a new one"
    );

    app.setup(&[
        "/campaign new After stop",
        "/campaign audience 1 vip",
        "/campaign text 1 Hello {{name}}",
    ])
    .await;
    let reply = app.admin("/campaign send 1").await;
    assert_eq!(reply, "campaign 1 sending to 2 recipient(s)");
    app.wait_for_idle(1).await;
    let report = app.report(1).await;
    assert_eq!(count(&report, "sent"), 1, "{report:?}");
    assert_eq!(count(&report, "skipped.opted_out"), 1, "{report:?}");
    let to: Vec<String> = app
        .campaign_sends()
        .iter()
        .filter_map(|r| r.to().map(str::to_string))
        .collect();
    assert_eq!(to, ["15559990002"]);
}

#[tokio::test]
async fn labels_and_attribute_keys_are_case_insensitive() {
    let app = ConsoleApp::start().await;
    app.setup(&[
        "/contact add +15550001 name=Ann labels=VIP attr.City=Lisbon optin",
        "/contact add +15550002 name=Bob labels=vip attr.city=Lisbon optin",
    ])
    .await;
    app.customer("+15550001", "hi").await;
    app.customer("+15550002", "hi").await;
    app.setup(&[
        "/campaign new T",
        "/campaign text 1 Hi {{name}} from {{attr.city}}",
    ])
    .await;

    let reply = app.admin("/campaign audience 1 vip").await;
    assert!(reply.contains("(2 contact(s) now"), "{reply}");
    let reply = app.admin("/campaign audience 1 attr.city=Lisbon").await;
    assert!(reply.contains("(2 contact(s) now"), "{reply}");
    let reply = app.admin("/campaign audience 1 VIP attr.CITY=Lisbon").await;
    assert!(reply.contains("(2 contact(s) now"), "{reply}");
    // Values keep their case.
    let reply = app.admin("/campaign audience 1 attr.city=lisbon").await;
    assert!(reply.contains("(0 contact(s) now"), "{reply}");

    app.admin("/campaign audience 1 vip").await;
    app.admin("/campaign send 1").await;
    app.settle().await;
    assert_eq!(app.received("+15550001"), ["Hi Ann from Lisbon"]);
    assert_eq!(app.received("+15550002"), ["Hi Bob from Lisbon"]);
}

#[tokio::test]
async fn every_spelling_of_a_number_updates_one_contact() {
    let app = ConsoleApp::start().await;
    let first = app.admin("/contact add +15550001 name=Ann").await;
    assert!(first.starts_with("contact added"), "{first}");
    for (typed, field) in [
        ("15550001", "labels=vip"),
        ("wa:15550001", "lang=pt-br"),
        ("\"+1 555-0001\"", "optin"),
    ] {
        let reply = app.admin(&format!("/contact add {typed} {field}")).await;
        assert!(reply.starts_with("contact updated"), "{typed}: {reply}");
    }
    let shown = app.admin("/contact show 1-555-0001").await;
    assert!(shown.contains("wa:15550001"), "{shown}");
    assert!(shown.contains("Ann"), "{shown}");
    assert!(shown.contains("opted_in"), "{shown}");
    assert!(shown.contains("pt_BR"), "{shown}");

    // A customer message under any spelling is that contact's, and the console prints the
    // number as its users type it.
    app.customer("wa:15550001", "hi").await;
    app.setup(&[
        "/campaign new T",
        "/campaign audience 1 15550001",
        "/campaign text 1 Hi {{name}}",
        "/campaign send 1",
    ])
    .await;
    app.settle().await;
    assert_eq!(app.received("+15550001"), ["Hi Ann"]);
    assert_eq!(app.count(1, "targeted").await, 1);
}
