//! Sends herald's [`Outbound`] messages through the Cloud API (`POST {api_url}/{phone_number_id}/messages`)
//! and keeps the per-number throughput ceiling (SPEC: 80 msg/s unless configured higher). Files
//! travel through the media endpoints: an attachment is fetched with `GET {api_url}/{media-id}`
//! and then its `url`, and a report goes up with `POST {api_url}/{phone_number_id}/media` before
//! the message that shows it.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::RETRY_AFTER;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::channels::files::LimitedBody;
use crate::channels::files::{self, Uploads};
use crate::channels::{
    Channel, ChannelKind, ErrorClass, FetchError, FetchLimits, FileKind, FileRef, Outbound,
    OutboundBody, OutboundFile, SendError, Sent,
};
use crate::domain::media::{MediaFile, MediaKind, MediaRef};
use crate::domain::template::{ButtonParam, HeaderParam, MediaSource, TemplateParts};

use super::{errors, recipient_digits};
use crate::domain::interactive::Choices;

/// Meta's default Cloud API throughput per business number.
pub const DEFAULT_MAX_PER_SECOND: f64 = 80.0;
/// Long enough for a slow Graph answer, short enough that a hung connection does not hold a
/// campaign worker for minutes.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// A connection that cannot be opened in this time will not be opened at all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Meta refuses a text body longer than this (characters, not bytes).
pub const MAX_TEXT_CHARS: usize = 4096;
/// WhatsApp cannot edit a sent message, so a sending campaign's owner gets a fresh progress line
/// this often rather than a message per window.
pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(300);
/// Interactive reply buttons: Meta's limits.
pub const MAX_REPLY_BUTTONS: usize = 3;
const MAX_BUTTON_TITLE_CHARS: usize = 20;
const MAX_BUTTON_ID_CHARS: usize = 256;
const MAX_INTERACTIVE_BODY_CHARS: usize = 1024;
/// WhatsApp keeps an uploaded media id for 30 days; a file older than this goes up again.
const MEDIA_ID_LIFETIME: Duration = Duration::from_secs(29 * 24 * 3600);

/// Where and as whom to send.
#[derive(Clone)]
pub struct WhatsAppConfig {
    /// Graph API base including the version, e.g. `https://graph.facebook.com/v21.0`.
    pub api_url: String,
    pub phone_number_id: String,
    /// System-user access token; never printed (see the `Debug` impl).
    pub token: String,
    /// Ceiling on messages per second from this number.
    pub max_per_second: f64,
    pub request_timeout: Duration,
    /// How often a sending campaign's owner on WhatsApp gets a progress line; `None` for never.
    pub progress_interval: Option<Duration>,
}

impl WhatsAppConfig {
    /// A config with the default ceiling and timeout.
    pub fn new(
        api_url: impl Into<String>,
        phone_number_id: impl Into<String>,
        token: impl Into<String>,
    ) -> Self {
        WhatsAppConfig {
            api_url: api_url.into(),
            phone_number_id: phone_number_id.into(),
            token: token.into(),
            max_per_second: DEFAULT_MAX_PER_SECOND,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            progress_interval: Some(DEFAULT_PROGRESS_INTERVAL),
        }
    }
}

impl fmt::Debug for WhatsAppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhatsAppConfig")
            .field("api_url", &self.api_url)
            .field("phone_number_id", &self.phone_number_id)
            .field("token", &"<redacted>")
            .field("max_per_second", &self.max_per_second)
            .field("request_timeout", &self.request_timeout)
            .field("progress_interval", &self.progress_interval)
            .finish()
    }
}

/// Why a [`WhatsAppClient`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("invalid WhatsApp configuration: {0}")]
    Config(&'static str),
    #[error("could not build the HTTP client")]
    Http(#[from] reqwest::Error),
}

/// The WhatsApp [`Channel`].
pub struct WhatsAppClient {
    http: reqwest::Client,
    /// Parsed once: every send posts here.
    messages_url: reqwest::Url,
    /// `{api_url}/{phone_number_id}/media`, where files go up before a message shows them.
    media_url: reqwest::Url,
    /// `{api_url}`, under which `/{media-id}` names an attached file.
    api_url: String,
    /// `Bearer <token>`, built once and marked sensitive so it is never logged.
    authorization: reqwest::header::HeaderValue,
    pacer: Pacer,
    progress_interval: Option<Duration>,
    /// Campaign files already uploaded, so each goes up once.
    uploads: Uploads,
}

impl fmt::Debug for WhatsAppClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhatsAppClient")
            .field("messages_url", &self.messages_url.as_str())
            .field("interval", &self.pacer.interval)
            .finish_non_exhaustive()
    }
}

impl WhatsAppClient {
    pub fn new(config: WhatsAppConfig) -> Result<Self, ClientBuildError> {
        let api_url = config.api_url.trim().trim_end_matches('/');
        if api_url.is_empty() {
            return Err(ClientBuildError::Config("api_url is empty"));
        }
        if config.phone_number_id.trim().is_empty() {
            return Err(ClientBuildError::Config("phone_number_id is empty"));
        }
        if !(config.max_per_second.is_finite() && config.max_per_second > 0.0) {
            return Err(ClientBuildError::Config(
                "max_per_second must be a positive number",
            ));
        }
        let messages_url = format!("{api_url}/{}/messages", config.phone_number_id.trim())
            .parse::<reqwest::Url>()
            .map_err(|_| ClientBuildError::Config("api_url is not a valid URL"))?;
        let media_url = format!("{api_url}/{}/media", config.phone_number_id.trim())
            .parse::<reqwest::Url>()
            .map_err(|_| ClientBuildError::Config("api_url is not a valid URL"))?;
        let mut authorization =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {}", config.token)).map_err(
                |_| ClientBuildError::Config("the token has characters a header cannot carry"),
            )?;
        authorization.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(config.request_timeout))
            .build()?;
        Ok(WhatsAppClient {
            http,
            messages_url,
            media_url,
            api_url: api_url.to_string(),
            authorization,
            pacer: Pacer::new(config.max_per_second),
            progress_interval: config.progress_interval,
            uploads: Uploads::default(),
        })
    }

    /// Sends free text to an address (`wa:15550001`), e.g. an admin reply.
    pub async fn send_text(&self, to: &str, text: &str) -> Result<Sent, SendError> {
        self.send(&Outbound::admin(to, text)).await
    }

    /// Sends an interactive reply-buttons message (inside the service window only: it is free
    /// form). A press comes back as an inbound message whose `button` is the pressed button's
    /// `id`, so an id that is an opt-out word (`STOP`) opts the contact out.
    #[tracing::instrument(skip_all, fields(to = tracing::field::Empty))]
    pub async fn send_buttons(
        &self,
        to: &str,
        text: &str,
        buttons: &[ReplyButton],
        callback: Option<&str>,
    ) -> Result<Sent, SendError> {
        let Some(digits) = recipient_digits(to) else {
            return Err(invalid_address(to));
        };
        tracing::Span::current().record("to", digits.as_str());
        let body = interactive_buttons_body(&digits, text, buttons, callback)?;
        self.post(&body).await
    }

    /// `GET {api_url}/{media-id}` (which answers the download `url` and the `file_size`), then
    /// the download itself, both with the bearer token. The declared size is checked before the
    /// download, and the bytes are counted as they come.
    #[tracing::instrument(skip_all, fields(media_id = %file.id))]
    async fn fetch_media(
        &self,
        file: &FileRef,
        limits: FetchLimits,
    ) -> Result<Vec<u8>, FetchError> {
        let fetch_error = |error: reqwest::Error| {
            if error.is_timeout() {
                FetchError::TimedOut(limits.timeout)
            } else {
                FetchError::Network(crate::error_chain(&error))
            }
        };
        // The id goes into a path: anything but Meta's id characters is not an id.
        if file.id.is_empty()
            || !file
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(FetchError::Refused(format!(
                "{:?} is not a media id",
                file.id
            )));
        }
        let response = self
            .http
            .get(format!("{}/{}", self.api_url, file.id))
            .header(reqwest::header::AUTHORIZATION, self.authorization.clone())
            .timeout(limits.timeout)
            .send()
            .await
            .map_err(fetch_error)?;
        let status = response.status();
        let text = response.text().await.map_err(fetch_error)?;
        if !status.is_success() {
            let error = errors::classify(status.as_u16(), &text, None);
            tracing::warn!(code = %error.code, reason = %error.reason, "WhatsApp refused a media lookup");
            return Err(FetchError::Refused(format!(
                "{} {}",
                error.code, error.reason
            )));
        }
        let media: MediaAnswer = serde_json::from_str(&text)
            .map_err(|_| FetchError::Refused("an unreadable media answer".into()))?;
        if let Some(size) = media.size().filter(|size| *size > limits.max_bytes) {
            return Err(FetchError::TooLarge(size));
        }
        let Some(url) = media.url.filter(|u| !u.trim().is_empty()) else {
            return Err(FetchError::Refused("a media answer without a url".into()));
        };
        let mut response = self
            .http
            .get(url)
            .header(reqwest::header::AUTHORIZATION, self.authorization.clone())
            .timeout(limits.timeout)
            .send()
            .await
            .map_err(fetch_error)?;
        let status = response.status();
        if !status.is_success() {
            tracing::warn!(%status, "WhatsApp refused a media download");
            return Err(FetchError::Refused(format!("HTTP {}", status.as_u16())));
        }
        if let Some(size) = response
            .content_length()
            .filter(|size| *size > limits.max_bytes)
        {
            return Err(FetchError::TooLarge(size));
        }
        let mut body = LimitedBody::new(limits.max_bytes);
        while let Some(chunk) = response.chunk().await.map_err(fetch_error)? {
            body.push(&chunk)?;
        }
        Ok(body.finish())
    }

    /// `POST {api_url}/{phone_number_id}/media` (multipart: the file, its type, and
    /// `messaging_product=whatsapp`); answers the media id a message can show.
    async fn upload(&self, name: &str, mime: &str, bytes: Vec<u8>) -> Result<String, SendError> {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name.to_string())
            .mime_str(mime)
            .map_err(|_| {
                SendError::new(
                    ErrorClass::Permanent,
                    "invalid_file",
                    format!("{mime:?} is not a MIME type"),
                )
            })?;
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", mime.to_string())
            .part("file", part);
        let response = self
            .http
            .post(self.media_url.clone())
            .header(reqwest::header::AUTHORIZATION, self.authorization.clone())
            .multipart(form)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let error = errors::classify(status.as_u16(), &text, None);
            tracing::warn!(code = %error.code, reason = %error.reason, "WhatsApp refused a media upload");
            return Err(error);
        }
        serde_json::from_str::<Uploaded>(&text)
            .ok()
            .and_then(|u| u.id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                SendError::new(
                    ErrorClass::Permanent,
                    "upload",
                    "WhatsApp took the file but answered no media id",
                )
            })
    }

    /// The media id of a campaign's file: uploaded by the first message that shows it (the
    /// others wait for it), then reused until WhatsApp would have forgotten it. A file Meta
    /// refuses fails every message that would show it, so it pauses the campaign.
    async fn media_id(&self, file: &MediaFile) -> Result<String, SendError> {
        let mut slot = self.uploads.slot(&file.sha256).await;
        if let Some(up) = slot
            .as_ref()
            .filter(|up| up.at.elapsed() < MEDIA_ID_LIFETIME)
        {
            return Ok(up.id.clone());
        }
        let id = match self
            .upload(&file.name, &file.mime, file.bytes.to_vec())
            .await
        {
            Ok(id) => id,
            Err(mut e) => {
                if matches!(
                    e.class,
                    ErrorClass::Permanent | ErrorClass::Unreachable | ErrorClass::MarketingStopped
                ) {
                    e.class = ErrorClass::PauseCampaign;
                    e.reason = format!("WhatsApp refused the campaign's media ({})", e.reason);
                }
                return Err(e);
            }
        };
        *slot = Some(files::Uploaded {
            id: id.clone(),
            at: std::time::Instant::now(),
        });
        Ok(id)
    }

    async fn post(&self, body: &Value) -> Result<Sent, SendError> {
        self.pacer.wait().await;
        let response = self
            .http
            .post(self.messages_url.clone())
            .header(reqwest::header::AUTHORIZATION, self.authorization.clone())
            .json(body)
            .send()
            .await
            .map_err(transport_error)?;

        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = match response.text().await {
            Ok(text) => text,
            Err(error) if status.is_success() => {
                // Meta accepted the message; failing now would make the dispatcher send it again.
                tracing::warn!(%error, "could not read the answer to an accepted message");
                return Ok(Sent::default());
            }
            Err(_) => String::new(),
        };
        if status.is_success() {
            Ok(accepted(&text))
        } else {
            let error = errors::classify(status.as_u16(), &text, retry_after.as_deref());
            tracing::warn!(code = %error.code, class = ?error.class, reason = %error.reason, "WhatsApp refused a message");
            Err(error)
        }
    }
}

#[async_trait]
impl Channel for WhatsAppClient {
    fn kind(&self) -> ChannelKind {
        ChannelKind::WhatsApp
    }

    #[tracing::instrument(skip_all, fields(to = tracing::field::Empty))]
    async fn send(&self, msg: &Outbound) -> Result<Sent, SendError> {
        let Some(to) = recipient_digits(&msg.to) else {
            return Err(invalid_address(&msg.to));
        };
        tracing::Span::current().record("to", to.as_str());
        // A long admin reply (a report, /help) goes out in several messages rather than being
        // refused. Customer messages are never split: one campaign message is one send.
        if let (crate::channels::Audience::Admin, OutboundBody::Text(text)) =
            (msg.audience, &msg.body)
        {
            if text.chars().count() > MAX_TEXT_CHARS {
                let mut last = Sent::default();
                for part in split_text(text, MAX_TEXT_CHARS) {
                    let piece = Outbound {
                        body: OutboundBody::Text(part.to_string()),
                        ..msg.clone()
                    };
                    last = self.post(&request_body(&to, &piece)).await?;
                }
                return Ok(last);
            }
        }
        // A campaign's attached file goes up once; the message shows it by its media id.
        if let Some(MediaSource::File(file)) = msg.body.media().map(|m| &m.source) {
            let id = self.media_id(file).await?;
            let shown = msg.with_media_source(MediaSource::Id(id));
            return self.post(&request_body(&to, &shown)).await;
        }
        self.post(&request_body(&to, msg)).await
    }

    fn progress_interval(&self) -> Option<Duration> {
        self.progress_interval
    }

    fn classify_failure(&self, code: &str) -> Option<ErrorClass> {
        errors::class_of_code(code)
    }

    async fn fetch_file(&self, file: &FileRef, limits: FetchLimits) -> Result<Vec<u8>, FetchError> {
        self.fetch_media(file, limits).await
    }

    fn carries_files(&self) -> bool {
        true
    }

    /// Uploads the file, then sends a `document` (with its file name) or `image` message that
    /// shows it, with the caption.
    #[tracing::instrument(skip_all, fields(to = tracing::field::Empty, file = %file.name))]
    async fn send_file(&self, to: &str, file: &OutboundFile) -> Result<Sent, SendError> {
        let Some(digits) = recipient_digits(to) else {
            return Err(invalid_address(to));
        };
        tracing::Span::current().record("to", digits.as_str());
        let media_id = self
            .upload(&file.name, &file.mime, file.bytes.clone())
            .await?;
        self.post(&file_message_body(&digits, file, &media_id))
            .await
    }
}

/// The message that shows an uploaded file: a `document` keeps its file name, an `image` or
/// `video` is shown inline; the caption goes with either.
pub fn file_message_body(to: &str, file: &OutboundFile, media_id: &str) -> Value {
    let kind = match file.kind {
        FileKind::Document => "document",
        FileKind::Image => "image",
        FileKind::Video => "video",
    };
    let mut media = json!({"id": media_id});
    if file.kind == FileKind::Document {
        media["filename"] = json!(file.name);
    }
    if let Some(caption) = &file.caption {
        media["caption"] = json!(caption);
    }
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": kind,
    });
    body[kind] = media;
    body
}

/// `GET /{media-id}`'s answer. `file_size` is a number in Meta's examples and a string in some
/// of its answers: both are read.
#[derive(Debug, Default, Deserialize)]
struct MediaAnswer {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    file_size: Option<Value>,
}

impl MediaAnswer {
    fn size(&self) -> Option<u64> {
        match self.file_size.as_ref()? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// `POST /{phone_number_id}/media`'s answer.
#[derive(Debug, Default, Deserialize)]
struct Uploaded {
    #[serde(default)]
    id: Option<String>,
}

fn invalid_address(address: &str) -> SendError {
    SendError::new(
        ErrorClass::Permanent,
        "invalid_address",
        format!("{address:?} is not a WhatsApp number"),
    )
}

/// Cuts `text` into pieces of at most `max` characters, at a line break when there is one in
/// the piece, else at a space, else mid-word. The break itself is dropped; nothing else is.
pub fn split_text(text: &str, max: usize) -> Vec<&str> {
    let max = max.max(1);
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        let Some((limit, _)) = rest.char_indices().nth(max) else {
            if !rest.is_empty() {
                parts.push(rest);
            }
            return parts;
        };
        let head = &rest[..limit];
        // A separator right after the piece is as good a cut as one inside it.
        let next_len = rest[limit..].chars().next().map_or(0, char::len_utf8);
        let window = &rest[..limit + next_len];
        let cut = window
            .rfind('\n')
            .or_else(|| window.rfind(' '))
            .filter(|&i| i > 0);
        match cut {
            // Drop the one separator character at the cut.
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + 1..];
            }
            None => {
                parts.push(head);
                rest = &rest[limit..];
            }
        }
    }
}

/// A quick-reply button of an interactive message: `id` comes back in the webhook when pressed,
/// `title` is what the user sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyButton {
    pub id: String,
    pub title: String,
}

impl ReplyButton {
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> Self {
        ReplyButton {
            id: id.into(),
            title: title.into(),
        }
    }
}

/// The Cloud API JSON for an interactive reply-buttons message, checked against Meta's limits
/// first (1 to 3 buttons, distinct titles of at most 20 characters, ids of at most 256, a body of
/// at most 1024) so a bad message fails here with a clear reason instead of a Graph error.
pub fn interactive_buttons_body(
    to: &str,
    text: &str,
    buttons: &[ReplyButton],
    callback: Option<&str>,
) -> Result<Value, SendError> {
    let invalid = |why: String| SendError::new(ErrorClass::Permanent, "invalid_buttons", why);
    if buttons.is_empty() || buttons.len() > MAX_REPLY_BUTTONS {
        return Err(invalid(format!(
            "an interactive message takes 1 to {MAX_REPLY_BUTTONS} buttons, not {}",
            buttons.len()
        )));
    }
    if text.trim().is_empty() || text.chars().count() > MAX_INTERACTIVE_BODY_CHARS {
        return Err(invalid(format!(
            "an interactive message needs a text of 1 to {MAX_INTERACTIVE_BODY_CHARS} characters"
        )));
    }
    for (i, b) in buttons.iter().enumerate() {
        let title_len = b.title.chars().count();
        if b.title.trim().is_empty() || title_len > MAX_BUTTON_TITLE_CHARS {
            return Err(invalid(format!(
                "button title {:?} must be 1 to {MAX_BUTTON_TITLE_CHARS} characters",
                b.title
            )));
        }
        if b.id.trim().is_empty() || b.id.chars().count() > MAX_BUTTON_ID_CHARS {
            return Err(invalid(format!(
                "button id {:?} must be 1 to {MAX_BUTTON_ID_CHARS} characters",
                b.id
            )));
        }
        if buttons[..i].iter().any(|other| other.title == b.title) {
            return Err(invalid(format!("button title {:?} is used twice", b.title)));
        }
    }
    let buttons: Vec<Value> = buttons
        .iter()
        .map(|b| json!({"type": "reply", "reply": {"id": b.id, "title": b.title}}))
        .collect();
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": text},
            "action": {"buttons": buttons}
        }
    });
    if let Some(callback) = callback {
        body["biz_opaque_callback_data"] = json!(callback);
    }
    Ok(body)
}

/// The Cloud API JSON for one message to `to` (digits only).
pub fn request_body(to: &str, msg: &Outbound) -> Value {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
    });
    match &msg.body {
        OutboundBody::Text(text) => {
            body["type"] = json!("text");
            // No link previews: campaign text should look the same for every recipient, and a
            // preview fetch would tell the linked site who received the campaign.
            body["text"] = json!({"preview_url": false, "body": text});
        }
        OutboundBody::Template {
            name,
            lang,
            params,
            buttons,
            parts,
            ..
        } => {
            let mut template = json!({"name": name, "language": {"code": lang}});
            let components = template_components(params, buttons, parts);
            if !components.is_empty() {
                template["components"] = Value::Array(components);
            }
            body["type"] = json!("template");
            body["template"] = template;
        }
        OutboundBody::Interactive {
            text,
            choices,
            header,
        } => {
            body["type"] = json!("interactive");
            body["interactive"] = interactive(text, choices, header.as_ref());
        }
        OutboundBody::Media { media, caption } => {
            let kind = media.kind.as_str();
            body["type"] = json!(kind);
            body[kind] = media_object(media, Some(caption));
        }
    }
    if let Some(callback) = &msg.callback {
        // Echoed back on every status webhook, so a status can be matched to its recipient even
        // when the answer carrying the wamid was lost.
        body["biz_opaque_callback_data"] = json!(callback);
    }
    body
}

/// A reply-buttons or list message. Each button's or row's id is its title, so a tap comes back
/// as that title (and a `STOP` button opts out like typed `STOP`); `/campaign buttons` and
/// `/campaign menu` checked Meta's limits when they were typed.
fn interactive(text: &str, choices: &Choices, header: Option<&MediaRef>) -> Value {
    match choices {
        Choices::Buttons(titles) => {
            let buttons: Vec<Value> = titles
                .iter()
                .map(|t| json!({"type": "reply", "reply": {"id": t, "title": t}}))
                .collect();
            let mut message = json!({
                "type": "button",
                "body": {"text": text},
                "action": {"buttons": buttons}
            });
            // Reply-button messages may show an image, video or document above the text.
            if let Some(media) = header {
                let kind = media.kind.as_str();
                message["header"] = json!({"type": kind, kind: media_object(media, None)});
            }
            message
        }
        Choices::Menu { button, rows } => {
            let rows: Vec<Value> = rows.iter().map(|t| json!({"id": t, "title": t})).collect();
            json!({
                "type": "list",
                "body": {"text": text},
                "action": {"button": button, "sections": [{"rows": rows}]}
            })
        }
        Choices::Products { catalog, items, .. } if items.len() == 1 => json!({
            "type": "product",
            "body": {"text": text},
            "action": {"catalog_id": catalog, "product_retailer_id": items[0]}
        }),
        // A product list must have a text header.
        Choices::Products {
            catalog,
            items,
            header,
        } => {
            let products: Vec<Value> = items
                .iter()
                .map(|id| json!({"product_retailer_id": id}))
                .collect();
            json!({
                "type": "product_list",
                "header": {"type": "text", "text": header},
                "body": {"text": text},
                "action": {"catalog_id": catalog, "sections": [{"title": section_title(header), "product_items": products}]}
            })
        }
    }
}

/// The `image`/`video`/`document` object of a message or header: the media by link or by
/// uploaded id, a document's file name, and the caption when there is one.
fn media_object(media: &MediaRef, caption: Option<&str>) -> Value {
    let mut object = match &media.source {
        MediaSource::Link(link) => json!({"link": link}),
        MediaSource::Id(id) => json!({"id": id}),
        // `send` uploads a file and shows it by id before a body is built.
        MediaSource::File(file) => json!({"id": file.sha256}),
    };
    if media.kind == MediaKind::Document {
        if let Some(name) = media.file_name() {
            object["filename"] = json!(name);
        }
    }
    if let Some(caption) = caption.filter(|c| !c.trim().is_empty()) {
        object["caption"] = json!(caption);
    }
    object
}

/// A product list section's title: the header, cut to Meta's 24 characters.
fn section_title(header: &str) -> String {
    header.chars().take(24).collect()
}

/// The header's parameter, the body parameters (named ones with their `parameter_name`), then
/// the buttons' parameters: one quick-reply component per button title in `buttons`, whose
/// payload is the title, so a pressed button arrives as that word (and a `STOP` button opts out
/// like typed `STOP`), and those `parts` names by their index in the template.
fn template_components(params: &[String], buttons: &[String], parts: &TemplateParts) -> Vec<Value> {
    let mut components = Vec::new();
    if let Some(header) = &parts.header {
        let parameter = match header {
            HeaderParam::Text(text) => match &parts.header_name {
                Some(name) => json!({"type": "text", "parameter_name": name, "text": text}),
                None => json!({"type": "text", "text": text}),
            },
            HeaderParam::Media(media) => {
                let kind = media.kind.as_str();
                json!({"type": kind, kind: media_object(media, None)})
            }
        };
        components.push(json!({"type": "header", "parameters": [parameter]}));
    }
    if !params.is_empty() {
        let parameters: Vec<Value> = params
            .iter()
            .enumerate()
            .map(|(i, p)| match parts.names.get(i) {
                Some(name) => json!({"type": "text", "parameter_name": name, "text": p}),
                None => json!({"type": "text", "text": p}),
            })
            .collect();
        components.push(json!({"type": "body", "parameters": parameters}));
    }
    for button in &parts.buttons {
        components.push(match button {
            ButtonParam::QuickReply { index, payload } => json!({
                "type": "button",
                "sub_type": "quick_reply",
                "index": index.to_string(),
                "parameters": [{"type": "payload", "payload": payload}],
            }),
            ButtonParam::UrlSuffix { index, text } => json!({
                "type": "button",
                "sub_type": "url",
                "index": index.to_string(),
                "parameters": [{"type": "text", "text": text}],
            }),
        });
    }
    for (index, title) in buttons.iter().enumerate() {
        components.push(json!({
            "type": "button",
            "sub_type": "quick_reply",
            "index": index.to_string(),
            "parameters": [{"type": "payload", "payload": title}],
        }));
    }
    components
}

#[derive(Debug, Default, Deserialize)]
struct SendAnswer {
    #[serde(default)]
    messages: Vec<SentMessage>,
}

#[derive(Debug, Default, Deserialize)]
struct SentMessage {
    #[serde(default)]
    id: Option<String>,
}

/// A 2xx means Meta took the message, whatever the body says: an unreadable body gives a send
/// without a wamid (statuses still match through the callback data) rather than an error that
/// would be retried into a duplicate.
fn accepted(body: &str) -> Sent {
    match serde_json::from_str::<SendAnswer>(body) {
        Ok(answer) => Sent {
            provider_id: answer.messages.into_iter().find_map(|m| m.id),
        },
        Err(error) => {
            tracing::warn!(%error, "accepted message without a readable answer");
            Sent::default()
        }
    }
}

/// A failure to connect (refused, DNS, a timeout while connecting) means the message never left:
/// transient, retried. Anything after the connection was made (a timeout waiting for the answer,
/// a reset) means it may have reached Meta: unknown, never re-sent on its own (the callback data
/// lets a status webhook reconcile it).
fn transport_error(error: reqwest::Error) -> SendError {
    let (class, code) = if error.is_connect() {
        (ErrorClass::Transient, "connect")
    } else if error.is_timeout() {
        (ErrorClass::Unknown, "timeout")
    } else {
        (ErrorClass::Unknown, "network")
    };
    tracing::warn!(error = %crate::error_chain(&error), code, "WhatsApp request failed");
    SendError::new(class, code, crate::error_chain(&error))
}

/// Spaces requests at least `interval` apart by handing out send slots: each caller takes the next
/// free slot and sleeps until it. This holds the ceiling across all concurrent senders on the
/// number without bursts (a burst of 80 at once still trips Meta's limit).
struct Pacer {
    interval: Duration,
    /// When the next slot opens. A std mutex is enough: it is held only to read and bump the time,
    /// never across an `.await`.
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(max_per_second: f64) -> Self {
        Pacer {
            interval: Duration::from_secs_f64(1.0 / max_per_second),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Reserves the next slot at or after `now`.
    fn reserve(&self, now: Instant) -> Instant {
        // A poisoned lock only means another sender panicked mid-bump; the time inside is valid.
        let mut next = crate::lock(&self.next);
        let slot = (*next).max(now);
        *next = slot + self.interval;
        slot
    }

    async fn wait(&self) {
        let now = Instant::now();
        let slot = self.reserve(now);
        // A slot already open needs no timer: a timer waits for the driver's next tick (about a
        // millisecond), which at full speed would space messages far wider than the ceiling.
        if slot > now {
            tokio::time::sleep_until(slot).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::Audience;

    fn customer(body: OutboundBody, callback: Option<&str>) -> Outbound {
        Outbound {
            to: "wa:15550001".into(),
            audience: Audience::Customer,
            body,
            callback: callback.map(str::to_string),
        }
    }

    #[test]
    fn text_body() {
        let msg = customer(OutboundBody::Text("Hi Ana".into()), None);
        assert_eq!(
            request_body("15550001", &msg),
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "15550001",
                "type": "text",
                "text": {"preview_url": false, "body": "Hi Ana"}
            })
        );
    }

    #[test]
    fn template_body_with_params_buttons_and_callback() {
        let msg = customer(
            OutboundBody::Template {
                name: "spring_sale".into(),
                lang: "pt_BR".into(),
                params: vec!["Ana".into(), "20%".into()],
                rendered: "Olá Ana, 20% off".into(),
                buttons: vec!["Quero".into(), "STOP".into()],
                parts: Box::default(),
            },
            Some("c7:r42"),
        );
        assert_eq!(
            request_body("15550001", &msg),
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "15550001",
                "type": "template",
                "template": {
                    "name": "spring_sale",
                    "language": {"code": "pt_BR"},
                    "components": [
                        {"type": "body", "parameters": [
                            {"type": "text", "text": "Ana"},
                            {"type": "text", "text": "20%"}
                        ]},
                        {"type": "button", "sub_type": "quick_reply", "index": "0",
                         "parameters": [{"type": "payload", "payload": "Quero"}]},
                        {"type": "button", "sub_type": "quick_reply", "index": "1",
                         "parameters": [{"type": "payload", "payload": "STOP"}]}
                    ]
                },
                "biz_opaque_callback_data": "c7:r42"
            })
        );
    }

    #[test]
    fn template_without_params_has_no_components() {
        let msg = customer(
            OutboundBody::Template {
                name: "hello_world".into(),
                lang: "en_US".into(),
                params: vec![],
                rendered: "Hello World".into(),
                buttons: vec![],
                parts: Box::default(),
            },
            None,
        );
        let body = request_body("15550001", &msg);
        assert_eq!(
            body["template"],
            json!({"name": "hello_world", "language": {"code": "en_US"}})
        );
        assert!(body.get("biz_opaque_callback_data").is_none());
    }

    #[test]
    fn file_messages_show_the_uploaded_media() {
        let csv = OutboundFile {
            name: "campaign-1.csv".into(),
            mime: "text/csv".into(),
            kind: FileKind::Document,
            bytes: b"address\n".to_vec(),
            caption: Some("campaign 1".into()),
        };
        assert_eq!(
            file_message_body("15550100", &csv, "4490709327384033"),
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "15550100",
                "type": "document",
                "document": {"id": "4490709327384033", "filename": "campaign-1.csv", "caption": "campaign 1"}
            })
        );
        let chart = OutboundFile {
            name: "campaign-1.png".into(),
            mime: "image/png".into(),
            kind: FileKind::Image,
            bytes: vec![],
            caption: None,
        };
        assert_eq!(
            file_message_body("15550100", &chart, "77")["image"],
            json!({"id": "77"})
        );
    }

    #[test]
    fn media_sizes_are_read_as_numbers_or_strings() {
        let read = |text: &str| serde_json::from_str::<MediaAnswer>(text).unwrap().size();
        assert_eq!(read(r#"{"url":"u","file_size":303833}"#), Some(303833));
        assert_eq!(read(r#"{"url":"u","file_size":"303833"}"#), Some(303833));
        assert_eq!(read(r#"{"url":"u"}"#), None);
    }

    #[test]
    fn accepted_reads_the_wamid_or_goes_without() {
        let answer = r#"{"messaging_product":"whatsapp","contacts":[{"input":"15550001","wa_id":"15550001"}],"messages":[{"id":"wamid.HBgL","message_status":"accepted"}]}"#;
        assert_eq!(accepted(answer).provider_id.as_deref(), Some("wamid.HBgL"));
        assert_eq!(accepted("").provider_id, None);
        assert_eq!(accepted(r#"{"messages":[]}"#).provider_id, None);
        assert_eq!(accepted(r#"{"messages":"x"}"#).provider_id, None);
    }

    #[test]
    fn split_text_prefers_line_breaks_and_keeps_everything() {
        assert_eq!(split_text("short", 10), vec!["short"]);
        assert_eq!(split_text("", 10), Vec::<&str>::new());
        assert_eq!(
            split_text("aaaa\nbbbb\ncccc", 10),
            vec!["aaaa\nbbbb", "cccc"]
        );
        assert_eq!(split_text("aaa bbb ccc", 8), vec!["aaa bbb", "ccc"]);
        assert_eq!(split_text("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(split_text("abcd\nefgh", 4), vec!["abcd", "efgh"]);
        // Characters, not bytes: a multi-byte text is cut on character boundaries.
        let text = "é".repeat(10);
        let parts = split_text(&text, 4);
        assert_eq!(parts, vec!["éééé", "éééé", "éé"]);
        // A report of many lines: every piece fits, and rejoined they give the text back.
        let report: String = (0..2000).map(|i| format!("key{i}: {i}\n")).collect();
        let parts = split_text(&report, MAX_TEXT_CHARS);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_TEXT_CHARS));
        assert!(parts.join("\n") == report, "splitting lost or added text");
    }

    #[test]
    fn interactive_buttons_follow_metas_shape_and_limits() {
        let buttons = [
            ReplyButton::new("YES", "Yes please"),
            ReplyButton::new("STOP", "Stop"),
        ];
        let body = interactive_buttons_body("15550001", "Want the offer?", &buttons, Some("r1:c2"))
            .unwrap();
        assert_eq!(
            body,
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "15550001",
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": "Want the offer?"},
                    "action": {"buttons": [
                        {"type": "reply", "reply": {"id": "YES", "title": "Yes please"}},
                        {"type": "reply", "reply": {"id": "STOP", "title": "Stop"}}
                    ]}
                },
                "biz_opaque_callback_data": "r1:c2"
            })
        );
        let four: Vec<ReplyButton> = (0..4)
            .map(|i| ReplyButton::new(i.to_string(), i.to_string()))
            .collect();
        assert!(interactive_buttons_body("1", "x", &four, None).is_err());
        assert!(interactive_buttons_body("1", "x", &[], None).is_err());
        let long_title = [ReplyButton::new("a", "x".repeat(21))];
        assert!(interactive_buttons_body("1", "x", &long_title, None).is_err());
        let twice = [ReplyButton::new("a", "Same"), ReplyButton::new("b", "Same")];
        assert!(interactive_buttons_body("1", "x", &twice, None).is_err());
        let ok = [ReplyButton::new("a", "A")];
        assert!(interactive_buttons_body("1", &"x".repeat(1025), &ok, None).is_err());
        assert_eq!(
            interactive_buttons_body("1", "", &ok, None)
                .unwrap_err()
                .code,
            "invalid_buttons"
        );
    }

    #[test]
    fn pacer_hands_out_evenly_spaced_slots() {
        let pacer = Pacer::new(4.0);
        let start = Instant::now();
        let slots: Vec<Duration> = (0..4).map(|_| pacer.reserve(start) - start).collect();
        assert_eq!(
            slots,
            [0, 250, 500, 750].map(Duration::from_millis).to_vec()
        );
        // After a quiet spell the next send goes at once, without a catch-up burst.
        let later = start + Duration::from_secs(10);
        assert_eq!(pacer.reserve(later), later);
        assert_eq!(pacer.reserve(later), later + Duration::from_millis(250));
    }

    #[test]
    fn config_is_validated_and_token_redacted() {
        let mut config = WhatsAppConfig::new("http://127.0.0.1:1/", "123", "EAAG-secret");
        assert!(!format!("{config:?}").contains("EAAG-secret"));
        let client = WhatsAppClient::new(config.clone()).unwrap();
        assert_eq!(
            client.messages_url.as_str(),
            "http://127.0.0.1:1/123/messages"
        );
        assert!(!format!("{client:?}").contains("EAAG-secret"));

        let mut bad = config.clone();
        bad.token = "EAAG\nsecret".into();
        assert!(matches!(
            WhatsAppClient::new(bad),
            Err(ClientBuildError::Config(_))
        ));
        let mut bad = config.clone();
        bad.api_url = "not a url".into();
        assert!(matches!(
            WhatsAppClient::new(bad),
            Err(ClientBuildError::Config(_))
        ));

        config.max_per_second = 0.0;
        assert!(matches!(
            WhatsAppClient::new(config.clone()),
            Err(ClientBuildError::Config(_))
        ));
        config.max_per_second = f64::NAN;
        assert!(WhatsAppClient::new(config.clone()).is_err());
        config.max_per_second = 80.0;
        config.phone_number_id = " ".into();
        assert!(WhatsAppClient::new(config).is_err());
    }
}
