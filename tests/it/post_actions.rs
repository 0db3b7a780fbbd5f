//! `/on` rules: what happens to a recipient's message changes the contact.

use herald::channels::{ChannelEvent, DeliveryStatus, Inbound, StatusUpdate};

use crate::support::console_app::{ClockExt, ConsoleApp};

async fn sent_campaign(app: &ConsoleApp) {
    app.setup(&[
        "/contact add +15550001 name=Ann labels=vip optin",
        "/contact add +15550002 name=Bob labels=vip optin",
    ])
    .await;
    app.customer("+15550001", "hi").await;
    app.customer("+15550002", "hi").await;
    app.setup(&[
        "/campaign new Ask",
        "/campaign audience 1 vip",
        "/campaign text 1 Interested in the new plan?",
        "/on 1 read label+=engaged",
        "/on 1 delivered attr.last_campaign=ask",
        "/on 1 replied label-=vip",
        "/on 1 clicked:interested attr.plan=new",
        "/campaign send 1",
    ])
    .await;
    app.settle().await;
}

async fn status(app: &ConsoleApp, recipient: i64, status: DeliveryStatus) {
    app.engine
        .handle_event(ChannelEvent::Status(StatusUpdate {
            provider_id: format!("wamid.test{recipient}"),
            callback: Some(format!("r{recipient}:c1")),
            status,
            at: app.clock.now_utc(),
            recipient: None,
        }))
        .await
        .unwrap();
}

#[tokio::test]
async fn statuses_replies_and_clicks_apply_the_campaigns_rules() {
    let app = ConsoleApp::start().await;
    sent_campaign(&app).await;
    let show = app.admin("/campaign show 1").await;
    assert!(show.contains("on read: label+=engaged"), "{show}");

    // Ann's message is read (Meta may skip the delivered status): both rules apply.
    status(&app, 1, DeliveryStatus::Read).await;
    let ann = app.admin("/contact show +15550001").await;
    assert!(ann.contains("engaged"), "{ann}");
    assert!(ann.contains("attr.last_campaign: ask"), "{ann}");
    assert_eq!(app.count(1, "read").await, 1);
    assert_eq!(app.count(1, "delivered").await, 1);

    // Bob replies by pressing a button.
    app.engine
        .handle_inbound(Inbound {
            from: "+15550002".into(),
            name: None,
            text: Some("Interested".into()),
            button: Some("interested".into()),
            at: app.clock.now_utc(),
            provider_id: Some("wamid.in1".into()),
            file: None,
        })
        .await
        .unwrap();
    let bob = app.admin("/contact show +15550002").await;
    assert!(bob.contains("attr.plan: new"), "{bob}");
    assert!(bob.contains("labels: -"), "replied removed vip: {bob}");
    assert!(!bob.contains("engaged"), "{bob}");
    assert_eq!(app.count(1, "replied").await, 1);
}

#[tokio::test]
async fn an_optout_rule_stops_later_campaigns() {
    let app = ConsoleApp::start().await;
    sent_campaign(&app).await;
    app.admin("/on 1 read optout").await;
    status(&app, 2, DeliveryStatus::Read).await;
    let bob = app.admin("/contact show +15550002").await;
    assert!(bob.contains("consent: opted_out"), "{bob}");
    assert!(bob.contains("campaign_rule"), "{bob}");
}

#[tokio::test]
async fn malformed_rules_are_refused() {
    let app = ConsoleApp::start().await;
    app.setup(&["/campaign new X"]).await;
    for line in [
        "/on 1 opened label+=x",
        "/on 1 read label*=x",
        "/on 1 read",
        "/on x read optout",
    ] {
        let reply = app.admin(line).await;
        assert!(reply.contains("Usage: /on"), "{line}: {reply}");
    }
    assert!(app
        .admin("/on 9 read optout")
        .await
        .contains("no campaign 9"));
}
