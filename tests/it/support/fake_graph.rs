//! A fake WhatsApp Cloud API (Graph) server for integration tests: it listens on 127.0.0.1, records
//! every `POST /{phone_number_id}/messages` and answers like Meta, or as a test scripted it. It
//! also serves a Business account's templates, `GET /{waba_id}/message_templates`, in pages
//! linked by `paging.next` as Meta does ([`FakeGraph::set_templates`]).
//!
//! ```ignore
//! let fake = FakeGraph::start().await;            // fake.url → WHATSAPP_API_URL
//! fake.on_recipient("15550003", 400, FakeGraph::meta_error(131026, "Message undeliverable", ""));
//! fake.fail_next(1, 500, "oops");                  // the next POST, whoever it is for
//! fake.rate_limit_next(1, 2);                      // 429 + Retry-After: 2
//! ... run herald ...
//! assert_eq!(fake.accepted_for("15550001"), 1);
//! ```
//!
//! It also plays Meta's media endpoints: `GET /{media-id}` (answers a download `url` on the fake
//! itself, the `mime_type` and the `file_size`), that download (streamed, without a length, so
//! herald must count the bytes), and `POST /{phone_number_id}/media` (multipart uploads, kept
//! with their bytes). Each can be told to fail or to be slow.
//!
//! ```ignore
//! fake.add_media("9001", "text/csv", csv_bytes);   // an admin's attachment
//! fake.declare_size("9001", 25 * 1024 * 1024);     // what GET /9001 says its size is
//! fake.fail_media("9001", 404, FakeGraph::meta_error(100, "...", ""));
//! fake.delay_download("9001", Duration::from_secs(5));
//! let upload = fake.upload("4490709327384033");     // what herald uploaded, bytes and all
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::RawQuery;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

/// One POST the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Request path, e.g. `/1122334455667/messages`.
    pub path: String,
    pub phone_number_id: String,
    /// The `Authorization` header as sent (`Bearer <token>`).
    pub authorization: Option<String>,
    /// The parsed JSON body (`Value::Null` when it was not JSON).
    pub body: Value,
    /// The HTTP status the fake answered with.
    pub status: u16,
    /// The wamid handed out, for accepted messages.
    pub wamid: Option<String>,
}

impl RecordedRequest {
    /// The `to` field: the recipient's digits.
    pub fn to(&self) -> Option<&str> {
        self.body["to"].as_str()
    }

    /// `text.body` of a text message.
    pub fn text(&self) -> Option<&str> {
        self.body["text"]["body"].as_str()
    }

    /// `template.name` of a template message.
    pub fn template_name(&self) -> Option<&str> {
        self.body["template"]["name"].as_str()
    }

    /// The `biz_opaque_callback_data` sent along.
    pub fn callback(&self) -> Option<&str> {
        self.body["biz_opaque_callback_data"].as_str()
    }

    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    body: String,
    retry_after: Option<String>,
}

#[derive(Default)]
struct Script {
    requests: Vec<RecordedRequest>,
    /// Answers for the next POSTs, whoever they are for; used before any recipient rule.
    next: VecDeque<Reply>,
    /// Standing answers for one recipient (`to` digits).
    by_recipient: HashMap<String, Reply>,
    /// Only this bearer token is accepted, when set.
    token: Option<String>,
    /// Delay before every answer (to test timeouts and in-flight behaviour).
    latency: Duration,
    /// Files behind `GET /{media-id}`, by media id.
    media: HashMap<String, Media>,
    /// Media ids looked up and downloaded, in order.
    lookups: Vec<String>,
    downloads: Vec<String>,
    /// Files herald uploaded, in order.
    uploads: Vec<Upload>,
    /// Answers for the next uploads only (messages are not affected).
    upload_failures: VecDeque<Reply>,
    /// The Business account's templates, as Meta describes each.
    templates: Vec<Value>,
    /// Templates per page at most (Meta's `limit` may ask for fewer).
    template_page_size: usize,
    /// A standing answer to every template request, instead of the list.
    templates_fail: Option<Reply>,
    template_requests: Vec<TemplateRequest>,
}

/// A file the fake serves as an attachment, and how it misbehaves.
#[derive(Debug, Clone, Default)]
struct Media {
    mime: String,
    bytes: Vec<u8>,
    /// What the lookup says the size is (the real size unless a test says otherwise).
    declared_size: Option<u64>,
    /// The lookup's answer instead of the media object.
    lookup_error: Option<Reply>,
    /// The download's status instead of the bytes.
    download_status: Option<u16>,
    download_delay: Duration,
}

/// A `POST /{phone_number_id}/media` the fake received.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The media id the fake answered.
    pub id: String,
    pub phone_number_id: String,
    pub authorization: Option<String>,
    /// The form's `messaging_product` and `type` fields.
    pub messaging_product: Option<String>,
    pub kind: Option<String>,
    /// The `file` part: its file name, content type and bytes.
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// One `GET .../message_templates` the fake received.
#[derive(Debug, Clone)]
pub struct TemplateRequest {
    pub waba_id: String,
    /// The query string as sent (`limit=100&fields=...&after=...`).
    pub query: String,
    pub authorization: Option<String>,
    pub status: u16,
}

struct Shared {
    script: Mutex<Script>,
    wamids: AtomicU64,
    /// The fake's own base URL, for the download `url`s it hands out.
    url: Mutex<String>,
}

impl Shared {
    fn script(&self) -> MutexGuard<'_, Script> {
        // A test that panicked while holding the lock has already failed; keep serving the rest.
        self.script.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running fake Graph API. The server stops when this is dropped.
pub struct FakeGraph {
    /// Base URL to use as `WHATSAPP_API_URL` (no trailing slash, no version segment).
    pub url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeGraph {
    pub async fn start() -> FakeGraph {
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                template_page_size: 100,
                ..Script::default()
            }),
            wamids: AtomicU64::new(1),
            url: Mutex::new(String::new()),
        });
        // With or without a version segment, so WHATSAPP_API_URL may be `{url}` or `{url}/v21.0`.
        let app = Router::new()
            .route("/{phone_number_id}/messages", post(messages))
            .route(
                "/{version}/{phone_number_id}/messages",
                post(versioned_messages),
            )
            .route("/{phone_number_id}/media", post(upload_media))
            .route(
                "/{version}/{phone_number_id}/media",
                post(versioned_upload_media),
            )
            // Media lookups (`/{media-id}`, with or without a version) and downloads share path
            // shapes with the routes above, so they are told apart here.
            .route("/{waba_id}/message_templates", get(templates))
            .route(
                "/{version}/{waba_id}/message_templates",
                get(versioned_templates),
            )
            .fallback(get_media_or_unknown)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake Graph API");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        *shared.url.lock().unwrap_or_else(|p| p.into_inner()) = url.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("fake Graph API server");
        });
        FakeGraph {
            url,
            shared,
            server,
        }
    }

    /// The next `n` POSTs (to anyone) get `status` with `body` (e.g. [`FakeGraph::meta_error`]).
    pub fn fail_next(&self, n: usize, status: u16, body: impl Into<String>) {
        let reply = Reply {
            status,
            body: body.into(),
            retry_after: None,
        };
        self.shared
            .script()
            .next
            .extend(std::iter::repeat_n(reply, n));
    }

    /// The next `n` POSTs get HTTP 429 with `Retry-After: retry_after_secs` and Meta's 130429.
    pub fn rate_limit_next(&self, n: usize, retry_after_secs: u64) {
        let reply = Reply {
            status: 429,
            body: Self::meta_error(
                130429,
                "Rate limit hit",
                "Cloud API message throughput has been reached.",
            ),
            retry_after: Some(retry_after_secs.to_string()),
        };
        self.shared
            .script()
            .next
            .extend(std::iter::repeat_n(reply, n));
    }

    /// Every POST to `to` (digits, as in the body's `to`) gets `status` with `body` until
    /// [`FakeGraph::clear_recipient`]; a `fail_next` answer still comes first.
    pub fn on_recipient(&self, to: &str, status: u16, body: impl Into<String>) {
        self.shared.script().by_recipient.insert(
            digits(to),
            Reply {
                status,
                body: body.into(),
                retry_after: None,
            },
        );
    }

    pub fn clear_recipient(&self, to: &str) {
        self.shared.script().by_recipient.remove(&digits(to));
    }

    /// Accept only `Bearer <token>`; anything else gets Meta's 401 / code 190.
    pub fn require_token(&self, token: &str) {
        self.shared.script().token = Some(token.to_string());
    }

    /// Wait this long before answering each POST.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.script().latency = latency;
    }

    /// Every POST received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.script().requests.clone()
    }

    /// How many POSTs were addressed to `to` (accepted or not).
    pub fn count_for(&self, to: &str) -> usize {
        let to = digits(to);
        self.shared
            .script()
            .requests
            .iter()
            .filter(|r| r.to() == Some(to.as_str()))
            .count()
    }

    /// How many messages to `to` the fake accepted (what the customer actually received).
    pub fn accepted_for(&self, to: &str) -> usize {
        let to = digits(to);
        self.shared
            .script()
            .requests
            .iter()
            .filter(|r| r.accepted() && r.to() == Some(to.as_str()))
            .count()
    }

    /// Accepted messages, in order.
    pub fn accepted(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.accepted())
            .collect()
    }

    // ---- media -------------------------------------------------------------------------------

    /// A file an admin's message can carry as media id `id`.
    pub fn add_media(&self, id: &str, mime: &str, bytes: impl Into<Vec<u8>>) {
        self.shared.script().media.insert(
            id.to_string(),
            Media {
                mime: mime.to_string(),
                bytes: bytes.into(),
                ..Media::default()
            },
        );
    }

    /// `GET /{id}` says the file has `size` bytes, whatever it really has.
    pub fn declare_size(&self, id: &str, size: u64) {
        self.with_media(id, |m| m.declared_size = Some(size));
    }

    /// `GET /{id}` answers `status` with `body` (e.g. [`FakeGraph::meta_error`]).
    pub fn fail_media(&self, id: &str, status: u16, body: impl Into<String>) {
        let reply = Reply {
            status,
            body: body.into(),
            retry_after: None,
        };
        self.with_media(id, |m| m.lookup_error = Some(reply));
    }

    /// The download of `id` answers `status` instead of the file.
    pub fn fail_download(&self, id: &str, status: u16) {
        self.with_media(id, |m| m.download_status = Some(status));
    }

    /// The download of `id` waits this long before answering.
    pub fn delay_download(&self, id: &str, delay: Duration) {
        self.with_media(id, |m| m.download_delay = delay);
    }

    fn with_media(&self, id: &str, edit: impl FnOnce(&mut Media)) {
        let mut script = self.shared.script();
        edit(script.media.entry(id.to_string()).or_default());
    }

    /// Media ids herald looked up (`GET /{media-id}`), in order.
    pub fn media_lookups(&self) -> Vec<String> {
        self.shared.script().lookups.clone()
    }

    /// Media ids whose bytes herald downloaded (or started to), in order.
    pub fn media_downloads(&self) -> Vec<String> {
        self.shared.script().downloads.clone()
    }

    /// The next `n` uploads are answered `status` with `body` (messages are not affected).
    pub fn fail_uploads(&self, n: usize, status: u16, body: impl Into<String>) {
        let body = body.into();
        let mut script = self.shared.script();
        for _ in 0..n {
            script.upload_failures.push_back(Reply {
                status,
                body: body.clone(),
                retry_after: None,
            });
        }
    }

    /// Every upload herald made, in order.
    pub fn uploads(&self) -> Vec<Upload> {
        self.shared.script().uploads.clone()
    }

    /// The upload that got media id `id`; panics if there is none.
    pub fn upload(&self, id: &str) -> Upload {
        self.uploads()
            .into_iter()
            .find(|u| u.id == id)
            .unwrap_or_else(|| panic!("no upload got media id {id}"))
    }

    /// The Business account's templates (Meta's JSON for each), served `page_size` a page.
    pub fn set_templates(&self, templates: Vec<Value>, page_size: usize) {
        let mut script = self.shared.script();
        script.templates = templates;
        script.template_page_size = page_size.max(1);
    }

    /// Every template request gets `status` with `body` until [`FakeGraph::serve_templates`].
    pub fn fail_templates(&self, status: u16, body: impl Into<String>) {
        self.shared.script().templates_fail = Some(Reply {
            status,
            body: body.into(),
            retry_after: None,
        });
    }

    /// Template requests are answered with the list again.
    pub fn serve_templates(&self) {
        self.shared.script().templates_fail = None;
    }

    /// Every template request received, in order.
    pub fn template_requests(&self) -> Vec<TemplateRequest> {
        self.shared.script().template_requests.clone()
    }

    /// Meta's error JSON for `code`.
    pub fn meta_error(code: i64, message: &str, details: &str) -> String {
        json!({
            "error": {
                "message": format!("(#{code}) {message}"),
                "type": "OAuthException",
                "code": code,
                "error_data": {"messaging_product": "whatsapp", "details": details},
                "fbtrace_id": "AFakeTraceId"
            }
        })
        .to_string()
    }
}

/// Strips `wa:`, `+` and punctuation so tests may name a recipient either way.
fn digits(to: &str) -> String {
    to.chars().filter(char::is_ascii_digit).collect()
}

async fn versioned_messages(
    State(shared): State<Arc<Shared>>,
    Path((_version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(&shared, phone_number_id, &headers, &body).await
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    Path(phone_number_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(&shared, phone_number_id, &headers, &body).await
}

async fn versioned_templates(
    State(shared): State<Arc<Shared>>,
    Path((version, waba_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    template_page(&shared, Some(version), waba_id, query, &headers)
}

async fn templates(
    State(shared): State<Arc<Shared>>,
    Path(waba_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    template_page(&shared, None, waba_id, query, &headers)
}

/// One page of the template list, as Meta pages it: `data`, and `paging` with cursors and a
/// `next` URL while templates remain (`after` is the index of the next template here).
fn template_page(
    shared: &Shared,
    version: Option<String>,
    waba_id: String,
    query: Option<String>,
    headers: &HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    let mut script = shared.script();
    let token_ok = match (&script.token, authorization.as_deref()) {
        (Some(expected), Some(got)) => got == format!("Bearer {expected}"),
        (None, Some(got)) => got.starts_with("Bearer "),
        (_, None) => false,
    };
    let (status, body) = if !token_ok {
        (
            401,
            FakeGraph::meta_error(190, "Invalid OAuth access token.", ""),
        )
    } else if let Some(reply) = script.templates_fail.clone() {
        (reply.status, reply.body)
    } else {
        let limit = param("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(25)
            .clamp(1, script.template_page_size);
        let start = param("after")
            .and_then(|a| a.strip_prefix("idx").map(str::to_string))
            .and_then(|a| a.parse::<usize>().ok())
            .unwrap_or(0)
            .min(script.templates.len());
        let end = (start + limit).min(script.templates.len());
        let data: Vec<Value> = script.templates[start..end].to_vec();
        let mut paging =
            json!({"cursors": {"before": format!("idx{start}"), "after": format!("idx{end}")}});
        if end < script.templates.len() {
            let base = shared.url.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let prefix = version.map(|v| format!("/{v}")).unwrap_or_default();
            paging["next"] = json!(format!(
                "{base}{prefix}/{waba_id}/message_templates?limit={limit}&after=idx{end}"
            ));
        }
        (200, json!({"data": data, "paging": paging}).to_string())
    };
    script.template_requests.push(TemplateRequest {
        waba_id,
        query,
        authorization,
        status,
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn unknown_path() -> Response {
    let body = json!({"error": {
        "message": "Unknown path components",
        "type": "OAuthException",
        "code": 2500,
        "fbtrace_id": "AFakeTraceId"
    }});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

fn json_reply(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, reply.body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn token_refused(script: &Script, headers: &HeaderMap) -> Option<Reply> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let ok = match (&script.token, authorization) {
        (Some(expected), Some(got)) => got == format!("Bearer {expected}"),
        (None, Some(got)) => got.starts_with("Bearer ") && got.len() > "Bearer ".len(),
        (_, None) => false,
    };
    (!ok).then(|| Reply {
        status: 401,
        body: FakeGraph::meta_error(190, "Invalid OAuth access token.", ""),
        retry_after: None,
    })
}

/// `GET /download/{id}`: the file's bytes; `GET [/{version}]/{id}`: its media object.
async fn get_media_or_unknown(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET {
        return unknown_path();
    }
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["download", id] => download(&shared, id, &headers).await,
        [id] | [_, id] => lookup(&shared, id, &headers),
        _ => unknown_path(),
    }
}

fn lookup(shared: &Shared, id: &str, headers: &HeaderMap) -> Response {
    let base = shared.url.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut script = shared.script();
    script.lookups.push(id.to_string());
    if let Some(refused) = token_refused(&script, headers) {
        return json_reply(refused);
    }
    let Some(media) = script.media.get(id) else {
        return json_reply(Reply {
            status: 400,
            body: FakeGraph::meta_error(
                100,
                &format!("Unsupported get request. Object with ID '{id}' does not exist"),
                "",
            ),
            retry_after: None,
        });
    };
    if let Some(reply) = media.lookup_error.clone() {
        return json_reply(reply);
    }
    let body = json!({
        "messaging_product": "whatsapp",
        "url": format!("{base}/download/{id}"),
        "mime_type": media.mime,
        "sha256": "fake-sha256",
        "file_size": media.declared_size.unwrap_or(media.bytes.len() as u64),
        "id": id,
    });
    json_reply(Reply {
        status: 200,
        body: body.to_string(),
        retry_after: None,
    })
}

async fn download(shared: &Shared, id: &str, headers: &HeaderMap) -> Response {
    let media = {
        let mut script = shared.script();
        script.downloads.push(id.to_string());
        if let Some(refused) = token_refused(&script, headers) {
            return json_reply(refused);
        }
        script.media.get(id).cloned()
    };
    let Some(media) = media else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !media.download_delay.is_zero() {
        tokio::time::sleep(media.download_delay).await;
    }
    if let Some(status) = media.download_status {
        return StatusCode::from_u16(status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response();
    }
    // Streamed in pieces without a Content-Length, as a CDN may: only counting tells the size.
    let chunks: Vec<Result<Bytes, std::io::Error>> = media
        .bytes
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut response = Body::from_stream(futures::stream::iter(chunks)).into_response();
    if let Ok(mime) = HeaderValue::from_str(&media.mime) {
        response.headers_mut().insert(header::CONTENT_TYPE, mime);
    }
    response
}

async fn versioned_upload_media(
    State(shared): State<Arc<Shared>>,
    Path((_version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    take_upload(&shared, phone_number_id, &headers, &body)
}

async fn upload_media(
    State(shared): State<Arc<Shared>>,
    Path(phone_number_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    take_upload(&shared, phone_number_id, &headers, &body)
}

/// Meta's checks on an upload: the token, a multipart body with `messaging_product=whatsapp`,
/// a `type`, and a `file` part.
fn take_upload(
    shared: &Shared,
    phone_number_id: String,
    headers: &HeaderMap,
    raw: &[u8],
) -> Response {
    let mut script = shared.script();
    if let Some(refused) = token_refused(&script, headers) {
        return json_reply(refused);
    }
    if let Some(reply) = script.upload_failures.pop_front() {
        return json_reply(reply);
    }
    if let Some(reply) = script.next.pop_front() {
        return json_reply(reply);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parts = super::multipart::boundary(content_type)
        .filter(|_| content_type.starts_with("multipart/form-data"))
        .map(|b| super::multipart::parse(raw, &b))
        .unwrap_or_default();
    let field = |name: &str| parts.iter().find(|p| p.name == name);
    let file = field("file");
    let product = field("messaging_product").map(|p| p.text());
    let kind = field("type").map(|p| p.text());
    if product.as_deref() != Some("whatsapp") || kind.is_none() || file.is_none() {
        return json_reply(Reply {
            status: 400,
            body: FakeGraph::meta_error(
                100,
                "Invalid parameter",
                "messaging_product, type and file are required",
            ),
            retry_after: None,
        });
    }
    let n = shared.wamids.fetch_add(1, Ordering::Relaxed);
    let id = format!("44907093273{n:05}");
    let file = file.cloned().expect("checked above");
    script.uploads.push(Upload {
        id: id.clone(),
        phone_number_id,
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        messaging_product: product,
        kind,
        filename: file.filename,
        content_type: file.content_type,
        bytes: file.data,
    });
    json_reply(Reply {
        status: 200,
        body: json!({"id": id}).to_string(),
        retry_after: None,
    })
}

async fn answer(
    shared: &Shared,
    phone_number_id: String,
    headers: &HeaderMap,
    raw: &[u8],
) -> Response {
    let parsed: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let to = parsed["to"].as_str().map(str::to_string);

    // Decide and record under one lock so concurrent sends see the script in order.
    let (reply, latency) = {
        let mut script = shared.script();
        let reply = decide(
            &mut script,
            &parsed,
            authorization.as_deref(),
            to.as_deref(),
        );
        let (reply, wamid) = match reply {
            Some(reply) => (reply, None),
            None => {
                let n = shared.wamids.fetch_add(1, Ordering::Relaxed);
                let wamid = format!("wamid.fake{n:08}");
                let to = to.clone().unwrap_or_default();
                let body = json!({
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": to, "wa_id": to}],
                    "messages": [{"id": wamid, "message_status": "accepted"}]
                });
                let reply = Reply {
                    status: 200,
                    body: body.to_string(),
                    retry_after: None,
                };
                (reply, Some(wamid))
            }
        };
        script.requests.push(RecordedRequest {
            path: format!("/{phone_number_id}/messages"),
            phone_number_id,
            authorization,
            body: parsed,
            status: reply.status,
            wamid,
        });
        (reply, script.latency)
    };

    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, reply.body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(retry_after) = reply
        .retry_after
        .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after);
    }
    response
}

/// A scripted or validation failure, or `None` to accept the message.
fn decide(
    script: &mut Script,
    body: &Value,
    authorization: Option<&str>,
    to: Option<&str>,
) -> Option<Reply> {
    let token_ok = match (&script.token, authorization) {
        (Some(expected), Some(got)) => got == format!("Bearer {expected}"),
        (None, Some(got)) => got.starts_with("Bearer ") && got.len() > "Bearer ".len(),
        (_, None) => false,
    };
    if !token_ok {
        return Some(Reply {
            status: 401,
            body: FakeGraph::meta_error(190, "Invalid OAuth access token.", ""),
            retry_after: None,
        });
    }
    if body["messaging_product"] != "whatsapp" || to.is_none() {
        return Some(Reply {
            status: 400,
            body: FakeGraph::meta_error(
                100,
                "Invalid parameter",
                "messaging_product must be whatsapp and to is required",
            ),
            retry_after: None,
        });
    }
    if let Some(reply) = script.next.pop_front() {
        return Some(reply);
    }
    to.and_then(|to| script.by_recipient.get(&digits(to)).cloned())
}

/// Webhook bodies as Meta POSTs them to `/webhooks/whatsapp`, for tests that play the customer.
/// Sign them with `herald::channels::whatsapp::sign(app_secret, body.as_bytes())`.
pub mod webhooks {
    use serde_json::{json, Value};

    const PHONE_NUMBER_ID: &str = "1122334455667";

    fn wrap(field: &str, value: Value) -> String {
        json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": field, "value": value}]}]
        })
        .to_string()
    }

    fn metadata() -> Value {
        json!({"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID})
    }

    fn messages_value(from: &str, name: &str, message: Value) -> Value {
        json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "contacts": [{"profile": {"name": name}, "wa_id": super::digits(from)}],
            "messages": [message]
        })
    }

    fn statuses_value(statuses: Vec<Value>) -> Value {
        json!({"messaging_product": "whatsapp", "metadata": metadata(), "statuses": statuses})
    }

    /// `body` as Meta would send it for another business number of the same app: every change
    /// names `phone_number_id` instead of ours.
    pub fn for_number(body: &str, phone_number_id: &str) -> String {
        let mut body: Value = serde_json::from_str(body).expect("a body built here");
        for entry in body["entry"].as_array_mut().into_iter().flatten() {
            for change in entry["changes"].as_array_mut().into_iter().flatten() {
                change["value"]["metadata"]["phone_number_id"] = json!(phone_number_id);
            }
        }
        body.to_string()
    }

    /// A customer's text message. `from` may be `wa:15550001` or digits; `at` is unix seconds.
    pub fn text(from: &str, name: &str, text: &str, wamid: &str, at: i64) -> String {
        let message = json!({
            "from": super::digits(from), "id": wamid, "timestamp": at.to_string(),
            "type": "text", "text": {"body": text}
        });
        wrap("messages", messages_value(from, name, message))
    }

    /// A customer's (or admin's) file: `kind` is `document`, `image` or `video`, `media_id` what
    /// `GET /{media-id}` knows it by; `filename` goes with documents only.
    #[allow(clippy::too_many_arguments)]
    pub fn media(
        from: &str,
        kind: &str,
        media_id: &str,
        mime: &str,
        filename: Option<&str>,
        caption: Option<&str>,
        wamid: &str,
        at: i64,
    ) -> String {
        let mut media = json!({"mime_type": mime, "sha256": "fake-sha256", "id": media_id});
        if let Some(filename) = filename {
            media["filename"] = json!(filename);
        }
        if let Some(caption) = caption {
            media["caption"] = json!(caption);
        }
        let mut message = json!({
            "from": super::digits(from), "id": wamid, "timestamp": at.to_string(), "type": kind,
        });
        message[kind] = media;
        wrap("messages", messages_value(from, "Admin", message))
    }

    /// A template quick-reply button press.
    pub fn quick_reply(
        from: &str,
        name: &str,
        payload: &str,
        title: &str,
        wamid: &str,
        at: i64,
    ) -> String {
        let message = json!({
            "from": super::digits(from), "id": wamid, "timestamp": at.to_string(),
            "type": "button", "button": {"payload": payload, "text": title}
        });
        wrap("messages", messages_value(from, name, message))
    }

    /// A tap on an interactive message: `kind` is `button_reply` (a reply button) or
    /// `list_reply` (a list row), with the `id` and `title` herald sent.
    pub fn interactive_reply(
        from: &str,
        name: &str,
        kind: &str,
        id: &str,
        title: &str,
        wamid: &str,
        at: i64,
    ) -> String {
        let mut message = json!({
            "from": super::digits(from), "id": wamid, "timestamp": at.to_string(),
            "type": "interactive", "interactive": {"type": kind}
        });
        message["interactive"][kind] = json!({"id": id, "title": title});
        wrap("messages", messages_value(from, name, message))
    }

    /// A delivery status (`sent`, `delivered`, `read`) for a message herald sent.
    pub fn status(
        wamid: &str,
        status: &str,
        recipient: &str,
        callback: Option<&str>,
        at: i64,
    ) -> String {
        let mut item = json!({
            "id": wamid, "status": status, "timestamp": at.to_string(),
            "recipient_id": super::digits(recipient)
        });
        if let Some(callback) = callback {
            item["biz_opaque_callback_data"] = json!(callback);
        }
        wrap("messages", statuses_value(vec![item]))
    }

    /// A `failed` status with Meta's error `code` and `title`.
    pub fn failed(
        wamid: &str,
        recipient: &str,
        code: i64,
        title: &str,
        callback: Option<&str>,
        at: i64,
    ) -> String {
        let mut item = json!({
            "id": wamid, "status": "failed", "timestamp": at.to_string(),
            "recipient_id": super::digits(recipient),
            "errors": [{"code": code, "title": title, "message": title}]
        });
        if let Some(callback) = callback {
            item["biz_opaque_callback_data"] = json!(callback);
        }
        wrap("messages", statuses_value(vec![item]))
    }

    /// Several status bodies as the one body Meta sends when it batches them: their statuses
    /// in one `statuses` array, in the order given.
    pub fn batch(bodies: &[String]) -> String {
        let mut statuses = Vec::new();
        for body in bodies {
            let body: Value = serde_json::from_str(body).expect("a body built here");
            let items = body["entry"][0]["changes"][0]["value"]["statuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            statuses.extend(items);
        }
        wrap("messages", statuses_value(statuses))
    }

    /// The user stopped (`"stop"`) or resumed (`"resume"`) marketing messages in the app.
    pub fn marketing_preference(wa_id: &str, value: &str, at: i64) -> String {
        wrap(
            "user_preferences",
            json!({
                "messaging_product": "whatsapp",
                "metadata": metadata(),
                "user_preferences": [{
                    "wa_id": super::digits(wa_id), "detail": "User changed marketing preference",
                    "category": "marketing_messages", "value": value, "timestamp": at
                }]
            }),
        )
    }
}
