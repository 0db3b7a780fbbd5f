//! Files through WhatsApp: herald run against the fake Graph API, the admin playing Meta's
//! webhooks. An attached file is looked up (`GET /{media-id}`) and downloaded with the bearer
//! token only when a command needs it; reports go up (`POST /{phone-number-id}/media`) and come
//! back as a `document` or `image` message.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::{oversized_csv, png_size, report_rows, CSV, IMPORTED, PNG};
use crate::support::fake_graph::{webhooks, FakeGraph};
use crate::support::run_app::{RunApp, ADMIN, PHONE_NUMBER_ID, TOKEN};

const NO_FILE: &str =
    "attach a CSV file to /contact import (header row: address,name,labels,lang,tz,consent,...), \
                       or paste the rows on the lines after it";

/// The admin sends a file (`kind`: document, image or video) with an optional caption; returns
/// herald's answer (every text the admin got while the webhook was processed).
async fn admin_sends(
    app: &RunApp,
    kind: &str,
    media_id: &str,
    mime: &str,
    filename: Option<&str>,
    caption: Option<&str>,
) -> String {
    let before = app.admin_texts().len();
    let body = webhooks::media(
        ADMIN,
        kind,
        media_id,
        mime,
        filename,
        caption,
        &app.wamid(),
        app.now_secs(),
    );
    assert_eq!(app.post_webhook(&body).await, StatusCode::OK);
    let texts = app.admin_texts();
    assert!(
        texts.len() > before,
        "the admin got no answer to their file"
    );
    texts[before..].join("\n")
}

async fn contacts(app: &RunApp) -> i64 {
    app.engine.store.count_contacts().await.expect("count")
}

/// `/contact import` with `media_id` as the caption's document; returns the answer.
async fn import(app: &RunApp, media_id: &str, mime: &str, filename: &str) -> String {
    admin_sends(
        app,
        "document",
        media_id,
        mime,
        Some(filename),
        Some("/contact import"),
    )
    .await
}

#[tokio::test]
async fn a_csv_sent_with_the_caption_contact_import_is_imported() {
    let app = RunApp::start().await;
    app.fake.add_media("900100", "text/csv", CSV);

    assert_eq!(
        import(&app, "900100", "text/csv", "contacts.csv").await,
        IMPORTED
    );
    let ann = app.contact("+15550001").await;
    assert_eq!(ann.name.as_deref(), Some("Ann"));
    assert_eq!(ann.labels, vec!["vip"]);
    assert_eq!(contacts(&app).await, 2);
    // Looked up and downloaded once each (the fake takes only the configured bearer token).
    assert_eq!(app.fake.media_lookups(), ["900100"]);
    assert_eq!(app.fake.media_downloads(), ["900100"]);

    // The same file again changes nothing.
    assert_eq!(
        import(&app, "900100", "text/csv", "contacts.csv").await,
        IMPORTED.replace(
            "2 added, 0 updated, 0 unchanged",
            "0 added, 0 updated, 2 unchanged"
        )
    );
    assert_eq!(contacts(&app).await, 2);
}

#[tokio::test]
async fn a_csv_sent_alone_is_imported_by_the_next_contact_import() {
    let app = RunApp::start().await;
    app.fake.add_media("900200", "text/csv", CSV);

    let reply = admin_sends(
        &app,
        "document",
        "900200",
        "text/csv",
        Some("contacts.csv"),
        None,
    )
    .await;
    assert_eq!(
        reply,
        "got contacts.csv: it is kept for 10 minutes for your next command that takes a file, \
         e.g. /contact import"
    );
    // Nothing is fetched until a command needs it.
    assert!(app.fake.media_lookups().is_empty());
    assert_eq!(contacts(&app).await, 0);

    // A command that needs no file leaves it kept.
    app.advance(chrono::Duration::minutes(9));
    assert!(app.admin("/help contact").await.contains("/contact import"));
    assert!(app.fake.media_lookups().is_empty());

    assert_eq!(app.admin("/contact import").await, IMPORTED);
    assert_eq!(app.contact("+15550002").await.labels, vec!["vip"]);
    // A file serves one command.
    assert_eq!(app.admin("/contact import").await, NO_FILE);
    assert_eq!(app.fake.media_downloads(), ["900200"]);
}

#[tokio::test]
async fn a_lone_file_older_than_ten_minutes_is_not_imported() {
    let app = RunApp::start().await;
    app.fake.add_media("900300", "text/csv", CSV);
    admin_sends(
        &app,
        "document",
        "900300",
        "text/csv",
        Some("contacts.csv"),
        None,
    )
    .await;

    app.advance(chrono::Duration::minutes(10) + chrono::Duration::seconds(1));
    assert_eq!(
        app.admin("/contact import").await,
        "nothing imported: contacts.csv came at 2026-11-22 10:00 UTC, more than 10 minutes ago: \
         send it again with the caption /contact import"
    );
    assert!(
        app.fake.media_lookups().is_empty(),
        "a stale file is not fetched"
    );
    assert_eq!(contacts(&app).await, 0);
    // It is gone, not waiting for a later command.
    assert_eq!(app.admin("/contact import").await, NO_FILE);
}

#[tokio::test]
async fn a_photo_or_a_png_is_refused_and_changes_nothing() {
    let app = RunApp::start().await;
    app.fake.add_media("900401", "image/png", PNG);
    app.fake
        .add_media("900402", "application/octet-stream", PNG);

    // WhatsApp says it is an image: refused without downloading it.
    assert_eq!(
        admin_sends(
            &app,
            "image",
            "900401",
            "image/png",
            None,
            Some("/contact import")
        )
        .await,
        "nothing imported: this is a photo (image/png), not a CSV file: export the contacts as \
         CSV (UTF-8) and send it as a document"
    );
    assert_eq!(
        import(&app, "900401", "image/png", "chart.png").await,
        "nothing imported: chart.png is an image (image/png), not a CSV file: export the \
         contacts as CSV (UTF-8) and send it as a document"
    );
    assert!(app.fake.media_downloads().is_empty());
    // Sent as a document of no particular type: its bytes give it away.
    assert_eq!(
        import(&app, "900402", "application/octet-stream", "contacts.csv").await,
        "nothing imported: this is a PNG image, not a CSV file: export the contacts as CSV (UTF-8)"
    );
    assert_eq!(app.fake.media_downloads(), ["900402"]);
    assert_eq!(contacts(&app).await, 0);
}

#[tokio::test]
async fn a_file_over_20_mb_is_refused_before_or_while_downloading() {
    let app = RunApp::start().await;
    // Meta says how big it is: refused before the download.
    app.fake.add_media("900501", "text/csv", CSV);
    app.fake.declare_size("900501", 25 * 1024 * 1024);
    assert_eq!(
        import(&app, "900501", "text/csv", "big.csv").await,
        "nothing imported: the file is 26214400 bytes; the limit is 20 MB: split it into smaller files"
    );
    assert!(app.fake.media_downloads().is_empty());

    // Meta says it is small, and the download goes on past 20 MB: stopped there.
    app.fake.add_media("900502", "text/csv", oversized_csv());
    app.fake.declare_size("900502", 1000);
    let reply = import(&app, "900502", "text/csv", "big.csv").await;
    assert!(
        reply.starts_with("nothing imported: the file is larger than 20 MB (the download passed ")
            && reply.ends_with(" bytes): split it into smaller files"),
        "{reply}"
    );
    let counted: u64 = reply
        .trim_start_matches("nothing imported: the file is larger than 20 MB (the download passed ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a byte count");
    assert!(counted > 20 * 1024 * 1024, "{counted}");
    assert_eq!(app.fake.media_downloads(), ["900502"]);
    assert_eq!(contacts(&app).await, 0);
}

#[tokio::test]
async fn a_failed_lookup_or_download_imports_nothing() {
    let app = RunApp::start().await;
    app.fake.add_media("900601", "text/csv", CSV);
    app.fake.fail_media(
        "900601",
        400,
        FakeGraph::meta_error(131052, "Media download error", "Media upload expired"),
    );
    assert_eq!(
        import(&app, "900601", "text/csv", "contacts.csv").await,
        "nothing imported: the channel would not hand the file over (131052 Media download \
         error: Media upload expired): send it again"
    );
    app.fake.add_media("900602", "text/csv", CSV);
    app.fake.fail_download("900602", 404);
    assert_eq!(
        import(&app, "900602", "text/csv", "contacts.csv").await,
        "nothing imported: the channel would not hand the file over (HTTP 404): send it again"
    );
    // A media id Meta does not know.
    let reply = import(&app, "900699", "text/csv", "contacts.csv").await;
    assert!(
        reply.starts_with("nothing imported: the channel would not hand the file over (100 ")
            && reply.contains("does not exist"),
        "{reply}"
    );
    assert_eq!(contacts(&app).await, 0);
}

#[tokio::test]
async fn a_download_that_times_out_imports_nothing() {
    let app = RunApp::start_with(&[("FILE_TIMEOUT_SECS", "1")], |_| {}).await;
    app.fake.add_media("900700", "text/csv", CSV);
    app.fake.delay_download("900700", Duration::from_secs(4));
    let started = Instant::now();
    assert_eq!(
        import(&app, "900700", "text/csv", "contacts.csv").await,
        "nothing imported: the download took longer than 1 s: send the file again"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the download was given up after the timeout, not waited out"
    );
    assert_eq!(contacts(&app).await, 0);
}

#[tokio::test]
async fn only_admins_files_are_fetched_and_a_command_that_needs_none_ignores_one() {
    let app = RunApp::start().await;
    app.fake.add_media("900800", "text/csv", CSV);
    // A customer's file with an admin command as caption: a customer message, nothing fetched.
    let body = webhooks::media(
        "15550009",
        "document",
        "900800",
        "text/csv",
        Some("contacts.csv"),
        Some("/contact import"),
        &app.wamid(),
        app.now_secs(),
    );
    assert_eq!(app.post_webhook(&body).await, StatusCode::OK);
    assert!(app.fake.media_lookups().is_empty());
    assert_eq!(contacts(&app).await, 1, "only the customer who wrote");
    assert!(
        app.admin_texts().is_empty(),
        "nobody answers a customer's /command"
    );

    // The admin's file under a command that takes none: the command runs, nothing is fetched.
    let reply = admin_sends(
        &app,
        "document",
        "900800",
        "text/csv",
        Some("contacts.csv"),
        Some("/campaign list"),
    )
    .await;
    assert_eq!(reply, "no campaigns");
    assert!(app.fake.media_lookups().is_empty());
    // It belonged to that command: the next one that takes a file does not find it.
    assert_eq!(app.admin("/contact import").await, NO_FILE);
    assert!(app.fake.media_lookups().is_empty());

    // A command sent after a lone file, with a caption file of its own, takes its own.
    app.fake
        .add_media("900801", "text/csv", "address\n+15550077\n");
    admin_sends(
        &app,
        "document",
        "900800",
        "text/csv",
        Some("old.csv"),
        None,
    )
    .await;
    assert_eq!(
        import(&app, "900801", "text/csv", "new.csv").await,
        "read 1 row(s): 1 added, 0 updated, 0 unchanged, 0 rejected"
    );
    assert_eq!(app.fake.media_downloads(), ["900801"]);
}

/// Campaign 1, sent to Ann and Bob (both in their window); Bob's message then fails with an
/// error code a spreadsheet would run as a formula.
async fn sent_campaign(app: &RunApp) {
    app.setup(&[
        "/contact add +15550001 name=Ann labels=vip optin",
        "/contact add +15550002 name=Bob labels=vip optin",
    ])
    .await;
    app.customer_says("15550001", "hi").await;
    app.customer_says("15550002", "hi").await;
    app.setup(&[
        "/campaign new Spring sale",
        "/campaign audience 1 vip",
        "/campaign text 1 Hello {{name}}, 20% off today",
        "/campaign send 1",
    ])
    .await;
    app.wait_for_campaign_sends(2).await;
    app.wait_for_idle(1).await;
    // The completion notice comes from the dispatcher: had before the report is asked for.
    app.wait_for_admin_text("campaign 1 completed").await;
    let bob = app.campaign_send_to("15550002");
    let failed = webhooks::failed(
        bob.wamid.as_deref().expect("a wamid"),
        "15550002",
        131026,
        "Message undeliverable",
        bob.callback(),
        app.now_secs(),
    )
    .replace("\"code\":131026", "\"code\":\"=2+5\"");
    assert_eq!(app.post_webhook(&failed).await, StatusCode::OK);
}

#[tokio::test]
async fn report_csv_and_chart_arrive_as_a_document_and_an_image() {
    let reports = tempfile::tempdir().expect("temp dir");
    let dir = reports.path().join("reports");
    let app = RunApp::start_with(&[("REPORTS_DIR", dir.to_str().expect("utf-8"))], |_| {}).await;
    sent_campaign(&app).await;

    assert_eq!(
        app.admin("/campaign report 1 csv").await,
        "report of campaign 1 sent as campaign-1.csv"
    );
    let document = app
        .fake
        .accepted()
        .into_iter()
        .find(|r| r.to() == Some(ADMIN) && r.body["type"] == "document")
        .expect("a document message to the admin");
    assert_eq!(document.body["document"]["filename"], "campaign-1.csv");
    assert_eq!(
        document.body["document"]["caption"],
        "campaign 1: 2 recipient(s), one line each"
    );
    let upload = app.fake.upload(
        document.body["document"]["id"]
            .as_str()
            .expect("a media id"),
    );
    assert_eq!(upload.phone_number_id, PHONE_NUMBER_ID);
    assert_eq!(
        upload.authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(upload.messaging_product.as_deref(), Some("whatsapp"));
    assert_eq!(upload.kind.as_deref(), Some("text/csv"));
    assert_eq!(upload.filename.as_deref(), Some("campaign-1.csv"));
    assert_eq!(upload.content_type.as_deref(), Some("text/csv"));
    let rows = report_rows(&upload.bytes);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str()),
        ("wa:15550001", "sent")
    );
    // The hostile code arrives as text a spreadsheet shows, not a formula it runs.
    assert_eq!(
        (rows[1].0.as_str(), rows[1].1.as_str(), rows[1].3.as_str()),
        ("wa:15550002", "failed", "'=2+5")
    );

    assert_eq!(
        app.admin("/campaign report 1 chart").await,
        "chart of campaign 1 sent as campaign-1.png"
    );
    let image = app
        .fake
        .accepted()
        .into_iter()
        .find(|r| r.to() == Some(ADMIN) && r.body["type"] == "image")
        .expect("an image message to the admin");
    assert_eq!(image.body["image"]["caption"], "campaign 1: Spring sale");
    let upload = app
        .fake
        .upload(image.body["image"]["id"].as_str().expect("a media id"));
    assert_eq!(upload.kind.as_deref(), Some("image/png"));
    assert_eq!(upload.filename.as_deref(), Some("campaign-1.png"));
    assert_eq!(png_size(&upload.bytes), (1000, 600));

    // Nothing was written on the server.
    assert!(!dir.exists(), "an admin command wrote {}", dir.display());
}

#[tokio::test]
async fn a_refused_upload_is_told_and_nothing_is_written() {
    let reports = tempfile::tempdir().expect("temp dir");
    let dir = reports.path().join("reports");
    let app = RunApp::start_with(&[("REPORTS_DIR", dir.to_str().expect("utf-8"))], |_| {}).await;
    app.setup(&["/campaign new Empty"]).await;
    app.fake.fail_next(
        1,
        400,
        FakeGraph::meta_error(131053, "Media upload error", "Unsupported file type"),
    );
    assert_eq!(
        app.admin("/campaign report 1 csv").await,
        "report of campaign 1 could not be sent: Media upload error: Unsupported file type"
    );
    assert!(app.fake.uploads().is_empty());
    assert!(!dir.exists());
}
