//! Keyword and /regex/ triggers fire once per contact, answering the message that fired them.

use crate::support::console_app::ConsoleApp;

#[tokio::test]
async fn a_keyword_fires_once_per_contact_as_a_whole_word() {
    let app = ConsoleApp::start().await;
    app.setup(&[
        "/campaign new Price list",
        "/campaign text 1 Our prices: {{name}}, see example.com/prices",
    ])
    .await;
    let reply = app.admin("/trigger add price campaign 1").await;
    assert!(reply.contains("trigger 1"), "{reply}");
    app.setup(&["/contact add +15550001 name=Ann"]).await;

    app.customer("+15550001", "What's the PRICE?").await;
    app.settle().await;
    assert_eq!(
        app.received("+15550001"),
        vec!["Our prices: Ann, see example.com/prices"]
    );
    app.customer("+15550001", "price again please").await;
    app.customer("+15550001", "caprice").await;
    app.settle().await;
    assert_eq!(app.received("+15550001").len(), 1, "once per contact");

    app.customer("+15550002", "prices?").await;
    app.settle().await;
    assert!(app.received("+15550002").is_empty(), "not a whole word");
}

#[tokio::test]
async fn a_regex_fires_and_opted_out_contacts_are_not_answered() {
    let app = ConsoleApp::start().await;
    app.setup(&[
        "/campaign new Order status",
        "/campaign text 1 We are looking into your order",
        "/trigger add /order\\s*#?\\d+/ campaign 1",
    ])
    .await;
    app.customer("+15550001", "where is ORDER #123?").await;
    app.customer("+15550002", "STOP").await;
    app.customer("+15550002", "order 77").await;
    app.customer("+15550003", "I ordered nothing").await;
    app.settle().await;
    assert_eq!(
        app.received("+15550001"),
        vec!["We are looking into your order"]
    );
    assert_eq!(
        app.received("+15550002").len(),
        1,
        "only the STOP confirmation"
    );
    assert!(app.received("+15550003").is_empty());
    let list = app.admin("/trigger list").await;
    assert!(list.contains("/order"), "{list}");
    assert!(app.admin("/trigger remove 1").await.contains("removed"));
    app.customer("+15550004", "order 5").await;
    app.settle().await;
    assert!(app.received("+15550004").is_empty());
}

#[tokio::test]
async fn opt_words_do_not_fire_triggers() {
    let app = ConsoleApp::start().await;
    app.setup(&[
        "/campaign new Stop words",
        "/campaign text 1 You said stop",
        "/trigger add stop campaign 1",
    ])
    .await;
    app.customer("+15550001", "stop").await;
    app.settle().await;
    let got = app.received("+15550001");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("unsubscribed"));
}
