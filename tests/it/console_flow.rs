//! The README's console walkthrough, as an admin and customers would live it.

use crate::support::console_app::ConsoleApp;

async fn spring_sale(app: &ConsoleApp) {
    app.setup(&[
        "/contact add +15550001 name=Ann labels=vip optin",
        "/contact add +15550002 name=Bob labels=vip optin",
        "/contact add +15550003 name=Cy labels=vip",
    ])
    .await;
    app.customer("+15550001", "hi").await;
    app.customer("+15550002", "hi").await;
    app.setup(&[
        "/campaign new Spring sale",
        "/campaign audience 1 vip",
        "/campaign text 1 Hello {{name}}, 20% off today",
    ])
    .await;
    let reply = app.admin("/campaign send 1").await;
    assert!(reply.contains("sending"), "{reply}");
    app.settle().await;
}

#[tokio::test]
async fn spring_sale_reaches_opted_in_contacts_once() {
    let app = ConsoleApp::start().await;
    spring_sale(&app).await;
    assert_eq!(app.received("+15550001"), vec!["Hello Ann, 20% off today"]);
    assert_eq!(app.received("+15550002"), vec!["Hello Bob, 20% off today"]);
    assert!(app.received("+15550003").is_empty());
    let report = app.report(1).await;
    assert_eq!(report["status"], "completed");
    assert_eq!(report["targeted"], "3");
    assert_eq!(report["sent"], "2");
    assert_eq!(report["skipped"], "1");
    assert_eq!(report["skipped.no_consent"], "1");

    // The report survives a restart on the same database.
    let later = app.restart().await;
    let report = later.report(1).await;
    assert_eq!(report["sent"], "2");
    assert_eq!(report["skipped.no_consent"], "1");
}

#[tokio::test]
async fn stop_confirms_once_and_later_campaigns_skip_as_opted_out() {
    let app = ConsoleApp::start().await;
    spring_sale(&app).await;
    app.customer("+15550002", "Stop.").await;
    let bob = app.received("+15550002");
    assert_eq!(bob.len(), 2, "{bob:?}");
    assert!(bob[1].to_lowercase().contains("unsubscribed"), "{bob:?}");

    app.setup(&[
        "/campaign new Second",
        "/campaign audience 2 vip",
        "/campaign text 2 Again {{name}}",
        "/campaign send 2",
    ])
    .await;
    app.settle().await;
    assert_eq!(app.received("+15550002").len(), 2, "Bob got nothing more");
    assert_eq!(app.received("+15550001").last().unwrap(), "Again Ann");
    let report = app.report(2).await;
    assert_eq!(report["skipped.opted_out"], "1");
    assert_eq!(report["skipped.no_consent"], "1");
    assert_eq!(report["sent"], "1");
}
