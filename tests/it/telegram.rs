//! The Telegram channel against a fake Bot API: admins steering campaigns from their chat,
//! customers subscribing with /start and leaving with STOP, Telegram's 429 and 403 answers, the
//! webhook's secret token, and `herald run` with nothing but a bot token.
//!
//! herald runs in-process with a manual clock; its update loop runs in the background against
//! the fake, and a test waits (bounded) until herald has handled each update it pushes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald::channels::console::ConsoleChannel;
use herald::channels::telegram::TelegramChannel;
use herald::channels::{Audience, Channel, Inbound, Outbound, OutboundBody};
use herald::clock::ManualClock;
use herald::config::Config;
use herald::engine::Engine;
use herald::store::Consent;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::console_app::{t0, ClockExt};
use crate::support::db::TestDb;
use crate::support::fake_telegram::{FakeTelegram, TOKEN};
use crate::support::raw_http::RawRequest;

/// The admin's Telegram user id (and so their private chat's id).
const ADMIN: i64 = 42;
const ANN: i64 = 100;
const BOB: i64 = 101;

/// herald with the Telegram channel (and optionally the console) on a fresh database.
struct TgApp {
    engine: Arc<Engine>,
    fake: FakeTelegram,
    clock: ManualClock,
    console: Option<Arc<ConsoleChannel>>,
    telegram: Arc<TelegramChannel>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _db: TestDb,
}

fn config_for(db: &TestDb, fake: &FakeTelegram) -> Config {
    Config {
        database_url: db.url.clone(),
        telegram_token: Some(TOKEN.into()),
        telegram_api_url: Some(fake.url.clone()),
        admin_telegram: vec![format!("tg:{ADMIN}")],
        ..Config::default()
    }
}

impl TgApp {
    async fn start() -> TgApp {
        Self::start_with(false, |_| {}).await
    }

    async fn start_with(with_console: bool, tweak: impl FnOnce(&mut Config)) -> TgApp {
        Self::start_scripted(with_console, tweak, |_| {}).await
    }

    /// Like [`TgApp::start_with`], with the fake told how to answer before herald starts.
    async fn start_scripted(
        with_console: bool,
        tweak: impl FnOnce(&mut Config),
        script: impl FnOnce(&FakeTelegram),
    ) -> TgApp {
        let db = TestDb::new().await;
        let fake = FakeTelegram::start().await;
        script(&fake);
        let mut config = config_for(&db, &fake);
        tweak(&mut config);
        let clock = ManualClock::new(t0());
        let telegram = TelegramChannel::from_config_with_clock(&config, Arc::new(clock.clone()))
            .expect("valid Telegram configuration")
            .expect("a token, so a channel");
        let console = with_console.then(ConsoleChannel::recording);
        let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
        if let Some(console) = &console {
            channels.push(console.clone());
        }
        channels.push(telegram.clone());
        let engine = herald::app::build_engine(config, Arc::new(clock.clone()), channels)
            .await
            .expect("engine builds");
        let shutdown = CancellationToken::new();
        let menu = herald::commands::help::command_list();
        let task = telegram
            .clone()
            .start(engine.clone(), menu, shutdown.clone());
        TgApp {
            engine,
            fake,
            clock,
            console,
            telegram,
            shutdown,
            task,
            _db: db,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now_utc()
    }

    /// The admin types `line` in their Telegram chat; returns herald's answer.
    async fn admin(&self, line: &str) -> String {
        let before = self.fake.texts_to(ADMIN).len();
        let id = self.fake.text(ADMIN, "Ada Admin", line, self.now());
        self.fake.wait_handled(id).await;
        self.fake.texts_to(ADMIN)[before..].join("\n")
    }

    /// Admin lines that must all be accepted (for setup).
    async fn admin_setup(&self, lines: &[&str]) {
        for line in lines {
            let reply = self.admin(line).await;
            let lowered = reply.to_lowercase();
            assert!(
                !reply.is_empty() && !lowered.contains("usage:") && !lowered.starts_with("no "),
                "{line:?} was refused: {reply:?}"
            );
        }
    }

    /// A customer writes to the bot from their private chat; returns once herald handled it.
    async fn customer(&self, chat: i64, name: &str, text: &str) {
        let id = self.fake.text(chat, name, text, self.now());
        self.fake.wait_handled(id).await;
    }

    async fn settle(&self) {
        self.engine.settle().await.expect("settle");
    }

    /// `/campaign report <id>` as `key: value` pairs (run directly, not through the chat).
    async fn report(&self, id: i64) -> BTreeMap<String, String> {
        let text = herald::commands::handlers::run(
            &self.engine,
            &format!("tg:{ADMIN}"),
            &format!("/campaign report {id}"),
        )
        .await;
        text.lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    async fn contact(&self, chat: i64) -> herald::store::Contact {
        self.engine
            .store
            .find_contact(&format!("tg:{chat}").parse().expect("an address"))
            .await
            .expect("store")
            .expect("contact exists")
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the Telegram task stops on shutdown")
            .expect("the Telegram task did not panic");
    }
}

#[tokio::test]
async fn admin_runs_a_campaign_from_telegram_and_watches_its_progress() {
    let app = TgApp::start().await;
    for chat in [ANN, BOB, 102] {
        app.customer(chat, &format!("Customer {chat}"), "/start")
            .await;
    }
    app.admin_setup(&[
        "/label add vip tg:100 tg:101 tg:102",
        "/campaign new Spring sale",
        "/campaign audience 1 vip",
        "/campaign text 1 Hello {{name}}, 20% off today",
        // Slow enough that the campaign takes two windows, so progress shows before the end.
        "/campaign pace 1 rate=1",
    ])
    .await;
    let reply = app.admin("/campaign send 1").await;
    assert!(reply.contains("campaign 1 sending to 3"), "{reply}");
    app.settle().await;

    for chat in [ANN, BOB, 102] {
        assert_eq!(
            app.fake.texts_to(chat).last().unwrap(),
            &format!("Hello Customer {chat}, 20% off today")
        );
    }
    // One progress message, edited in place to the final numbers, then the summary.
    let to_admin = app.fake.texts_to(ADMIN);
    let progress: Vec<&String> = to_admin
        .iter()
        .filter(|t| t.starts_with("campaign 1 sending:"))
        .collect();
    assert_eq!(progress.len(), 1, "{to_admin:#?}");
    let edits = app.fake.edits_in(ADMIN);
    assert!(!edits.is_empty(), "the progress message was never edited");
    let progress_id = edits[0].0;
    assert!(edits.iter().all(|(id, _)| *id == progress_id));
    let shown = app.fake.message(ADMIN, progress_id).unwrap();
    assert!(
        shown.starts_with("campaign 1 finished: 3/3 processed, 3 sent"),
        "{shown}"
    );
    assert!(
        to_admin
            .last()
            .unwrap()
            .starts_with("campaign 1 completed: 3 sent, 0 failed"),
        "{to_admin:#?}"
    );

    // The admin reads the report in the chat too.
    let report = app.admin("/campaign report 1").await;
    assert!(report.contains("status: completed"), "{report}");
    assert!(report.contains("sent: 3"), "{report}");

    // Commands menu: /start and /stop for everyone, the admin commands in the admin's chat.
    let menus = app.fake.calls_of("setMyCommands");
    let names = |c: &crate::support::fake_telegram::Call| -> Vec<String> {
        c.params["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["command"].as_str().unwrap().to_string())
            .collect()
    };
    let everyone = menus
        .iter()
        .find(|c| c.params.get("scope").is_none())
        .unwrap();
    assert_eq!(names(everyone), ["start", "stop"]);
    let admin_menu = menus
        .iter()
        .find(|c| c.params["scope"] == json!({"type": "chat", "chat_id": ADMIN}))
        .expect("admin menu");
    assert!(names(admin_menu).contains(&"campaign".to_string()));
    assert!(names(admin_menu).contains(&"help".to_string()));
    app.stop().await;
}

#[tokio::test]
async fn an_admin_who_had_not_started_the_bot_gets_the_menu_when_they_write() {
    let app = TgApp::start_scripted(
        false,
        |_| {},
        |fake| {
            fake.fail(
            ADMIN,
            400,
            json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
            Some(1),
        );
        },
    )
    .await;
    let admin_menus = |app: &TgApp| -> Vec<bool> {
        app.fake
            .calls_of("setMyCommands")
            .iter()
            .filter(|c| c.params["scope"]["chat_id"] == json!(ADMIN))
            .map(|c| c.ok())
            .collect()
    };
    app.fake.wait_for_call("getUpdates").await;
    assert_eq!(admin_menus(&app), [false]);
    app.admin("/campaign list").await;
    assert_eq!(admin_menus(&app), [false, true]);
    app.admin("/campaign list").await;
    assert_eq!(admin_menus(&app), [false, true], "set once");
    app.stop().await;
}

#[tokio::test]
async fn one_campaign_reaches_telegram_and_console_customers_with_one_report() {
    let app = TgApp::start_with(true, |_| {}).await;
    app.customer(ANN, "Ann Lee", "/start").await;
    // A console customer (the console keeps WhatsApp's window: they wrote in first).
    app.admin_setup(&[
        "/contact add +15550001 name=Cy labels=vip optin",
        "/label add vip tg:100",
    ])
    .await;
    app.engine
        .handle_inbound(Inbound {
            from: "+15550001".into(),
            name: None,
            text: Some("hi".into()),
            button: None,
            at: app.now(),
            provider_id: None,
            file: None,
        })
        .await
        .unwrap();
    app.admin_setup(&[
        "/campaign new Both",
        "/campaign audience 1 vip",
        "/campaign text 1 Hi {{name}}",
        "/campaign send 1",
    ])
    .await;
    app.settle().await;

    assert_eq!(app.fake.texts_to(ANN).last().unwrap(), "Hi Ann Lee");
    let console = app.console.as_ref().unwrap();
    assert_eq!(
        console.delivered(),
        vec![("+15550001".to_string(), "Hi Cy".to_string())]
    );
    // Nothing meant for Telegram was printed on the console, and the admin heard on Telegram.
    assert!(console
        .transcript()
        .iter()
        .all(|l| !l.contains("campaign 1")));
    let report = app.report(1).await;
    assert_eq!(report["targeted"], "2");
    assert_eq!(report["sent"], "2");
    assert_eq!(report["status"], "completed");
    assert!(app
        .fake
        .texts_to(ADMIN)
        .last()
        .unwrap()
        .starts_with("campaign 1 completed: 2 sent"));
    app.stop().await;
}

#[tokio::test]
async fn customer_subscribes_with_start_and_leaves_with_stop() {
    let app = TgApp::start().await;
    app.customer(ANN, "Ann Lee", "/start").await;
    assert_eq!(app.fake.texts_to(ANN).len(), 1);
    assert!(app.fake.texts_to(ANN)[0].contains("subscribed"));
    let ann = app.contact(ANN).await;
    assert_eq!(ann.name.as_deref(), Some("Ann Lee"));
    assert_eq!(ann.consent, Consent::OptedIn);
    let history = app.engine.store.consent_history(ann.id).await.unwrap();
    assert_eq!(history.last().unwrap().source.as_str(), "telegram_start");

    // Bob subscribes by deep link (`/start <payload>`) and leaves with Telegram's /stop.
    app.customer(BOB, "Bob", "/start from-flyer").await;
    assert_eq!(app.contact(BOB).await.consent, Consent::OptedIn);

    app.admin_setup(&[
        "/campaign new First",
        "/campaign audience 1 tg:100 tg:101",
        "/campaign text 1 Hello {{name}}",
        "/campaign send 1",
    ])
    .await;
    app.settle().await;
    assert_eq!(app.fake.texts_to(ANN).last().unwrap(), "Hello Ann Lee");
    assert_eq!(app.fake.texts_to(BOB).last().unwrap(), "Hello Bob");

    app.customer(ANN, "Ann Lee", "STOP").await;
    app.customer(BOB, "Bob", "/stop").await;
    for chat in [ANN, BOB] {
        let texts = app.fake.texts_to(chat);
        assert_eq!(texts.len(), 3, "{texts:?}");
        assert!(texts[2].contains("unsubscribed"), "{texts:?}");
        assert_eq!(app.contact(chat).await.consent, Consent::OptedOut);
    }

    app.admin_setup(&[
        "/campaign new Second",
        "/campaign audience 2 tg:100 tg:101",
        "/campaign text 2 Again",
        "/campaign send 2",
    ])
    .await;
    app.settle().await;
    assert_eq!(app.fake.texts_to(ANN).len(), 3, "Ann got nothing more");
    assert_eq!(app.fake.texts_to(BOB).len(), 3, "Bob got nothing more");
    let report = app.report(2).await;
    assert_eq!(report["skipped.opted_out"], "2");
    assert_eq!(report["sent"], "0");
    app.stop().await;
}

#[tokio::test]
async fn someone_who_is_not_an_admin_learns_nothing_from_commands() {
    let app = TgApp::start().await;
    app.admin_setup(&["/campaign new Secret plans"]).await;
    for line in [
        "/campaign list",
        "/campaign report 1",
        "/help",
        "/contact show tg:42",
    ] {
        app.customer(ANN, "Ann Lee", line).await;
    }
    assert!(
        app.fake.texts_to(ANN).is_empty(),
        "{:?}",
        app.fake.texts_to(ANN)
    );
    // The same line from the admin is answered.
    let reply = app.admin("/campaign list").await;
    assert!(reply.contains("Secret plans"), "{reply}");
    app.stop().await;
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after_and_then_sends() {
    let app = TgApp::start().await;
    app.customer(ANN, "Ann Lee", "/start").await;
    app.admin_setup(&[
        "/campaign new Busy",
        "/campaign audience 1 tg:100",
        "/campaign text 1 Hello {{name}}",
    ])
    .await;
    app.fake.rate_limit(ANN, 3, 1);
    app.admin_setup(&["/campaign send 1"]).await;

    let first = app.engine.dispatch_step().await.unwrap();
    assert_eq!((first.sent, first.failed, first.held), (0, 0, 1));
    // Before retry_after has passed, nothing is tried again.
    app.settle().await;
    assert_eq!(
        app.fake.attempts_to(ANN),
        2,
        "the /start answer and the 429"
    );
    let report = app.report(1).await;
    assert_eq!(report["status"], "sending");
    assert_eq!(report["queued"], "1");
    assert_eq!(report["failed"], "0");

    app.clock.advance(chrono::Duration::seconds(3));
    app.settle().await;
    assert_eq!(app.fake.attempts_to(ANN), 3);
    assert_eq!(app.fake.texts_to(ANN).last().unwrap(), "Hello Ann Lee");
    let report = app.report(1).await;
    assert_eq!(report["status"], "completed");
    assert_eq!(report["sent"], "1");
    assert_eq!(report["failed"], "0");
    app.stop().await;
}

#[tokio::test]
async fn a_user_who_blocked_the_bot_fails_with_the_reason_and_is_skipped_later() {
    let app = TgApp::start().await;
    app.customer(ANN, "Ann Lee", "/start").await;
    app.customer(BOB, "Bob", "/start").await;
    app.fake.block(BOB);
    app.admin_setup(&[
        "/campaign new First",
        "/campaign audience 1 tg:100 tg:101",
        "/campaign text 1 Hello {{name}}",
        "/campaign send 1",
    ])
    .await;
    app.settle().await;
    let report = app.report(1).await;
    assert_eq!(report["sent"], "1");
    assert_eq!(report["failed"], "1");
    assert_eq!(
        report["failed.403"],
        "1 (403 Forbidden: bot was blocked by the user)"
    );
    assert_eq!(
        app.contact(BOB).await.unreachable.as_deref(),
        Some("Forbidden: bot was blocked by the user")
    );
    let attempts = app.fake.attempts_to(BOB);
    assert_eq!(attempts, 2, "the /start answer and one try, never retried");

    app.admin_setup(&[
        "/campaign new Second",
        "/campaign audience 2 tg:100 tg:101",
        "/campaign text 2 Again",
        "/campaign send 2",
    ])
    .await;
    app.settle().await;
    let report = app.report(2).await;
    assert_eq!(report["sent"], "1");
    assert_eq!(report["skipped.unreachable"], "1");
    assert_eq!(
        app.fake.attempts_to(BOB),
        attempts,
        "Bob is not tried again"
    );
    app.stop().await;
}

#[tokio::test]
async fn template_buttons_are_inline_buttons_and_a_press_is_answered_and_counts_as_reply() {
    let app = TgApp::start().await;
    app.customer(ANN, "Ann Lee", "/start").await;

    // A template campaign's body as Telegram gets it: rendered text plus inline buttons.
    app.telegram
        .send(&Outbound {
            to: format!("tg:{ANN}"),
            audience: Audience::Customer,
            body: OutboundBody::Template {
                name: "spring_sale".into(),
                lang: "en".into(),
                params: vec!["Ann".into()],
                rendered: "Hi Ann, want 20% off?".into(),
                buttons: vec!["Yes please".into(), "STOP".into()],
                parts: Default::default(),
            },
            callback: None,
        })
        .await
        .expect("sent");
    let call = app.fake.calls_of("sendMessage").pop().unwrap();
    assert_eq!(call.text(), Some("Hi Ann, want 20% off?"));
    assert_eq!(
        call.params["reply_markup"],
        json!({"inline_keyboard": [
            [{"text": "Yes please", "callback_data": "Yes please"}],
            [{"text": "STOP", "callback_data": "STOP"}]
        ]})
    );

    // A campaign message, and Ann presses a button under it.
    app.admin_setup(&[
        "/campaign new Buttons",
        "/campaign audience 1 tg:100",
        "/campaign text 1 Hello {{name}}",
        "/campaign send 1",
    ])
    .await;
    app.settle().await;
    let message_id = app
        .fake
        .calls_of("sendMessage")
        .iter()
        .rfind(|c| c.chat_id() == Some(ANN))
        .and_then(|c| c.message_id())
        .unwrap();
    let (update, query_id) = app.fake.press(ANN, "Ann", message_id, "Yes please");
    app.fake.wait_handled(update).await;
    let answered = app.fake.calls_of("answerCallbackQuery");
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].params["callback_query_id"], json!(query_id));
    assert_eq!(app.report(1).await["replied"], "1");

    // A button whose data is an opt-out word opts out, like typing it.
    let (update, _) = app.fake.press(ANN, "Ann", message_id, "STOP");
    app.fake.wait_handled(update).await;
    assert_eq!(app.contact(ANN).await.consent, Consent::OptedOut);
    assert!(app
        .fake
        .texts_to(ANN)
        .last()
        .unwrap()
        .contains("unsubscribed"));
    app.stop().await;
}

#[tokio::test]
async fn webhook_mode_registers_the_webhook_and_refuses_requests_without_the_secret() {
    let app = TgApp::start_with(false, |c| {
        c.telegram_webhook_url = Some("https://bot.example.com/hooks/telegram".into());
        c.telegram_secret_token = Some("s3cret-Token_1".into());
    })
    .await;
    app.fake.wait_for_call("setWebhook").await;
    let hook = app.fake.calls_of("setWebhook").pop().unwrap();
    assert_eq!(hook.params["url"], "https://bot.example.com/hooks/telegram");
    assert_eq!(hook.params["secret_token"], "s3cret-Token_1");
    assert!(
        app.fake.calls_of("getUpdates").is_empty(),
        "no polling in webhook mode"
    );

    // herald's HTTP server with the webhook merged in, as `herald run` builds it.
    let intake = herald::channels::intake::Intake::from_config(&app.engine.config);
    let hook = app
        .telegram
        .webhook_router(intake.clone())
        .expect("webhook mode has a route");
    let router = herald::http::router(app.engine.clone(), intake, Some(hook));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let update = json!({
        "update_id": 9001,
        "message": {
            "message_id": 77,
            "from": {"id": ANN, "is_bot": false, "first_name": "Ann"},
            "chat": {"id": ANN, "type": "private", "first_name": "Ann"},
            "date": app.now().timestamp(),
            "text": "/start"
        }
    });
    let http = reqwest::Client::new();
    let url = format!("{base}/hooks/telegram");
    for secret in [None, Some("wrong")] {
        let mut request = http.post(&url).json(&update);
        if let Some(secret) = secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        assert_eq!(request.send().await.unwrap().status(), 401);
    }
    // The secret is checked before the body is read: a huge body announced without it is
    // refused at once, and one announced over the limit with it too.
    for (secret, length, expected) in [
        (None, herald::channels::telegram::webhook::BODY_LIMIT, 401),
        (
            Some("wrong"),
            herald::channels::telegram::webhook::BODY_LIMIT,
            401,
        ),
        (
            Some("s3cret-Token_1"),
            herald::channels::telegram::webhook::BODY_LIMIT + 1,
            413,
        ),
    ] {
        let headers: Vec<(&str, &str)> = secret
            .map(|s| ("X-Telegram-Bot-Api-Secret-Token", s))
            .into_iter()
            .collect();
        let mut raw = RawRequest::post(&base, "/hooks/telegram", length, &headers).await;
        raw.send(b"{\"update_id\":").await;
        assert_eq!(raw.status().await, expected, "{secret:?}");
        assert!(
            raw.hangs_up().await,
            "{secret:?}: the connection stays open"
        );
    }
    assert!(app
        .engine
        .store
        .find_contact(&"tg:100".parse().expect("an address"))
        .await
        .unwrap()
        .is_none());

    let accepted = http
        .post(&url)
        .header("X-Telegram-Bot-Api-Secret-Token", "s3cret-Token_1")
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    let texts = app.fake.wait_texts(ANN, 1).await;
    assert!(texts[0].contains("subscribed"), "{texts:?}");

    // Telegram redelivers: handled once.
    let again = http
        .post(&url)
        .header("X-Telegram-Bot-Api-Secret-Token", "s3cret-Token_1")
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("herald_webhooks_received_total{channel=\"telegram\"} 7"),
        "{metrics}"
    );
    // The two accepted updates were timed (the refused requests were not).
    assert!(
        metrics
            .contains("herald_webhook_processing_duration_seconds_count{channel=\"telegram\"} 2"),
        "{metrics}"
    );
    let history = app
        .engine
        .store
        .consent_history(app.contact(ANN).await.id)
        .await
        .unwrap();
    server.abort();
    app.stop().await;
    assert_eq!(history.len(), 1);
}

/// `herald run` with only a bot token (and the fake's URL): it starts, polls, and answers a
/// customer's /start; SIGTERM stops it cleanly.
#[tokio::test]
async fn herald_run_with_only_a_telegram_token_answers_start() {
    let db = TestDb::new().await;
    let fake = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("run")
        .current_dir(dir.path())
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("TELEGRAM_TOKEN", TOKEN)
        .env("TELEGRAM_API_URL", &fake.url)
        .env("HTTP_ADDR", "127.0.0.1:0")
        .env("HERALD_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("herald runs");
    fake.wait_for_call("getUpdates").await;
    let id = fake.text(ANN, "Ann Lee", "/start", Utc::now());
    fake.wait_handled(id).await;
    let texts = fake.wait_texts(ANN, 1).await;
    assert!(texts[0].contains("subscribed"), "{texts:?}");
    // Someone who wants to be an admin writes /help: no answer, but the log names their id.
    let id = fake.text(BOB, "Bob", "/help", Utc::now());
    fake.wait_handled(id).await;
    assert!(fake.texts_to(BOB).is_empty());

    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("herald exits after SIGTERM")
        .unwrap();
    let mut log = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = stderr.read_to_string(&mut log).await;
    }
    assert!(exit.success(), "herald exited with {exit}: {log}");
    assert!(log.contains("telegram: connected"), "{log}");
    let hint = log
        .lines()
        .find(|l| l.contains("ADMIN_TELEGRAM"))
        .unwrap_or_else(|| panic!("no hint for a would-be admin in the log: {log}"));
    assert!(hint.contains("id=101") && hint.contains("/help"), "{hint}");
}

mod interactive;
mod media;
