//! Reply buttons and list menus on a text campaign (`/campaign buttons`, `/campaign menu`): what
//! an in-window WhatsApp contact receives, who is skipped, what a tap does (`replied`,
//! `clicked:<title>`, an opt-out word opts out), and the limits refused when typed. The Telegram
//! side is in `telegram/interactive.rs`.

use herald::store::Consent;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::console_app::{ClockExt, ConsoleApp};
use crate::support::fake_graph::webhooks;
use crate::support::run_app::RunApp;

const ANN: &str = "15550001";
const BOB: &str = "15550002";

/// Ann and Bob are opted-in VIPs; only Ann has written in (her window is open). Campaign 1 is a
/// text for them, with whatever `extra` commands set.
async fn campaign_for_ann_and_bob(app: &RunApp, extra: &[&str]) {
    app.setup(&[
        "/contact add +15550001 name=Ann labels=vip optin",
        "/contact add +15550002 name=Bob labels=vip optin",
    ])
    .await;
    app.customer_says(ANN, "hi").await;
    app.setup(&[
        "/campaign new Offer",
        "/campaign audience 1 vip",
        "/campaign text 1 Hi {{name}}, want 20% off this Friday?",
    ])
    .await;
    app.setup(extra).await;
    app.setup(&["/campaign send 1"]).await;
    app.wait_for_campaign_sends(1).await;
    app.wait_for_idle(1).await;
}

async fn labels_of(app: &RunApp, address: &str) -> Vec<String> {
    app.contact(address)
        .await
        .labels
        .iter()
        .map(|l| l.as_str().to_string())
        .collect()
}

#[tokio::test]
async fn a_buttons_campaign_reaches_the_window_as_interactive_and_a_press_counts() {
    let app = RunApp::start().await;
    campaign_for_ann_and_bob(
        &app,
        &[
            "/campaign buttons 1 Yes please|Not now|STOP",
            "/on 1 \"clicked:Yes please\" label+=keen",
            "/on 1 clicked:later label+=later",
        ],
    )
    .await;

    let sent = app.campaign_send_to(ANN);
    let callback = sent.callback().expect("callback data").to_string();
    assert_eq!(
        sent.body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": ANN,
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "Hi Ann, want 20% off this Friday?"},
                "action": {"buttons": [
                    {"type": "reply", "reply": {"id": "Yes please", "title": "Yes please"}},
                    {"type": "reply", "reply": {"id": "Not now", "title": "Not now"}},
                    {"type": "reply", "reply": {"id": "STOP", "title": "STOP"}}
                ]}
            },
            "biz_opaque_callback_data": callback
        })
    );
    // Bob never wrote: interactive messages are free form, so he is skipped like for text.
    let report = app.report(1).await;
    assert_eq!(report["skipped.outside_window"], "1");
    assert_eq!(app.fake.count_for(BOB), 0);

    // Ann taps "Yes please": a reply, and the clicked rule fires (not the other one).
    let press = webhooks::interactive_reply(
        ANN,
        "Ann",
        "button_reply",
        "Yes please",
        "Yes please",
        &app.wamid(),
        app.now_secs(),
    );
    assert_eq!(app.post_webhook(&press).await, StatusCode::OK);
    let report = app.report(1).await;
    assert_eq!(report["replied"], "1");
    assert_eq!(report["clicked.Yes please"], "1");
    assert_eq!(report["clicked.Not now"], "0");
    assert_eq!(report["clicked.STOP"], "0");
    let labels = labels_of(&app, "wa:15550001").await;
    assert!(labels.contains(&"keen".to_string()), "{labels:?}");
    assert!(!labels.contains(&"later".to_string()), "{labels:?}");
    assert_eq!(
        app.contact("wa:15550001").await.consent,
        Consent::OptedIn,
        "a button that is no opt-out word keeps the contact subscribed"
    );
    // The exported report says who tapped what.
    app.admin("/campaign report 1 csv").await;
    let csv = String::from_utf8(app.fake.uploads().last().expect("the CSV").bytes.clone())
        .expect("UTF-8");
    let mut lines = csv.lines();
    assert!(
        lines.next().unwrap().ends_with(",replied_at,clicked"),
        "{csv}"
    );
    let ann = lines
        .find(|l| l.starts_with("wa:15550001,"))
        .expect("Ann's row");
    assert!(ann.ends_with(",Yes please"), "{ann}");
    app.stop().await;
}

#[tokio::test]
async fn a_menu_campaign_is_a_list_message_and_a_chosen_row_fires_its_rule() {
    let app = RunApp::start().await;
    campaign_for_ann_and_bob(
        &app,
        &[
            "/campaign menu 1 \"Pick a size\" Small|Medium|Large",
            "/on 1 clicked:medium label+=size_m",
        ],
    )
    .await;

    let sent = app.campaign_send_to(ANN);
    assert_eq!(sent.body["type"], "interactive");
    assert_eq!(
        sent.body["interactive"],
        json!({
            "type": "list",
            "body": {"text": "Hi Ann, want 20% off this Friday?"},
            "action": {
                "button": "Pick a size",
                "sections": [{"rows": [
                    {"id": "Small", "title": "Small"},
                    {"id": "Medium", "title": "Medium"},
                    {"id": "Large", "title": "Large"}
                ]}]
            }
        })
    );
    assert_eq!(app.report(1).await["skipped.outside_window"], "1");

    let choice = webhooks::interactive_reply(
        ANN,
        "Ann",
        "list_reply",
        "Medium",
        "Medium",
        &app.wamid(),
        app.now_secs(),
    );
    assert_eq!(app.post_webhook(&choice).await, StatusCode::OK);
    let report = app.report(1).await;
    assert_eq!(report["replied"], "1");
    assert_eq!(report["clicked.Medium"], "1");
    assert_eq!(report["clicked.Small"], "0");
    let labels = labels_of(&app, "wa:15550001").await;
    assert!(labels.contains(&"size_m".to_string()), "{labels:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_stop_button_opts_out_like_typing_stop() {
    let app = RunApp::start().await;
    campaign_for_ann_and_bob(&app, &["/campaign buttons 1 Yes|STOP"]).await;
    let press = webhooks::interactive_reply(
        ANN,
        "Ann",
        "button_reply",
        "STOP",
        "STOP",
        &app.wamid(),
        app.now_secs(),
    );
    assert_eq!(app.post_webhook(&press).await, StatusCode::OK);
    assert_eq!(app.contact("wa:15550001").await.consent, Consent::OptedOut);
    let last = app.fake.accepted();
    let last = last.last().unwrap();
    assert_eq!(last.to(), Some(ANN));
    assert!(last.text().unwrap().contains("unsubscribed"));
    app.stop().await;
}

#[tokio::test]
async fn the_older_button_type_counts_as_a_click_too() {
    let app = RunApp::start().await;
    campaign_for_ann_and_bob(
        &app,
        &[
            "/campaign buttons 1 Yes|No",
            "/on 1 clicked:yes label+=keen",
        ],
    )
    .await;
    let press = webhooks::quick_reply(ANN, "Ann", "Yes", "Yes", &app.wamid(), app.now_secs());
    assert_eq!(app.post_webhook(&press).await, StatusCode::OK);
    assert_eq!(app.report(1).await["replied"], "1");
    assert!(labels_of(&app, "wa:15550001")
        .await
        .contains(&"keen".to_string()));
    app.stop().await;
}

/// Every refusal is one line (`<reason>. Usage: ...`) and `/campaign show` reads the same after.
#[tokio::test]
async fn over_limit_buttons_and_menus_answer_one_line_and_change_nothing() {
    let app = ConsoleApp::start().await;
    app.setup(&[
        "/campaign new Offer",
        "/campaign text 1 Want 20% off?",
        "/campaign buttons 1 Yes|No",
    ])
    .await;
    let before = app.admin("/campaign show 1").await;
    assert!(before.contains("buttons: Yes | No"), "{before}");
    let eleven_rows = (1..=11)
        .map(|i| format!("Row {i}"))
        .collect::<Vec<_>>()
        .join("|");
    let refused = [
        (
            "/campaign buttons 1 A|B|C|D".to_string(),
            "4 buttons given, at most 3",
        ),
        (
            format!("/campaign buttons 1 {}", "x".repeat(21)),
            "button 1 is 21 characters, at most 20",
        ),
        (
            "/campaign buttons 1 Yes|yes".to_string(),
            "button \"yes\" is given twice",
        ),
        (
            "/campaign buttons 1 Yes||No".to_string(),
            "button 2 is empty",
        ),
        (
            format!("/campaign menu 1 Pick {eleven_rows}"),
            "11 rows given, at most 10",
        ),
        (
            format!("/campaign menu 1 Pick {}", "r".repeat(25)),
            "row 1 is 25 characters, at most 24",
        ),
        (
            format!("/campaign menu 1 {} Small|Large", "b".repeat(21)),
            "the menu button text is 21 characters, at most 20",
        ),
    ];
    for (command, reason) in refused {
        let reply = app.admin(&command).await;
        assert_eq!(reply.lines().count(), 1, "{command}: {reply}");
        assert!(reply.starts_with(reason), "{command}: {reply}");
        assert!(reply.contains("Usage: /campaign "), "{command}: {reply}");
        assert_eq!(app.admin("/campaign show 1").await, before, "{command}");
    }
}

#[tokio::test]
async fn buttons_go_with_text_only_and_a_text_too_long_for_them_is_refused() {
    let app = ConsoleApp::start().await;
    app.setup(&[
        "/template add spring_sale en marketing Hi {{1}}",
        "/campaign new Templated",
        "/campaign template 1 spring_sale en {{name}}",
        "/campaign new Long",
        &format!("/campaign text 2 {}", "x".repeat(1025)),
        "/campaign new Short",
        "/campaign text 3 Pick one",
        "/campaign menu 3 Sizes S|M|L",
    ])
    .await;
    let show = app.admin("/campaign show 1").await;
    let reply = app.admin("/campaign buttons 1 Yes|No").await;
    assert!(reply.contains("sends a template"), "{reply}");
    assert_eq!(app.admin("/campaign show 1").await, show);

    let show = app.admin("/campaign show 2").await;
    let reply = app.admin("/campaign buttons 2 Yes|No").await;
    assert!(reply.contains("at most 1024 characters"), "{reply}");
    assert_eq!(app.admin("/campaign show 2").await, show);

    let show = app.admin("/campaign show 3").await;
    assert!(show.contains("menu: Sizes [S | M | L]"), "{show}");
    let reply = app
        .admin(&format!("/campaign text 3 {}", "x".repeat(1025)))
        .await;
    assert!(reply.contains("at most 1024 characters"), "{reply}");
    assert_eq!(app.admin("/campaign show 3").await, show);

    // Buttons replace a menu, a preview names them, and the console prints them after the text.
    app.setup(&["/campaign buttons 3 Yes|No"]).await;
    let show = app.admin("/campaign show 3").await;
    assert!(show.contains("buttons: Yes | No"), "{show}");
    assert!(!show.contains("menu:"), "{show}");
    app.setup(&["/contact add +15550001 name=Ann labels=vip optin"])
        .await;
    app.customer("+15550001", "hi").await;
    app.setup(&["/campaign audience 3 vip"]).await;
    let preview = app.admin("/campaign preview 3").await;
    assert!(
        preview.contains("under the text: buttons: Yes | No"),
        "{preview}"
    );
    app.setup(&["/campaign send 3"]).await;
    app.settle().await;
    assert_eq!(app.received("+15550001"), vec!["Pick one".to_string()]);
    let transcript = app.console.transcript();
    let at = transcript
        .iter()
        .position(|l| l == "-> +15550001: Pick one")
        .expect("the text was printed");
    assert_eq!(transcript[at + 1], "   buttons: Yes | No");
}

#[tokio::test]
async fn products_go_out_as_a_product_or_a_product_list_from_the_catalogue() {
    let app = RunApp::start().await;
    campaign_for_ann_and_bob(&app, &["/campaign product 1 1234567890 sku-red"]).await;
    let sent = app.campaign_send_to(ANN);
    assert_eq!(
        sent.body["interactive"],
        json!({
            "type": "product",
            "body": {"text": "Hi Ann, want 20% off this Friday?"},
            "action": {"catalog_id": "1234567890", "product_retailer_id": "sku-red"}
        })
    );
    assert_eq!(app.report(1).await["skipped.outside_window"], "1");

    // Several products: a product list under the campaign's title.
    app.setup(&[
        "/campaign new Spring colours",
        "/campaign audience 2 wa:15550001",
        "/campaign text 2 Our spring colours are in",
        "/campaign product 2 1234567890 sku-red, sku-blue,sku-green",
        "/campaign send 2",
    ])
    .await;
    app.wait_for_campaign_sends(2).await;
    app.wait_for_idle(2).await;
    let list = app
        .campaign_sends()
        .into_iter()
        .rfind(|r| r.to() == Some(ANN))
        .unwrap();
    assert_eq!(
        list.body["interactive"],
        json!({
            "type": "product_list",
            "header": {"type": "text", "text": "Spring colours"},
            "body": {"text": "Our spring colours are in"},
            "action": {"catalog_id": "1234567890", "sections": [{
                "title": "Spring colours",
                "product_items": [
                    {"product_retailer_id": "sku-red"},
                    {"product_retailer_id": "sku-blue"},
                    {"product_retailer_id": "sku-green"}
                ]
            }]}
        })
    );
    app.stop().await;
}

#[tokio::test]
async fn over_limit_products_answer_one_line_and_change_nothing() {
    let app = ConsoleApp::start().await;
    app.setup(&["/campaign new Offer", "/campaign text 1 New in"])
        .await;
    let before = app.admin("/campaign show 1").await;
    let thirty_one = (1..=31)
        .map(|i| format!("sku-{i}"))
        .collect::<Vec<_>>()
        .join(",");
    for (command, reason) in [
        (
            format!("/campaign product 1 123 {thirty_one}"),
            "31 products given, at most 30",
        ),
        (
            "/campaign product 1 12ab sku-1".to_string(),
            "the catalog id must be digits",
        ),
        (
            "/campaign product 1 123 sku-1,sku-1".to_string(),
            "retailer id \"sku-1\" is given twice",
        ),
    ] {
        let reply = app.admin(&command).await;
        assert_eq!(reply.lines().count(), 1, "{command}: {reply}");
        assert!(reply.starts_with(reason), "{command}: {reply}");
        assert_eq!(app.admin("/campaign show 1").await, before, "{command}");
    }
    let reply = app
        .admin(&format!(
            "/campaign product 1 123 {}",
            thirty_one.rsplit_once(',').unwrap().0
        ))
        .await;
    assert!(reply.contains("WhatsApp only"), "{reply}");
    assert!(app
        .admin("/campaign show 1")
        .await
        .contains("products: catalog 123 [sku-1, sku-2,"));
}

#[tokio::test]
async fn each_run_of_a_recurring_campaign_keeps_its_buttons_and_counts_their_taps() {
    let app = ConsoleApp::start().await;
    app.setup(&["/contact add +15550001 name=Ann labels=news optin"])
        .await;
    app.customer("+15550001", "hi").await;
    app.setup(&[
        "/campaign new Daily deal",
        "/campaign audience 1 news",
        "/campaign text 1 Today's deal, {{name}}",
        "/campaign buttons 1 Yes|No",
        "/campaign repeat 1 every 1d at 09:00 until 2026-11-23",
    ])
    .await;
    app.clock.advance(chrono::Duration::hours(23));
    app.settle().await;
    assert_eq!(app.received("+15550001"), vec!["Today's deal, Ann"]);
    assert!(app
        .console
        .transcript()
        .contains(&"   buttons: Yes | No".to_string()));
    let run = app.admin("/campaign show 2").await;
    assert!(run.contains("run: #1 of campaign 1"), "{run}");
    assert!(run.contains("buttons: Yes | No"), "{run}");

    app.engine
        .handle_inbound(herald::channels::Inbound {
            from: "+15550001".into(),
            name: None,
            text: Some("Yes".into()),
            button: Some("Yes".into()),
            at: app.clock.now_utc(),
            provider_id: None,
            file: None,
        })
        .await
        .unwrap();
    let report = app.report(1).await;
    assert_eq!(report["replied"], "1");
    assert_eq!(report["clicked.Yes"], "1");
    assert_eq!(report["clicked.No"], "0");
}

#[tokio::test]
async fn buttons_none_sends_the_text_alone_again() {
    let app = RunApp::start().await;
    app.setup(&[
        "/campaign new Offer",
        "/campaign text 1 Hi {{name}}",
        "/campaign menu 1 Sizes S|M|L",
    ])
    .await;
    assert!(app
        .admin("/campaign show 1")
        .await
        .contains("menu: Sizes [S | M | L]"));
    assert_eq!(
        app.admin("/campaign buttons 1 none").await,
        "campaign 1 sends its text without buttons, menu or products now"
    );
    let show = app.admin("/campaign show 1").await;
    assert!(
        !show.contains("menu:") && !show.contains("buttons:"),
        "{show}"
    );
    assert_eq!(
        app.admin("/campaign buttons 1 none").await,
        "campaign 1 has no buttons, menu or products"
    );
    app.stop().await;
}
