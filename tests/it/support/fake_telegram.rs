//! A fake Telegram Bot API for integration tests. It listens on 127.0.0.1 and speaks the wire
//! format: `POST /bot<token>/<method>` with a JSON or form body, answered with
//! `{"ok":true,"result":...}` or `{"ok":false,"error_code":...,"description":...}`.
//!
//! It serves `getUpdates` from a script the test writes (long polling included: a call waits
//! until the test pushes an update or the timeout ends) and records every other call
//! (`sendMessage`, `editMessageText`, `answerCallbackQuery`, `setMyCommands`, ...).
//!
//! ```ignore
//! let fake = FakeTelegram::start().await;              // fake.url → TELEGRAM_API_URL
//! let id = fake.text(100, "Ann", "/start", at);         // a customer writes
//! fake.wait_handled(id).await;                          // herald asked for the next update
//! fake.rate_limit(100, 3, 1);                           // the next send to chat 100: 429
//! fake.block(101);                                      // chat 101 blocked the bot
//! assert_eq!(fake.texts_to(100), vec![...]);
//! ```
//!
//! Files: `getFile` answers a `file_path` for the files a test added, the file route
//! (`GET /file/bot<token>/<file_path>`) serves their bytes, and `sendDocument` / `sendPhoto`
//! (multipart) are recorded with the bytes of their file part.
//!
//! ```ignore
//! fake.add_file("BQAC-1", b"address,name\n...");      // a file a user can send
//! let id = fake.document(42, "Ada", "BQAC-1", "contacts.csv", "text/csv", Some("/contact import"), at);
//! fake.fail_download("BQAC-1", 404);
//! let sent = fake.files_to(42);                        // what the bot sent, bytes and all
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::multipart::{self, Part};

pub const TOKEN: &str = "123456:TEST-token";
pub const BOT_ID: i64 = 777;
pub const BOT_USERNAME: &str = "herald_test_bot";
/// The longest any wait for herald's background task may take before a test fails.
const WAIT: Duration = Duration::from_secs(15);

/// One Bot API call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// The parameters, as JSON (form values arrive as strings).
    pub params: Value,
    /// What the fake answered.
    pub response: Value,
    /// The file parts of a multipart call (`sendDocument`'s `document`, `sendPhoto`'s `photo`).
    pub files: Vec<Part>,
}

impl Call {
    pub fn ok(&self) -> bool {
        self.response["ok"] == json!(true)
    }

    pub fn chat_id(&self) -> Option<i64> {
        int(&self.params["chat_id"])
    }

    pub fn text(&self) -> Option<&str> {
        self.params["text"].as_str()
    }

    pub fn message_id(&self) -> Option<i64> {
        int(&self.params["message_id"]).or_else(|| int(&self.response["result"]["message_id"]))
    }
}

/// A scripted failure for calls into one chat.
#[derive(Debug, Clone)]
struct Failure {
    chat: i64,
    status: u16,
    body: Value,
    /// How many more calls it answers; `None` for all of them.
    remaining: Option<usize>,
}

#[derive(Default)]
struct Script {
    calls: Vec<Call>,
    /// Updates not yet confirmed by an offset past them.
    updates: VecDeque<Value>,
    next_update_id: i64,
    /// The highest offset a getUpdates call confirmed (updates below it were handled).
    confirmed: i64,
    failures: Vec<Failure>,
    next_message_id: i64,
    /// Text of each message the bot has in a chat, for editMessageText.
    messages: HashMap<(i64, i64), String>,
    /// Files users can send, by file_id.
    files: HashMap<String, TgFile>,
    /// file_ids of the files the bot sent, which it may send again by id.
    sent_files: HashSet<String>,
    /// file_ids whose bytes herald downloaded (or asked for), in order.
    downloads: Vec<String>,
}

/// A file the fake serves, and how it misbehaves.
#[derive(Debug, Clone, Default)]
struct TgFile {
    path: String,
    bytes: Vec<u8>,
    /// What getFile says the size is (the real size unless a test says otherwise).
    declared_size: Option<u64>,
    /// getFile's answer instead of the file.
    get_file_error: Option<(u16, Value)>,
    /// The file route's status instead of the bytes.
    download_status: Option<u16>,
    download_delay: Duration,
}

struct Shared {
    script: Mutex<Script>,
    /// Wakes a waiting getUpdates when the test pushes an update.
    pushed: Notify,
}

impl Shared {
    fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running fake Bot API. The server stops when this is dropped.
pub struct FakeTelegram {
    /// Base URL to use as `TELEGRAM_API_URL`.
    pub url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeTelegram {
    pub async fn start() -> FakeTelegram {
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                next_update_id: 500_000,
                next_message_id: 1,
                ..Script::default()
            }),
            pushed: Notify::new(),
        });
        let app = Router::new()
            .route("/{bot}/{method}", post(method).get(method))
            .route("/file/{bot}/{*path}", axum::routing::get(file_route))
            .fallback(|| async { not_found() })
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake Bot API");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("fake Bot API server");
        });
        FakeTelegram {
            url,
            shared,
            server,
        }
    }

    // ---- the script: what users do ----

    /// Queues a raw update (without `update_id`); returns the id it got.
    pub fn push(&self, mut update: Value) -> i64 {
        let id = {
            let mut s = self.shared.script();
            s.next_update_id += 1;
            let id = s.next_update_id;
            update["update_id"] = json!(id);
            s.updates.push_back(update);
            id
        };
        self.shared.pushed.notify_waiters();
        id
    }

    /// A private-chat text message from user `chat` (chat id = user id), named `name`.
    pub fn text(&self, chat: i64, name: &str, text: &str, at: DateTime<Utc>) -> i64 {
        let message_id = self.next_message_id();
        let (first, last) = match name.split_once(' ') {
            Some((f, l)) => (f, Some(l)),
            None => (name, None),
        };
        let mut user =
            json!({"id": chat, "is_bot": false, "first_name": first, "language_code": "en"});
        let mut chat_json = json!({"id": chat, "type": "private", "first_name": first});
        if let Some(last) = last {
            user["last_name"] = json!(last);
            chat_json["last_name"] = json!(last);
        }
        let mut message = json!({
            "message_id": message_id,
            "from": user,
            "chat": chat_json,
            "date": at.timestamp(),
            "text": text,
        });
        if text.starts_with('/') {
            let len = text
                .split_whitespace()
                .next()
                .unwrap_or("")
                .encode_utf16()
                .count();
            message["entities"] = json!([{"type": "bot_command", "offset": 0, "length": len}]);
        }
        self.push(json!({"message": message}))
    }

    /// User `chat` presses an inline button with `data` under the bot's message `message_id`.
    pub fn press(&self, chat: i64, name: &str, message_id: i64, data: &str) -> (i64, String) {
        let query_id = format!("cbq-{chat}-{message_id}-{}", self.next_message_id());
        let text = self
            .shared
            .script()
            .messages
            .get(&(chat, message_id))
            .cloned()
            .unwrap_or_default();
        let update = json!({
            "callback_query": {
                "id": query_id,
                "from": {"id": chat, "is_bot": false, "first_name": name},
                "chat_instance": format!("ci-{chat}"),
                "data": data,
                "message": {
                    "message_id": message_id,
                    "from": bot_user(),
                    "chat": {"id": chat, "type": "private", "first_name": name},
                    "date": 1_800_000_000,
                    "text": text,
                }
            }
        });
        (self.push(update), query_id)
    }

    /// User `chat` sends a document (`file_id`, added with [`FakeTelegram::add_file`]) with an
    /// optional caption.
    #[allow(clippy::too_many_arguments)]
    pub fn document(
        &self,
        chat: i64,
        name: &str,
        file_id: &str,
        file_name: &str,
        mime: &str,
        caption: Option<&str>,
        at: DateTime<Utc>,
    ) -> i64 {
        let size = self.declared_size(file_id);
        let media = json!({
            "document": {
                "file_id": file_id, "file_unique_id": format!("u-{file_id}"),
                "file_name": file_name, "mime_type": mime, "file_size": size
            }
        });
        self.media_message(chat, name, media, caption, at)
    }

    /// User `chat` sends a photo (`file_id`) with an optional caption.
    pub fn photo(
        &self,
        chat: i64,
        name: &str,
        file_id: &str,
        caption: Option<&str>,
        at: DateTime<Utc>,
    ) -> i64 {
        let size = self.declared_size(file_id);
        let media = json!({
            "photo": [
                {"file_id": format!("{file_id}-thumb"), "file_unique_id": "thumb", "width": 90, "height": 60, "file_size": 900},
                {"file_id": file_id, "file_unique_id": format!("u-{file_id}"), "width": 1000, "height": 600, "file_size": size}
            ]
        });
        self.media_message(chat, name, media, caption, at)
    }

    fn declared_size(&self, file_id: &str) -> u64 {
        self.shared
            .script()
            .files
            .get(file_id)
            .map(|f| f.declared_size.unwrap_or(f.bytes.len() as u64))
            .unwrap_or(0)
    }

    fn media_message(
        &self,
        chat: i64,
        name: &str,
        media: Value,
        caption: Option<&str>,
        at: DateTime<Utc>,
    ) -> i64 {
        let message_id = self.next_message_id();
        let mut message = json!({
            "message_id": message_id,
            "from": {"id": chat, "is_bot": false, "first_name": name},
            "chat": {"id": chat, "type": "private", "first_name": name},
            "date": at.timestamp(),
        });
        for (k, v) in media.as_object().into_iter().flatten() {
            message[k] = v.clone();
        }
        if let Some(caption) = caption {
            message["caption"] = json!(caption);
            if caption.starts_with('/') {
                let len = caption
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .encode_utf16()
                    .count();
                message["caption_entities"] =
                    json!([{"type": "bot_command", "offset": 0, "length": len}]);
            }
        }
        self.push(json!({"message": message}))
    }

    // ---- the script: files ----

    /// A file users can send as `file_id`; getFile gives it a path under `documents/`.
    pub fn add_file(&self, file_id: &str, bytes: impl Into<Vec<u8>>) {
        let mut s = self.shared.script();
        let path = format!("documents/file_{}.bin", s.files.len() + 1);
        s.files.insert(
            file_id.to_string(),
            TgFile {
                path,
                bytes: bytes.into(),
                ..TgFile::default()
            },
        );
    }

    /// getFile and the message say the file has `size` bytes, whatever it really has.
    pub fn declare_file_size(&self, file_id: &str, size: u64) {
        self.with_file(file_id, |f| f.declared_size = Some(size));
    }

    /// getFile answers `status` with Telegram's error `description`.
    pub fn fail_get_file(&self, file_id: &str, status: u16, description: &str) {
        let body = json!({"ok": false, "error_code": status, "description": description});
        self.with_file(file_id, |f| f.get_file_error = Some((status, body)));
    }

    /// The file route answers `status` for this file.
    pub fn fail_download(&self, file_id: &str, status: u16) {
        self.with_file(file_id, |f| f.download_status = Some(status));
    }

    /// The file route waits this long before answering for this file.
    pub fn delay_download(&self, file_id: &str, delay: Duration) {
        self.with_file(file_id, |f| f.download_delay = delay);
    }

    fn with_file(&self, file_id: &str, edit: impl FnOnce(&mut TgFile)) {
        let mut s = self.shared.script();
        edit(s.files.entry(file_id.to_string()).or_default());
    }

    /// file_ids herald asked the file route for, in order.
    pub fn downloads(&self) -> Vec<String> {
        self.shared.script().downloads.clone()
    }

    /// Accepted `sendDocument` / `sendPhoto` calls into `chat`, in order: (method, file part).
    pub fn files_to(&self, chat: i64) -> Vec<(String, Part)> {
        self.calls()
            .into_iter()
            .filter(|c| c.ok() && c.chat_id() == Some(chat))
            .filter(|c| ["sendDocument", "sendPhoto", "sendVideo"].contains(&c.method.as_str()))
            .filter_map(|c| Some((c.method.clone(), c.files.first()?.clone())))
            .collect()
    }

    // ---- the script: how the Bot API answers ----

    /// The next `times` calls into `chat` answer 429 with `retry_after`.
    pub fn rate_limit(&self, chat: i64, retry_after: u64, times: usize) {
        self.fail(
            chat,
            429,
            json!({
                "ok": false, "error_code": 429,
                "description": format!("Too Many Requests: retry after {retry_after}"),
                "parameters": {"retry_after": retry_after}
            }),
            Some(times),
        );
    }

    /// `chat` blocked the bot: every call into it answers 403.
    pub fn block(&self, chat: i64) {
        self.fail(
            chat,
            403,
            json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
            None,
        );
    }

    /// Calls into `chat` answer `status` with `body` (`times` of them, or all for `None`).
    pub fn fail(&self, chat: i64, status: u16, body: Value, times: Option<usize>) {
        self.shared.script().failures.push(Failure {
            chat,
            status,
            body,
            remaining: times,
        });
    }

    // ---- what herald did ----

    pub fn calls(&self) -> Vec<Call> {
        self.shared.script().calls.clone()
    }

    /// Calls of one method, in order.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Texts of the messages `chat` received (accepted `sendMessage` calls), in order.
    pub fn texts_to(&self, chat: i64) -> Vec<String> {
        self.calls_of("sendMessage")
            .iter()
            .filter(|c| c.ok() && c.chat_id() == Some(chat))
            .filter_map(|c| c.text().map(str::to_string))
            .collect()
    }

    /// `sendMessage` attempts into `chat`, accepted or not.
    pub fn attempts_to(&self, chat: i64) -> usize {
        self.calls_of("sendMessage")
            .iter()
            .filter(|c| c.chat_id() == Some(chat))
            .count()
    }

    /// Accepted `editMessageText` calls in `chat`, as (message id, new text).
    pub fn edits_in(&self, chat: i64) -> Vec<(i64, String)> {
        self.calls_of("editMessageText")
            .iter()
            .filter(|c| c.ok() && c.chat_id() == Some(chat))
            .filter_map(|c| Some((c.message_id()?, c.text()?.to_string())))
            .collect()
    }

    /// The current text of the bot's message `message_id` in `chat`.
    pub fn message(&self, chat: i64, message_id: i64) -> Option<String> {
        self.shared
            .script()
            .messages
            .get(&(chat, message_id))
            .cloned()
    }

    /// Waits (bounded) until herald confirmed update `id`, i.e. asked for the updates after it.
    /// herald handles a batch before asking again, so by then the update was handled.
    pub async fn wait_handled(&self, id: i64) {
        self.wait_until(&format!("update {id} handled"), |s| s.confirmed > id)
            .await;
    }

    /// Waits (bounded) until herald has made at least one call of `method`.
    pub async fn wait_for_call(&self, method: &str) {
        self.wait_until(&format!("a {method} call"), |s| {
            s.calls.iter().any(|c| c.method == method)
        })
        .await;
    }

    /// Waits (bounded) until `chat` has received `n` messages; returns them.
    pub async fn wait_texts(&self, chat: i64, n: usize) -> Vec<String> {
        self.wait_until(&format!("{n} message(s) into chat {chat}"), |s| {
            s.calls
                .iter()
                .filter(|c| c.method == "sendMessage" && c.ok() && c.chat_id() == Some(chat))
                .count()
                >= n
        })
        .await;
        self.texts_to(chat)
    }

    async fn wait_until(&self, what: &str, done: impl Fn(&Script) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if done(&self.shared.script()) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let calls: Vec<String> = self
                    .calls()
                    .iter()
                    .map(|c| format!("{} {} -> {}", c.method, c.params, c.response))
                    .collect();
                panic!("fake Telegram: gave up waiting for {what}; calls so far:\n{calls:#?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn next_message_id(&self) -> i64 {
        let mut s = self.shared.script();
        s.next_message_id += 1;
        s.next_message_id
    }
}

const KNOWN_METHODS: &[&str] = &[
    "getMe",
    "getUpdates",
    "setWebhook",
    "deleteWebhook",
    "setMyCommands",
    "deleteMyCommands",
    "sendMessage",
    "editMessageText",
    "answerCallbackQuery",
    "getFile",
    "sendDocument",
    "sendPhoto",
    "sendVideo",
];

fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str()?.parse().ok())
}

fn bot_user() -> Value {
    json!({"id": BOT_ID, "is_bot": true, "first_name": "Herald", "username": BOT_USERNAME})
}

fn not_found() -> Response {
    error(404, "Not Found")
}

fn error(status: u16, description: &str) -> Response {
    answer(
        status,
        json!({"ok": false, "error_code": status, "description": description}),
    )
}

fn answer(status: u16, body: Value) -> Response {
    let status = axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}

/// The parameters of a call: a JSON body, a form body, or the query string; and the file parts
/// of a multipart body.
async fn params(request: Request) -> Result<(Value, Vec<Part>), Response> {
    let query: Value = request
        .uri()
        .query()
        .map(|q| {
            serde_json::to_value(
                serde_urlencoded_pairs(q)
                    .into_iter()
                    .collect::<HashMap<String, String>>(),
            )
            .unwrap_or(Value::Null)
        })
        .unwrap_or_else(|| json!({}));
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if content_type.starts_with("application/json") {
        let Json(body) = Json::<Value>::from_request(request, &())
            .await
            .map_err(|_| error(400, "Bad Request: can't parse JSON"))?;
        return Ok((body, Vec::new()));
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let axum::Form(form) = axum::Form::<HashMap<String, String>>::from_request(request, &())
            .await
            .map_err(|_| error(400, "Bad Request: can't parse form"))?;
        // Structured fields (reply_markup, commands, scope) arrive JSON-encoded in forms.
        let fields = form
            .into_iter()
            .map(|(k, v)| {
                let value = match serde_json::from_str::<Value>(&v) {
                    Ok(parsed @ (Value::Object(_) | Value::Array(_))) => parsed,
                    _ => Value::String(v),
                };
                (k, value)
            })
            .collect::<serde_json::Map<_, _>>();
        return Ok((Value::Object(fields), Vec::new()));
    }
    if content_type.starts_with("multipart/form-data") {
        // teloxide sends methods that carry a file (sendDocument, sendPhoto, setWebhook's
        // certificate) as multipart: text fields become parameters, file parts are kept whole.
        let boundary = multipart::boundary(&content_type)
            .ok_or_else(|| error(400, "Bad Request: multipart without boundary"))?;
        let body = axum::body::to_bytes(request.into_body(), 60 << 20)
            .await
            .map_err(|_| error(400, "Bad Request: unreadable body"))?;
        let mut fields = serde_json::Map::new();
        let mut files = Vec::new();
        for part in multipart::parse(&body, &boundary) {
            if part.filename.is_some() {
                files.push(part);
                continue;
            }
            let text = part.text();
            let value = match serde_json::from_str::<Value>(&text) {
                Ok(parsed @ (Value::Object(_) | Value::Array(_))) => parsed,
                _ => Value::String(text),
            };
            fields.insert(part.name, value);
        }
        return Ok((Value::Object(fields), files));
    }
    Ok((query, Vec::new()))
}

/// `a=1&b=x%20y` into pairs (the query string form of a call).
fn serde_urlencoded_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn method(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    request: Request,
) -> Response {
    if bot.strip_prefix("bot") != Some(TOKEN) {
        return error(401, "Unauthorized");
    }
    // Bot API method names are case-insensitive (teloxide writes `GetMe`); record them the way
    // the documentation spells them.
    let method = KNOWN_METHODS
        .iter()
        .find(|m| m.eq_ignore_ascii_case(&method))
        .map_or(method, |m| (*m).to_string());
    let (params, files) = match params(request).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    if method == "getUpdates" {
        return get_updates(&shared, &params).await;
    }
    let (status, body) = {
        let mut s = shared.script();
        let (status, body) = respond(&mut s, &method, &params, &files);
        s.calls.push(Call {
            method: method.clone(),
            params,
            response: body.clone(),
            files,
        });
        (status, body)
    };
    answer(status, body)
}

/// `GET /file/bot<token>/<file_path>`: the file's bytes, streamed.
async fn file_route(
    State(shared): State<Arc<Shared>>,
    Path((bot, path)): Path<(String, String)>,
) -> Response {
    if bot.strip_prefix("bot") != Some(TOKEN) {
        return error(401, "Unauthorized");
    }
    let found = {
        let mut s = shared.script();
        let found = s
            .files
            .iter()
            .find(|(_, f)| f.path == path)
            .map(|(id, f)| (id.clone(), f.clone()));
        if let Some((id, _)) = &found {
            s.downloads.push(id.clone());
        }
        found
    };
    let Some((_, file)) = found else {
        return not_found();
    };
    if !file.download_delay.is_zero() {
        tokio::time::sleep(file.download_delay).await;
    }
    if let Some(status) = file.download_status {
        return error(status, "Not Found");
    }
    let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> = file
        .bytes
        .chunks(64 * 1024)
        .map(|c| Ok(axum::body::Bytes::copy_from_slice(c)))
        .collect();
    axum::body::Body::from_stream(futures::stream::iter(chunks)).into_response()
}

/// The answer to one recorded method call: a scripted failure, a validation error, or success.
fn respond(s: &mut Script, method: &str, p: &Value, files: &[Part]) -> (u16, Value) {
    let ok = |result: Value| (200, json!({"ok": true, "result": result}));
    let bad = |description: &str| {
        (
            400,
            json!({"ok": false, "error_code": 400, "description": format!("Bad Request: {description}")}),
        )
    };
    // setMyCommands names its chat inside `scope`.
    let chat = int(&p["chat_id"]).or_else(|| int(&p["scope"]["chat_id"]));
    if let Some(chat) = chat {
        if let Some(f) = s
            .failures
            .iter_mut()
            .find(|f| f.chat == chat && f.remaining != Some(0))
        {
            if let Some(n) = f.remaining.as_mut() {
                *n -= 1;
            }
            return (f.status, f.body.clone());
        }
    }
    match method {
        "getMe" => ok(json!({
            "id": BOT_ID, "is_bot": true, "first_name": "Herald", "username": BOT_USERNAME,
            "can_join_groups": true, "can_read_all_group_messages": false,
            "supports_inline_queries": false, "can_connect_to_business": false,
            "has_main_web_app": false
        })),
        "setMyCommands"
        | "deleteMyCommands"
        | "setWebhook"
        | "deleteWebhook"
        | "answerCallbackQuery" => ok(json!(true)),
        "sendMessage" => {
            let Some(chat) = chat else {
                return bad("chat_id is empty");
            };
            let text = p["text"].as_str().unwrap_or("");
            if text.trim().is_empty() {
                return bad("message text is empty");
            }
            if text.encode_utf16().count() > 4096 {
                return bad("message is too long");
            }
            s.next_message_id += 1;
            let message_id = s.next_message_id;
            s.messages.insert((chat, message_id), text.to_string());
            let mut message = json!({
                "message_id": message_id,
                "from": bot_user(),
                "chat": {"id": chat, "type": "private", "first_name": "Customer"},
                "date": Utc::now().timestamp(),
                "text": text,
            });
            if p["reply_markup"].is_object() {
                message["reply_markup"] = p["reply_markup"].clone();
            }
            ok(message)
        }
        "getFile" => {
            let id = p["file_id"].as_str().unwrap_or("");
            match s.files.get(id) {
                None => bad("invalid file_id"),
                Some(TgFile {
                    get_file_error: Some((status, body)),
                    ..
                }) => (*status, body.clone()),
                Some(f) => ok(json!({
                    "file_id": id,
                    "file_unique_id": format!("u-{id}"),
                    "file_size": f.declared_size.unwrap_or(f.bytes.len() as u64),
                    "file_path": f.path,
                })),
            }
        }
        "sendDocument" | "sendPhoto" | "sendVideo" => {
            let Some(chat) = chat else {
                return bad("chat_id is empty");
            };
            let field = match method {
                "sendDocument" => "document",
                "sendPhoto" => "photo",
                _ => "video",
            };
            // The file is the part named like the field, or the part the field names as
            // `attach://<name>` (teloxide's way); or the field is a file_id the bot got before,
            // or an HTTP URL for Telegram to fetch.
            let named = p[field].as_str().unwrap_or("");
            let attached = named.strip_prefix("attach://");
            let file = files
                .iter()
                .find(|f| f.name == field || Some(f.name.as_str()) == attached);
            let (size, filename) = match file {
                Some(file) => (file.data.len(), file.filename.clone()),
                None if named.starts_with("https://") || named.starts_with("http://") => {
                    (1000, None)
                }
                None if s.sent_files.contains(named) || s.files.contains_key(named) => (1000, None),
                None if named.is_empty() => {
                    return bad(&format!("there is no {field} in the request"))
                }
                None => return bad("wrong file identifier/HTTP URL specified"),
            };
            if p["caption"]
                .as_str()
                .is_some_and(|c| c.encode_utf16().count() > 1024)
            {
                return bad("message caption is too long");
            }
            s.next_message_id += 1;
            let message_id = s.next_message_id;
            let file_id = format!("sent-{message_id}");
            s.sent_files.insert(file_id.clone());
            let mut message = json!({
                "message_id": message_id,
                "from": bot_user(),
                "chat": {"id": chat, "type": "private", "first_name": "Admin"},
                "date": Utc::now().timestamp(),
            });
            match method {
                "sendDocument" => {
                    message["document"] = json!({
                        "file_id": file_id, "file_unique_id": format!("su-{message_id}"),
                        "file_name": filename, "mime_type": "text/csv", "file_size": size
                    })
                }
                "sendPhoto" => {
                    message["photo"] = json!([{
                        "file_id": file_id, "file_unique_id": format!("su-{message_id}"),
                        "width": 1000, "height": 600, "file_size": size
                    }])
                }
                _ => {
                    message["video"] = json!({
                        "file_id": file_id, "file_unique_id": format!("su-{message_id}"),
                        "width": 1280, "height": 720, "duration": 5, "file_size": size
                    })
                }
            }
            if let Some(caption) = p["caption"].as_str() {
                message["caption"] = json!(caption);
            }
            if p["reply_markup"].is_object() {
                message["reply_markup"] = p["reply_markup"].clone();
            }
            ok(message)
        }
        "editMessageText" => {
            let (Some(chat), Some(message_id)) = (chat, int(&p["message_id"])) else {
                return bad("message identifier is not specified");
            };
            let text = p["text"].as_str().unwrap_or("");
            match s.messages.get(&(chat, message_id)) {
                None => bad("message to edit not found"),
                Some(old) if old == text => bad(
                    "message is not modified: specified new message content and reply markup are \
                     exactly the same as a current content and reply markup of the message",
                ),
                Some(_) => {
                    s.messages.insert((chat, message_id), text.to_string());
                    ok(json!({
                        "message_id": message_id,
                        "from": bot_user(),
                        "chat": {"id": chat, "type": "private", "first_name": "Admin"},
                        "date": Utc::now().timestamp(),
                        "edit_date": Utc::now().timestamp(),
                        "text": text,
                    }))
                }
            }
        }
        _ => (
            404,
            json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"}),
        ),
    }
}

/// Long polling: confirms everything below `offset`, then answers the pending updates, or
/// waits for one until `timeout` seconds pass.
async fn get_updates(shared: &Shared, p: &Value) -> Response {
    let offset = int(&p["offset"]).unwrap_or(0);
    let timeout = Duration::from_secs(int(&p["timeout"]).unwrap_or(0).clamp(0, 50) as u64);
    let limit = int(&p["limit"]).unwrap_or(100).clamp(1, 100) as usize;
    let deadline = tokio::time::Instant::now() + timeout;
    shared.script().calls.push(Call {
        method: "getUpdates".into(),
        params: p.clone(),
        response: json!({"ok": true}),
        files: Vec::new(),
    });
    loop {
        // Registered before looking, so a push between the look and the wait is not missed.
        let pushed = shared.pushed.notified();
        {
            let mut s = shared.script();
            if offset > s.confirmed {
                s.confirmed = offset;
            }
            s.updates
                .retain(|u| u["update_id"].as_i64().is_some_and(|id| id >= offset));
            if !s.updates.is_empty() || tokio::time::Instant::now() >= deadline {
                let batch: Vec<Value> = s.updates.iter().take(limit).cloned().collect();
                return answer(200, json!({"ok": true, "result": batch}));
            }
        }
        tokio::select! {
            _ = pushed => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}
