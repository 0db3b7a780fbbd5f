//! Files through Telegram: herald's update loop against the fake Bot API. An attached document
//! or photo is fetched with `getFile` and the file route only when a command needs it; reports
//! come back with `sendDocument` and `sendPhoto`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use herald::channels::telegram::TelegramChannel;
use herald::channels::Channel;
use herald::clock::ManualClock;
use herald::config::Config;
use herald::engine::Engine;
use tokio_util::sync::CancellationToken;

use super::{oversized_csv, png_size, report_rows, CSV, IMPORTED, PNG};
use crate::support::console_app::{t0, ClockExt};
use crate::support::db::TestDb;
use crate::support::fake_telegram::{FakeTelegram, TOKEN};

/// The admin's Telegram user id (and so their private chat's id).
const ADMIN: i64 = 42;

const NO_FILE: &str =
    "attach a CSV file to /contact import (header row: address,name,labels,lang,tz,consent,...), \
                       or paste the rows on the lines after it";

/// herald with the Telegram channel on a fresh database, polling the fake Bot API.
struct TgApp {
    engine: Arc<Engine>,
    fake: FakeTelegram,
    clock: ManualClock,
    shutdown: CancellationToken,
    _db: TestDb,
}

impl Drop for TgApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TgApp {
    async fn start() -> TgApp {
        Self::start_with(|_| {}).await
    }

    async fn start_with(tweak: impl FnOnce(&mut Config)) -> TgApp {
        let db = TestDb::new().await;
        let fake = FakeTelegram::start().await;
        let mut config = Config {
            database_url: db.url.clone(),
            telegram_token: Some(TOKEN.into()),
            telegram_api_url: Some(fake.url.clone()),
            admin_telegram: vec![format!("tg:{ADMIN}")],
            ..Config::default()
        };
        tweak(&mut config);
        let clock = ManualClock::new(t0());
        let telegram = TelegramChannel::from_config_with_clock(&config, Arc::new(clock.clone()))
            .expect("valid Telegram configuration")
            .expect("a token, so a channel");
        let channels: Vec<Arc<dyn Channel>> = vec![telegram.clone()];
        let engine = herald::app::build_engine(config, Arc::new(clock.clone()), channels)
            .await
            .expect("engine builds");
        let shutdown = CancellationToken::new();
        let menu = herald::commands::help::command_list();
        telegram.start(engine.clone(), menu, shutdown.clone());
        TgApp {
            engine,
            fake,
            clock,
            shutdown,
            _db: db,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now_utc()
    }

    /// Waits until herald handled update `id`; returns the texts the admin got meanwhile.
    async fn answer_to(&self, id: i64, before: usize) -> String {
        self.fake.wait_handled(id).await;
        self.fake.texts_to(ADMIN)[before..].join("\n")
    }

    /// The admin types `line`; returns herald's answer.
    async fn admin(&self, line: &str) -> String {
        let before = self.fake.texts_to(ADMIN).len();
        let id = self.fake.text(ADMIN, "Ada Admin", line, self.now());
        self.answer_to(id, before).await
    }

    /// The admin sends document `file_id` (added to the fake) with an optional caption.
    async fn document(
        &self,
        file_id: &str,
        name: &str,
        mime: &str,
        caption: Option<&str>,
    ) -> String {
        let before = self.fake.texts_to(ADMIN).len();
        let id = self
            .fake
            .document(ADMIN, "Ada", file_id, name, mime, caption, self.now());
        self.answer_to(id, before).await
    }

    async fn contacts(&self) -> i64 {
        self.engine.store.count_contacts().await.expect("count")
    }
}

#[tokio::test]
async fn a_csv_sent_with_the_caption_contact_import_is_imported() {
    let app = TgApp::start().await;
    app.fake.add_file("BQAC-csv-1", CSV);
    assert_eq!(
        app.document(
            "BQAC-csv-1",
            "contacts.csv",
            "text/csv",
            Some("/contact import")
        )
        .await,
        IMPORTED
    );
    let ann = app
        .engine
        .store
        .find_contact(&"+15550001".parse().expect("an address"))
        .await
        .expect("store")
        .expect("Ann was imported");
    assert_eq!(ann.name.as_deref(), Some("Ann"));
    assert_eq!(app.contacts().await, 2);
    assert_eq!(app.fake.calls_of("getFile").len(), 1);
    assert_eq!(app.fake.downloads(), ["BQAC-csv-1"]);
}

#[tokio::test]
async fn a_csv_sent_alone_is_imported_by_the_next_contact_import() {
    let app = TgApp::start().await;
    app.fake.add_file("BQAC-csv-2", CSV);
    assert_eq!(
        app.document("BQAC-csv-2", "contacts.csv", "text/csv", None)
            .await,
        "got contacts.csv: it is kept for 10 minutes for your next command that takes a file, \
         e.g. /contact import"
    );
    assert!(app.fake.calls_of("getFile").is_empty());
    app.clock.advance(chrono::Duration::minutes(9));
    assert_eq!(app.admin("/contact import").await, IMPORTED);
    assert_eq!(app.contacts().await, 2);
    assert_eq!(app.admin("/contact import").await, NO_FILE);
}

#[tokio::test]
async fn a_lone_file_older_than_ten_minutes_is_not_imported() {
    let app = TgApp::start().await;
    app.fake.add_file("BQAC-csv-3", CSV);
    app.document("BQAC-csv-3", "contacts.csv", "text/csv", None)
        .await;
    app.clock.advance(chrono::Duration::minutes(11));
    assert_eq!(
        app.admin("/contact import").await,
        "nothing imported: contacts.csv came at 2026-11-22 10:00 UTC, more than 10 minutes ago: \
         send it again with the caption /contact import"
    );
    assert!(app.fake.calls_of("getFile").is_empty());
    assert_eq!(app.contacts().await, 0);
}

#[tokio::test]
async fn a_photo_or_a_png_is_refused_and_changes_nothing() {
    let app = TgApp::start().await;
    app.fake.add_file("AgAC-photo", PNG);
    app.fake.add_file("BQAC-png", PNG);
    let before = app.fake.texts_to(ADMIN).len();
    let id = app.fake.photo(
        ADMIN,
        "Ada",
        "AgAC-photo",
        Some("/contact import"),
        app.now(),
    );
    assert_eq!(
        app.answer_to(id, before).await,
        "nothing imported: this is a photo (image/jpeg), not a CSV file: export the contacts as \
         CSV (UTF-8) and send it as a document"
    );
    assert!(app.fake.calls_of("getFile").is_empty());
    assert_eq!(
        app.document(
            "BQAC-png",
            "contacts.csv",
            "text/csv",
            Some("/contact import")
        )
        .await,
        "nothing imported: this is a PNG image, not a CSV file: export the contacts as CSV (UTF-8)"
    );
    assert_eq!(app.contacts().await, 0);
}

#[tokio::test]
async fn a_file_over_20_mb_is_refused_before_or_while_downloading() {
    let app = TgApp::start().await;
    // Telegram says the size in the message: refused before even getFile.
    app.fake.add_file("BQAC-big-1", CSV);
    app.fake.declare_file_size("BQAC-big-1", 25 * 1024 * 1024);
    assert_eq!(
        app.document("BQAC-big-1", "big.csv", "text/csv", Some("/contact import"))
            .await,
        "nothing imported: the file is 26214400 bytes; the limit is 20 MB: split it into smaller files"
    );
    assert!(app.fake.calls_of("getFile").is_empty());
    // A size said wrong: counted while downloading, and stopped past 20 MB.
    app.fake.add_file("BQAC-big-2", oversized_csv());
    app.fake.declare_file_size("BQAC-big-2", 1000);
    let reply = app
        .document("BQAC-big-2", "big.csv", "text/csv", Some("/contact import"))
        .await;
    assert!(
        reply.starts_with("nothing imported: the file is larger than 20 MB (the download passed ")
            && reply.ends_with(" bytes): split it into smaller files"),
        "{reply}"
    );
    assert_eq!(app.fake.downloads(), ["BQAC-big-2"]);
    assert_eq!(app.contacts().await, 0);
}

#[tokio::test]
async fn a_failed_or_slow_download_imports_nothing() {
    let app = TgApp::start_with(|c| c.file_timeout = Duration::from_secs(1)).await;
    app.fake.add_file("BQAC-gone", CSV);
    app.fake
        .fail_get_file("BQAC-gone", 400, "Bad Request: file is too big");
    assert_eq!(
        app.document(
            "BQAC-gone",
            "contacts.csv",
            "text/csv",
            Some("/contact import")
        )
        .await,
        "nothing imported: the channel would not hand the file over (Bad Request: file is too \
         big): send it again"
    );
    app.fake.add_file("BQAC-404", CSV);
    app.fake.fail_download("BQAC-404", 404);
    assert_eq!(
        app.document(
            "BQAC-404",
            "contacts.csv",
            "text/csv",
            Some("/contact import")
        )
        .await,
        "nothing imported: the channel would not hand the file over (HTTP 404): send it again"
    );
    app.fake.add_file("BQAC-slow", CSV);
    app.fake.delay_download("BQAC-slow", Duration::from_secs(4));
    let started = Instant::now();
    assert_eq!(
        app.document(
            "BQAC-slow",
            "contacts.csv",
            "text/csv",
            Some("/contact import")
        )
        .await,
        "nothing imported: the download took longer than 1 s: send the file again"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(app.contacts().await, 0);
}

#[tokio::test]
async fn report_csv_and_chart_arrive_as_a_document_and_a_photo() {
    let reports = tempfile::tempdir().expect("temp dir");
    let dir = reports.path().join("reports");
    let dir_text = dir.to_str().expect("utf-8").to_string();
    let app = TgApp::start_with(|c| c.reports_dir = dir_text).await;
    for chat in [100, 101] {
        let id = app
            .fake
            .text(chat, &format!("Customer {chat}"), "/start", app.now());
        app.fake.wait_handled(id).await;
    }
    for line in [
        "/campaign new Spring sale",
        "/campaign audience 1 tg:100,tg:101",
        "/campaign text 1 Hello {{name}}",
        "/campaign send 1",
    ] {
        let reply = app.admin(line).await;
        assert!(!reply.contains("usage:"), "{line}: {reply}");
    }
    app.engine.settle().await.expect("settle");

    assert_eq!(
        app.admin("/campaign report 1 csv").await,
        "report of campaign 1 sent as campaign-1.csv"
    );
    assert_eq!(
        app.admin("/campaign report 1 chart").await,
        "chart of campaign 1 sent as campaign-1.png"
    );
    let files = app.fake.files_to(ADMIN);
    assert_eq!(files.len(), 2, "{files:?}");
    let (method, csv) = &files[0];
    assert_eq!(method, "sendDocument");
    assert_eq!(csv.filename.as_deref(), Some("campaign-1.csv"));
    let rows = report_rows(&csv.data);
    let addresses: Vec<(&str, &str)> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
    assert_eq!(addresses, [("tg:100", "sent"), ("tg:101", "sent")]);
    let (method, chart) = &files[1];
    assert_eq!(method, "sendPhoto");
    assert_eq!(png_size(&chart.data), (1000, 600));
    let captions: Vec<String> = app
        .fake
        .calls()
        .iter()
        .filter(|c| c.method == "sendDocument" || c.method == "sendPhoto")
        .map(|c| c.params["caption"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        captions,
        [
            "campaign 1: 2 recipient(s), one line each",
            "campaign 1: Spring sale"
        ]
    );
    assert!(!dir.exists(), "an admin command wrote {}", dir.display());
}
