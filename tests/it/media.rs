//! Media in campaigns on WhatsApp (SPEC section 5), herald run against the fake Graph API: an
//! image set by an attached file reaches in-window contacts as an `image` message with the text
//! as caption (uploaded once, shown by its media id) and skips the others as `outside_window`;
//! a link goes as a link; a template whose header is IMAGE carries it as its header parameter;
//! every media the campaign cannot carry is refused with one line and nothing changed. The
//! Telegram side is in `telegram/media.rs`.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::fake_graph::webhooks;
use crate::support::run_app::{RunApp, ADMIN};

const ANN: &str = "15550001";
const BOB: &str = "15550002";
const CY: &str = "15550003";

/// The first bytes of a JPEG: all herald looks at to call a file an image.
const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00";

const WABA: &str = "102290129340398";

/// Ann, Bob and Cy are opted-in VIPs; Ann and Cy have written in (their windows are open), Bob
/// has not. Campaign 1 is a text for them.
async fn three_vips(app: &RunApp) {
    app.setup(&[
        "/contact add +15550001 name=Ann labels=vip optin",
        "/contact add +15550002 name=Bob labels=vip optin",
        "/contact add +15550003 name=Cy labels=vip optin",
    ])
    .await;
    app.customer_says(ANN, "hi").await;
    app.customer_says(CY, "hello").await;
    app.setup(&[
        "/campaign new Spring sale",
        "/campaign audience 1 vip",
        "/campaign text 1 Hi {{name}}, 20% off this Friday",
    ])
    .await;
}

/// The admin sends a file of `kind` with `caption`; returns herald's answer.
async fn admin_sends(
    app: &RunApp,
    kind: &str,
    media_id: &str,
    mime: &str,
    caption: &str,
) -> String {
    let before = app.admin_texts().len();
    let body = webhooks::media(
        ADMIN,
        kind,
        media_id,
        mime,
        None,
        Some(caption),
        &app.wamid(),
        app.now_secs(),
    );
    assert_eq!(app.post_webhook(&body).await, StatusCode::OK);
    app.admin_texts()[before..].join("\n")
}

async fn send_and_wait(app: &RunApp, n: usize) {
    app.setup(&["/campaign send 1"]).await;
    app.wait_for_campaign_sends(n).await;
    app.wait_for_idle(1).await;
}

#[tokio::test]
async fn an_attached_image_reaches_the_window_as_an_image_with_caption_uploaded_once() {
    let app = RunApp::start().await;
    three_vips(&app).await;
    app.fake.add_media("700100", "image/jpeg", JPEG);
    let reply = admin_sends(&app, "image", "700100", "image/jpeg", "/campaign media 1").await;
    assert!(
        reply.starts_with(
            "campaign 1 media: image image.jpg (1 KB); sent with the text as its caption"
        ),
        "{reply}"
    );
    assert!(app
        .admin("/campaign show 1")
        .await
        .contains("media: image image.jpg (1 KB)"));
    send_and_wait(&app, 2).await;

    // One upload for the whole campaign, with the file's bytes, however many messages show it.
    let uploads = app.fake.uploads();
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    assert_eq!(uploads[0].bytes, JPEG);
    assert_eq!(uploads[0].content_type.as_deref(), Some("image/jpeg"));
    let media_id = uploads[0].id.clone();
    for (to, name) in [(ANN, "Ann"), (CY, "Cy")] {
        let sent = app.campaign_send_to(to);
        let callback = sent.callback().expect("callback data").to_string();
        assert_eq!(
            sent.body,
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "image",
                "image": {"id": media_id, "caption": format!("Hi {name}, 20% off this Friday")},
                "biz_opaque_callback_data": callback
            })
        );
    }
    // Bob never wrote: a media message is free form like text, so he is skipped.
    let report = app.report(1).await;
    assert_eq!(report["sent"], "2");
    assert_eq!(report["skipped.outside_window"], "1");
    assert_eq!(app.fake.count_for(BOB), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_linked_document_goes_as_a_link_with_its_file_name_and_buttons_show_an_image() {
    let app = RunApp::start().await;
    three_vips(&app).await;
    let reply = app
        .admin("/campaign media 1 https://cdn.example.com/menus/spring-menu.pdf")
        .await;
    assert!(
        reply.starts_with(
            "campaign 1 media: document https://cdn.example.com/menus/spring-menu.pdf;"
        ),
        "{reply}"
    );
    send_and_wait(&app, 2).await;
    let sent = app.campaign_send_to(ANN);
    assert_eq!(sent.body["type"], "document");
    assert_eq!(
        sent.body["document"],
        json!({
            "link": "https://cdn.example.com/menus/spring-menu.pdf",
            "filename": "spring-menu.pdf",
            "caption": "Hi Ann, 20% off this Friday"
        })
    );
    assert!(app.fake.uploads().is_empty(), "a link is never uploaded");
    app.stop().await;

    // Reply buttons show the media above the text.
    let app = RunApp::start().await;
    three_vips(&app).await;
    app.setup(&[
        "/campaign buttons 1 Yes please|STOP",
        "/campaign media 1 https://cdn.example.com/sale.png",
    ])
    .await;
    send_and_wait(&app, 2).await;
    let sent = app.campaign_send_to(CY);
    assert_eq!(sent.body["type"], "interactive");
    assert_eq!(
        sent.body["interactive"]["header"],
        json!({"type": "image", "image": {"link": "https://cdn.example.com/sale.png"}})
    );
    assert_eq!(
        sent.body["interactive"]["body"]["text"],
        "Hi Cy, 20% off this Friday"
    );
    app.stop().await;
}

/// A POSITIONAL marketing template with an IMAGE header, and a NAMED one with a TEXT header.
fn templates() -> Vec<Value> {
    vec![
        json!({
            "name": "spring_sale", "language": "en_US", "status": "APPROVED", "category": "MARKETING",
            "parameter_format": "POSITIONAL", "id": "1001",
            "components": [
                {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW1n"]}},
                {"type": "BODY", "text": "Hi {{1}}, {{2}} off everything this Friday",
                 "example": {"body_text": [["Ana", "20%"]]}}
            ]
        }),
        json!({
            "name": "order_note", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
            "parameter_format": "POSITIONAL", "id": "1002",
            "components": [
                {"type": "HEADER", "format": "TEXT", "text": "Your order"},
                {"type": "BODY", "text": "Hi {{1}}, it ships today."}
            ]
        }),
    ]
}

async fn start_with_templates() -> RunApp {
    let app = RunApp::start_with(&[("WHATSAPP_BUSINESS_ACCOUNT_ID", WABA)], |_| {}).await;
    app.wait_until("the template sync at start", || {
        !app.fake.template_requests().is_empty()
    })
    .await;
    app.fake.set_templates(templates(), 10);
    let reply = app.admin("/template sync").await;
    assert!(reply.contains("2 added"), "{reply}");
    app
}

#[tokio::test]
async fn a_template_with_an_image_header_carries_the_campaigns_image() {
    let app = start_with_templates().await;
    three_vips(&app).await;
    let reply = app
        .admin("/campaign template 1 spring_sale en_US {{name}}|20%")
        .await;
    assert!(
        reply.contains("IMAGE header needs the campaign's media"),
        "{reply}"
    );
    app.fake.add_media("700200", "image/jpeg", JPEG);
    let reply = admin_sends(&app, "image", "700200", "image/jpeg", "/campaign media 1").await;
    assert!(
        reply.contains("it fills the IMAGE header of template spring_sale (en_US)"),
        "{reply}"
    );
    // A template is not bound to the window: all three get it.
    send_and_wait(&app, 3).await;
    let uploads = app.fake.uploads();
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    let sent = app.campaign_send_to(BOB);
    assert_eq!(sent.body["type"], "template");
    assert_eq!(
        sent.body["template"]["components"],
        json!([
            {"type": "header", "parameters": [
                {"type": "image", "image": {"id": uploads[0].id}}
            ]},
            {"type": "body", "parameters": [
                {"type": "text", "text": "Bob"}, {"type": "text", "text": "20%"}
            ]}
        ])
    );
    assert_eq!(app.report(1).await["sent"], "3");
    app.stop().await;
}

/// `/campaign show 1` has no media line: a refusal stored nothing.
async fn no_media(app: &RunApp) {
    let show = app.admin("/campaign show 1").await;
    assert!(!show.contains("media:"), "{show}");
}

#[tokio::test]
async fn media_the_campaign_cannot_carry_is_refused_and_changes_nothing() {
    let app = start_with_templates().await;
    three_vips(&app).await;
    let one_line = |reply: &str, part: &str| {
        assert!(reply.contains(part), "{part:?} in {reply:?}");
        assert_eq!(reply.lines().count(), 1, "{reply}");
    };

    let reply = app
        .admin("/campaign media 1 http://cdn.example.com/sale.jpg")
        .await;
    one_line(&reply, "the media link must start with https://");
    one_line(
        &app.admin("/campaign media 1 cdn.example.com/sale.jpg")
            .await,
        "is not a link",
    );
    one_line(
        &app.admin("/campaign media 1 https://cdn.example.com/sale.gif")
            .await,
        "WhatsApp sends images as JPEG or PNG",
    );
    one_line(
        &app.admin("/campaign media 1").await,
        "attach an image, video or document with the caption /campaign media 1",
    );
    one_line(
        &app.admin("/campaign media 9 https://cdn.example.com/sale.jpg")
            .await,
        "campaign 9",
    );
    no_media(&app).await;

    // A "photo" whose bytes are no JPEG or PNG; an image over WhatsApp's 5 MB; a file the
    // channel says is over 20 MB is not even downloaded.
    app.fake
        .add_media("700300", "image/gif", b"GIF89a\x01\x00".to_vec());
    let reply = admin_sends(&app, "image", "700300", "image/gif", "/campaign media 1").await;
    one_line(&reply, "not a JPEG, PNG, MP4 or 3GP file");
    let mut big = JPEG.to_vec();
    big.resize(6 * 1024 * 1024, 0);
    app.fake.add_media("700301", "image/jpeg", big);
    let reply = admin_sends(&app, "image", "700301", "image/jpeg", "/campaign media 1").await;
    one_line(&reply, "WhatsApp sends images of at most 5 MB");
    app.fake
        .add_media("700302", "video/mp4", b"\0\0\0\x18ftypisom".to_vec());
    app.fake.declare_size("700302", 30 * 1024 * 1024);
    let reply = admin_sends(&app, "video", "700302", "video/mp4", "/campaign media 1").await;
    one_line(&reply, "the limit is 20 MB");
    assert!(
        !app.fake.media_downloads().contains(&"700302".to_string()),
        "an oversized file is refused before its download"
    );
    no_media(&app).await;

    // A caption holds 1,024 characters: media on a longer text, or a longer text on media.
    let long = "x".repeat(1100);
    app.setup(&[&format!("/campaign text 1 {long}")]).await;
    one_line(
        &app.admin("/campaign media 1 https://cdn.example.com/sale.jpg")
            .await,
        "a caption holds at most 1024",
    );
    no_media(&app).await;
    app.setup(&[
        "/campaign text 1 Hi {{name}}",
        "/campaign media 1 https://cdn.example.com/sale.jpg",
    ])
    .await;
    one_line(
        &app.admin(&format!("/campaign text 1 {long}")).await,
        "its text is its caption: at most 1024 characters",
    );
    assert!(app
        .admin("/campaign show 1")
        .await
        .contains("text: Hi {{name}}"));
    // A list menu cannot show media.
    one_line(
        &app.admin("/campaign menu 1 Sizes S|M|L").await,
        "a list menu cannot show media",
    );
    assert!(!app.admin("/campaign show 1").await.contains("menu"));
    app.setup(&["/campaign media 1 none"]).await;
    no_media(&app).await;

    // Templates: none without a media header, none of another kind.
    app.setup(&["/campaign template 1 order_note en_US {{name}}"])
        .await;
    one_line(
        &app.admin("/campaign media 1 https://cdn.example.com/sale.jpg")
            .await,
        "template order_note (en_US) has no IMAGE, VIDEO or DOCUMENT header",
    );
    app.setup(&["/campaign template 1 spring_sale en_US {{name}}|20%"])
        .await;
    one_line(
        &app.admin("/campaign media 1 https://cdn.example.com/clip.mp4")
            .await,
        "the header of template spring_sale (en_US) is IMAGE, not VIDEO",
    );
    no_media(&app).await;
    // And the template cannot be sent without its image.
    let reply = app.admin("/campaign send 1").await;
    assert!(
        reply.contains("needs media, and campaign 1 has none"),
        "{reply}"
    );
    assert_eq!(app.report(1).await["status"], "draft");
    assert!(app.campaign_sends().is_empty());
    assert!(app.fake.uploads().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_upload_meta_refuses_pauses_the_campaign_with_its_reason() {
    let app = RunApp::start().await;
    three_vips(&app).await;
    app.fake.add_media("700400", "image/jpeg", JPEG);
    admin_sends(&app, "image", "700400", "image/jpeg", "/campaign media 1").await;
    app.fake.fail_uploads(
        1,
        400,
        crate::support::fake_graph::FakeGraph::meta_error(
            131053,
            "Media upload error",
            "Unsupported image",
        ),
    );
    app.setup(&["/campaign send 1"]).await;
    let told = app.wait_for_admin_text("campaign 1 paused").await;
    assert!(
        told.contains("WhatsApp refused the campaign's media"),
        "{told}"
    );
    assert!(app.campaign_sends().is_empty());
    assert_eq!(app.report(1).await["status"], "paused");
    app.stop().await;
}

#[tokio::test]
async fn a_media_file_no_campaign_shows_is_deleted_by_maintenance() {
    use sha2::{Digest, Sha256};
    let app = RunApp::start().await;
    three_vips(&app).await;
    app.setup(&["/campaign new Second", "/campaign text 2 Hello {{name}}"])
        .await;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    app.fake.add_media("700500", "image/jpeg", JPEG);
    app.fake.add_media("700501", "image/png", png.clone());
    admin_sends(&app, "image", "700500", "image/jpeg", "/campaign media 1").await;
    admin_sends(&app, "image", "700501", "image/png", "/campaign media 2").await;
    let jpeg_sha = hex::encode(Sha256::digest(JPEG));
    let png_sha = hex::encode(Sha256::digest(&png));
    let store = &app.engine.store;
    assert!(store.media_bytes(&jpeg_sha).await.unwrap().is_some());

    // Campaign 1 moves to a link; campaign 2 keeps its file.
    app.setup(&["/campaign media 1 https://cdn.example.com/sale.jpg"])
        .await;
    let step = app.engine.maintenance_step().await.expect("maintenance");
    assert_eq!(step.media_files_pruned, 0, "a file is kept an hour after");
    app.advance(chrono::Duration::hours(2));
    let step = app.engine.maintenance_step().await.expect("maintenance");
    assert_eq!(step.media_files_pruned, 1);
    assert_eq!(store.media_bytes(&jpeg_sha).await.unwrap(), None);
    assert_eq!(store.media_bytes(&png_sha).await.unwrap(), Some(png));
    app.stop().await;
}
