//! Media in campaigns on Telegram: an image the admin attaches with `/campaign media <id>` goes
//! to every subscribed contact with `sendPhoto` and the text as caption, uploaded by the first
//! message only and shown by the `file_id` Telegram answered after that; a linked video goes
//! with `sendVideo` for Telegram to fetch; reply buttons ride under the photo.

use serde_json::json;

use super::{TgApp, ADMIN, ANN, BOB};

const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00";
const CY: i64 = 102;

async fn three_subscribers(app: &TgApp) {
    app.customer(ANN, "Ann Lee", "/start").await;
    app.customer(BOB, "Bob Ray", "/start").await;
    app.customer(CY, "Cy Po", "/start").await;
    app.admin_setup(&[
        "/campaign new Offer",
        "/campaign audience 1 tg:100 tg:101 tg:102",
        "/campaign text 1 Hi {{name}}, 20% off this Friday",
    ])
    .await;
}

#[tokio::test]
async fn an_attached_photo_is_uploaded_once_and_sent_with_its_caption() {
    let app = TgApp::start().await;
    three_subscribers(&app).await;
    app.fake.add_file("AgAC-sale", JPEG);
    let before = app.fake.texts_to(ADMIN).len();
    let id = app.fake.photo(
        ADMIN,
        "Ada",
        "AgAC-sale",
        Some("/campaign media 1"),
        app.now(),
    );
    app.fake.wait_handled(id).await;
    let reply = app.fake.texts_to(ADMIN)[before..].join("\n");
    assert!(
        reply.starts_with("campaign 1 media: image image.jpg (1 KB)"),
        "{reply}"
    );
    app.admin_setup(&["/campaign buttons 1 Yes please|STOP", "/campaign send 1"])
        .await;
    app.settle().await;

    let photos: Vec<_> = app
        .fake
        .calls_of("sendPhoto")
        .into_iter()
        .filter(|c| c.ok() && [ANN, BOB, CY].contains(&c.chat_id().unwrap_or(0)))
        .collect();
    assert_eq!(photos.len(), 3, "{photos:?}");
    // The first carries the bytes; the others show the file_id it got.
    let uploaded: Vec<_> = photos.iter().filter(|c| !c.files.is_empty()).collect();
    assert_eq!(uploaded.len(), 1, "one upload for the campaign");
    assert_eq!(uploaded[0].files[0].data, JPEG);
    let file_id = uploaded[0].response["result"]["photo"][0]["file_id"]
        .as_str()
        .expect("a file_id")
        .to_string();
    for call in photos.iter().filter(|c| c.files.is_empty()) {
        assert_eq!(call.params["photo"], json!(file_id));
    }
    for (chat, name) in [(ANN, "Ann Lee"), (BOB, "Bob Ray"), (CY, "Cy Po")] {
        let call = photos
            .iter()
            .find(|c| c.chat_id() == Some(chat))
            .expect("a photo for each");
        assert_eq!(
            call.params["caption"],
            json!(format!("Hi {name}, 20% off this Friday"))
        );
        assert_eq!(
            call.params["reply_markup"],
            json!({"inline_keyboard": [
                [{"text": "Yes please", "callback_data": "Yes please"}],
                [{"text": "STOP", "callback_data": "STOP"}]
            ]})
        );
    }
    assert_eq!(app.report(1).await["sent"], "3");
    // Nothing went as plain text.
    assert!(app
        .fake
        .texts_to(ANN)
        .iter()
        .all(|t| !t.contains("20% off")));
}

#[tokio::test]
async fn a_linked_video_is_handed_to_telegram_to_fetch() {
    let app = TgApp::start().await;
    three_subscribers(&app).await;
    app.admin_setup(&[
        "/campaign media 1 https://cdn.example.com/clip.mp4",
        "/campaign send 1",
    ])
    .await;
    app.settle().await;
    let videos = app.fake.calls_of("sendVideo");
    assert_eq!(videos.iter().filter(|c| c.ok()).count(), 3, "{videos:?}");
    for call in &videos {
        assert!(call.files.is_empty());
        assert_eq!(
            call.params["video"],
            json!("https://cdn.example.com/clip.mp4")
        );
    }
    let to_bob = videos
        .iter()
        .find(|c| c.chat_id() == Some(BOB))
        .expect("Bob's video");
    assert_eq!(
        to_bob.params["caption"],
        json!("Hi Bob Ray, 20% off this Friday")
    );
}
