//! A command that writes several rows writes all of them or none: a write failing half-way (a
//! trigger the test installs stands for a full disk or a lost connection) leaves the data as it
//! was, and the admin is told nothing changed.

use herald::domain::Address;

use crate::support::console_app::ConsoleApp;
use crate::support::db::{heal, inject_failure};

const FAILED: &str =
    "something went wrong on our side; nothing was changed. Details are in the log.";

async fn contacts(app: &ConsoleApp) -> i64 {
    app.engine.store.count_contacts().await.expect("count")
}

#[tokio::test]
async fn contact_add_with_optin_is_one_write() {
    let app = ConsoleApp::start().await;
    let pool = app.engine.store.pool();
    // The last of its writes (the opt-in's history row) fails.
    inject_failure(pool, "INSERT", "consent_events", None).await;
    let reply = app
        .admin("/contact add +15550001 name=Ann labels=vip attr.city=Lisbon optin")
        .await;
    assert_eq!(reply, FAILED);
    assert_eq!(contacts(&app).await, 0, "no contact without its opt-in");

    // An existing contact keeps its fields when the update fails.
    heal(pool, "consent_events").await;
    app.setup(&["/contact add +15550001 name=Ann"]).await;
    inject_failure(pool, "INSERT", "consent_events", None).await;
    let reply = app
        .admin("/contact add +15550001 name=Bob labels=vip optin")
        .await;
    assert_eq!(reply, FAILED);
    let shown = app.admin("/contact show +15550001").await;
    assert!(shown.contains("name: Ann"), "{shown}");
    assert!(!shown.contains("vip"), "{shown}");
    assert!(!shown.contains("opted_in"), "{shown}");

    heal(pool, "consent_events").await;
    let reply = app
        .admin("/contact add +15550001 name=Bob labels=vip optin")
        .await;
    assert_eq!(
        reply,
        "contact updated: wa:15550001 Bob [opted_in] labels=vip"
    );
}

#[tokio::test]
async fn label_add_labels_every_contact_or_none() {
    let app = ConsoleApp::start().await;
    app.setup(&["/contact add +15550001", "/contact add +15550002"])
        .await;
    let pool = app.engine.store.pool();
    let second = app
        .engine
        .store
        .find_contact(&Address::parse("+15550002").expect("a number"))
        .await
        .expect("read")
        .expect("the second contact exists")
        .id;
    inject_failure(
        pool,
        "INSERT",
        "contact_labels",
        Some(&format!("NEW.contact_id = {second}")),
    )
    .await;
    assert_eq!(
        app.admin("/label add vip +15550001 +15550002").await,
        FAILED
    );
    heal(pool, "contact_labels").await;
    let shown = app.admin("/contact show +15550001").await;
    assert!(
        !shown.contains("vip"),
        "the first was not labelled alone: {shown}"
    );
    assert_eq!(
        app.admin("/label add vip +15550001 +15550002").await,
        "label vip added to 2 contact(s)"
    );
}

#[tokio::test]
async fn an_audience_of_new_numbers_is_stored_with_its_contacts_or_not_at_all() {
    let app = ConsoleApp::start().await;
    app.setup(&["/campaign new Hello", "/campaign audience 1 vip"])
        .await;
    let pool = app.engine.store.pool();
    // Both numbers are new; the campaign's own row fails after they were created.
    inject_failure(pool, "UPDATE", "campaigns", None).await;
    assert_eq!(
        app.admin("/campaign audience 1 +15550001 +15550002").await,
        FAILED
    );
    heal(pool, "campaigns").await;
    assert_eq!(
        contacts(&app).await,
        0,
        "no contacts for an audience not set"
    );
    let shown = app.admin("/campaign show 1").await;
    assert!(shown.contains("audience: vip"), "{shown}");

    // A drip enrolment of new numbers is one write too.
    app.setup(&["/drip new Welcome", "/drip step 2 0m text Hi"])
        .await;
    inject_failure(pool, "INSERT", "recipients", None).await;
    assert_eq!(app.admin("/drip enroll 2 +15550003").await, FAILED);
    heal(pool, "recipients").await;
    assert_eq!(
        contacts(&app).await,
        0,
        "no contact for an enrolment that failed"
    );

    assert_eq!(
        app.admin("/campaign audience 1 +15550001 +15550002").await,
        "campaign 1 audience: wa:15550001,wa:15550002 (2 contact(s) now, 2 of them new and not opted in yet)"
    );
}

#[tokio::test]
async fn a_campaign_goes_live_with_its_trigger_or_stays_a_draft() {
    let app = ConsoleApp::start().await;
    app.setup(&["/campaign new Promo", "/campaign text 1 Here is the code"])
        .await;
    let pool = app.engine.store.pool();
    inject_failure(pool, "INSERT", "triggers", None).await;
    assert_eq!(app.admin("/trigger add promo campaign 1").await, FAILED);
    heal(pool, "triggers").await;
    let shown = app.admin("/campaign show 1").await;
    assert!(shown.contains("status: draft"), "{shown}");
    assert!(!shown.contains("triggered"), "{shown}");

    // (PostgreSQL does not give back the id of the insert that rolled back.)
    let added = app.admin("/trigger add promo campaign 1").await;
    assert!(
        added.ends_with(" added: promo sends campaign 1 (once per contact)"),
        "{added}"
    );
    let shown = app.admin("/campaign show 1").await;
    assert!(shown.contains("status: sending"), "{shown}");
}

#[tokio::test]
async fn a_drip_step_never_exists_without_its_message() {
    let app = ConsoleApp::start().await;
    app.setup(&["/drip new Welcome"]).await;
    let pool = app.engine.store.pool();
    // The step and its message are one row: a failing write leaves no step.
    inject_failure(pool, "INSERT", "campaigns", None).await;
    assert_eq!(app.admin("/drip step 1 0m text Hi {{name}}").await, FAILED);
    heal(pool, "campaigns").await;
    let shown = app.admin("/drip show 1").await;
    assert!(!shown.contains("step 1"), "{shown}");
    assert_eq!(
        app.admin("/drip step 1 0m text Hi {{name}}").await,
        "drip 1 step 1: text, 0s after enrolment"
    );
    let shown = app.admin("/drip show 1").await;
    assert!(shown.contains("step 1"), "{shown}");
}
