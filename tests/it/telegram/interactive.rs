//! Reply buttons and list menus on Telegram: an inline keyboard under the campaign's text, one
//! button per title or row, and a press answered (answerCallbackQuery) and counted as a reply and
//! a click. Telegram has no service window, so every subscribed contact gets them.

use herald::store::Consent;
use serde_json::json;

use super::{TgApp, ANN, BOB};

/// Ann and Bob subscribed with /start; campaign 1 is a text for both, with `extra` commands.
async fn campaign_for_ann_and_bob(app: &TgApp, extra: &[&str]) {
    app.customer(ANN, "Ann Lee", "/start").await;
    app.customer(BOB, "Bob Ray", "/start").await;
    app.admin_setup(&[
        "/campaign new Offer",
        "/campaign audience 1 tg:100 tg:101",
        "/campaign text 1 Hi {{name}}, want 20% off?",
    ])
    .await;
    app.admin_setup(extra).await;
    app.admin_setup(&["/campaign send 1"]).await;
    app.settle().await;
}

/// The campaign message sent to `chat`: its message id and its inline keyboard.
fn campaign_message(app: &TgApp, chat: i64) -> (i64, serde_json::Value) {
    let call = app
        .fake
        .calls_of("sendMessage")
        .into_iter()
        .rfind(|c| c.chat_id() == Some(chat) && c.text().is_some_and(|t| t.contains("20% off")))
        .expect("the campaign message");
    (
        call.message_id().unwrap(),
        call.params["reply_markup"].clone(),
    )
}

fn labels(contact: &herald::store::Contact) -> Vec<String> {
    contact
        .labels
        .iter()
        .map(|l| l.as_str().to_string())
        .collect()
}

#[tokio::test]
async fn buttons_are_an_inline_keyboard_and_a_press_is_answered_replied_and_clicked() {
    let app = TgApp::start().await;
    campaign_for_ann_and_bob(
        &app,
        &[
            "/campaign buttons 1 Yes please|Not now|STOP",
            "/on 1 \"clicked:Not now\" label+=later",
        ],
    )
    .await;
    for chat in [ANN, BOB] {
        let (_, keyboard) = campaign_message(&app, chat);
        assert_eq!(
            keyboard,
            json!({"inline_keyboard": [
                [{"text": "Yes please", "callback_data": "Yes please"}],
                [{"text": "Not now", "callback_data": "Not now"}],
                [{"text": "STOP", "callback_data": "STOP"}]
            ]})
        );
    }
    assert_eq!(app.report(1).await["sent"], "2");

    let (message_id, _) = campaign_message(&app, ANN);
    let (update, query_id) = app.fake.press(ANN, "Ann", message_id, "Not now");
    app.fake.wait_handled(update).await;
    let answered = app.fake.calls_of("answerCallbackQuery");
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].params["callback_query_id"], json!(query_id));
    assert_eq!(app.report(1).await["replied"], "1");
    assert!(labels(&app.contact(ANN).await).contains(&"later".to_string()));

    // Bob taps STOP: he is out, as if he had typed it.
    let (message_id, _) = campaign_message(&app, BOB);
    let (update, _) = app.fake.press(BOB, "Bob", message_id, "STOP");
    app.fake.wait_handled(update).await;
    assert_eq!(app.contact(BOB).await.consent, Consent::OptedOut);
    assert!(app
        .fake
        .texts_to(BOB)
        .last()
        .unwrap()
        .contains("unsubscribed"));
    app.stop().await;
}

#[tokio::test]
async fn a_menu_is_one_inline_button_per_row_and_a_chosen_row_fires_its_rule() {
    let app = TgApp::start().await;
    campaign_for_ann_and_bob(
        &app,
        &[
            "/campaign menu 1 Sizes Small|Medium|Large",
            "/on 1 clicked:medium label+=size_m",
        ],
    )
    .await;
    let (message_id, keyboard) = campaign_message(&app, ANN);
    assert_eq!(
        keyboard,
        json!({"inline_keyboard": [
            [{"text": "Small", "callback_data": "Small"}],
            [{"text": "Medium", "callback_data": "Medium"}],
            [{"text": "Large", "callback_data": "Large"}]
        ]})
    );
    let (update, _) = app.fake.press(ANN, "Ann", message_id, "Medium");
    app.fake.wait_handled(update).await;
    assert_eq!(app.fake.calls_of("answerCallbackQuery").len(), 1);
    let report = app.report(1).await;
    assert_eq!(report["replied"], "1");
    assert_eq!(report["clicked.Medium"], "1");
    assert_eq!(report["clicked.Large"], "0");
    assert!(labels(&app.contact(ANN).await).contains(&"size_m".to_string()));
    assert!(!labels(&app.contact(BOB).await).contains(&"size_m".to_string()));
    app.stop().await;
}

#[tokio::test]
async fn a_title_longer_than_64_bytes_is_cut_for_telegram_and_its_press_still_fires_the_rule() {
    let pizza = "🍕".repeat(20); // 20 characters, 80 bytes
    let app = TgApp::start().await;
    campaign_for_ann_and_bob(
        &app,
        &[
            &format!("/campaign buttons 1 Yes|{pizza}"),
            &format!("/on 1 clicked:{pizza} label+=pizza"),
        ],
    )
    .await;
    let (message_id, keyboard) = campaign_message(&app, ANN);
    let data = keyboard["inline_keyboard"][1][0]["callback_data"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(keyboard["inline_keyboard"][1][0]["text"], json!(pizza));
    assert_eq!(
        data,
        "🍕".repeat(16),
        "cut to 64 bytes at a character boundary"
    );

    let (update, _) = app.fake.press(ANN, "Ann", message_id, &data);
    app.fake.wait_handled(update).await;
    let report = app.report(1).await;
    assert_eq!(report["replied"], "1");
    assert_eq!(report[&format!("clicked.{pizza}")], "1");
    assert!(labels(&app.contact(ANN).await).contains(&"pizza".to_string()));
    app.stop().await;
}

#[tokio::test]
async fn a_product_campaign_skips_telegram_contacts_with_a_reason() {
    let app = TgApp::start().await;
    campaign_for_ann_and_bob(&app, &["/campaign product 1 1234567890 sku-red"]).await;
    let report = app.report(1).await;
    assert_eq!(report["skipped.channel_unsupported"], "2");
    assert_eq!(report["sent"], "0");
    assert!(app
        .fake
        .calls_of("sendMessage")
        .iter()
        .all(|c| !c.text().is_some_and(|t| t.contains("20% off"))));
    app.stop().await;
}
