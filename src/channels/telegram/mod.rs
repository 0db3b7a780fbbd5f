//! The Telegram channel: a teloxide [`Bot`] that receives updates (long polling, or a webhook
//! merged into herald's HTTP server) and sends herald's [`Outbound`] messages with `sendMessage`.
//!
//! - Every chat is a contact `tg:<chat_id>`; in a private chat that is the user's id, so an
//!   admin (`ADMIN_TELEGRAM`, user ids) writing to the bot is `tg:<their id>`.
//! - Updates become [`ChannelEvent::Inbound`] for the engine, which owns everything else: the
//!   admin check before any `/command`, `/start` and `/stop`, opt-out words, replies, triggers.
//!   That is why there is no teloxide `Dispatcher` handler tree here: the rules must be the same
//!   on every channel, so they live in the engine, and the channel only translates.
//! - Sends respect Telegram's ceilings in one place ([`limits`]); errors come back classified
//!   ([`errors`]) so the dispatcher waits on 429s and fails blocked users.
//! - A sending campaign's progress is one message in the admin's chat, edited in place.
//! - Files: an attached document or photo is fetched with `getFile` and the file route
//!   (`{TELEGRAM_API_URL}/file/bot<token>/<file_path>`); reports go out with `sendDocument` and
//!   `sendPhoto`.

pub mod errors;
pub mod limits;
pub mod updates;
pub mod webhook;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use teloxide::errors::{ApiError, RequestError};
use teloxide::net::Download;
use teloxide::payloads::{
    GetUpdatesSetters, SendDocumentSetters, SendMessageSetters, SendPhotoSetters, SendVideoSetters,
    SetMyCommandsSetters, SetWebhookSetters,
};
use teloxide::requests::{Request, Requester};
use teloxide::types::{
    AllowedUpdate, BotCommand, BotCommandScope, CallbackQueryId, ChatId, FileId,
    InlineKeyboardButton, InlineKeyboardMarkup, InputFile, MessageId, Recipient, Update,
};
use teloxide::Bot;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::files::{LimitedBody, Uploaded, Uploads};
use super::{
    Audience, Channel, ChannelEvent, ChannelKind, ErrorClass, EventSink, FetchError, FetchLimits,
    FileKind, FileRef, MediaKind, MediaRef, MediaSource, Outbound, OutboundBody, OutboundFile,
    SendError, Sent,
};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use limits::Limiter;
use updates::Action;

/// Telegram's own Bot API, used when `TELEGRAM_API_URL` is not set.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";
/// How long one `getUpdates` call waits for something to happen (long polling).
pub const POLL_TIMEOUT: Duration = Duration::from_secs(25);
/// How often an admin's progress message is edited while a campaign sends.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(3);
/// Bot API: a message is at most 4096 characters. Admin answers (reports, /help) can be longer
/// and are split; a little headroom covers characters that count double in UTF-16.
const MAX_TEXT: usize = 4000;
/// The Bot API takes a caption of at most 1,024 characters; a longer text (a template's body
/// under its image) follows the media as its own message.
const MAX_CAPTION: usize = 1024;
/// Bot API: callback data is 1-64 bytes.
const MAX_CALLBACK_DATA: usize = crate::domain::interactive::MAX_TAP_DATA_BYTES;
/// Progress messages remembered (one per campaign); the oldest is forgotten beyond this.
const MAX_PROGRESS_MESSAGES: usize = 1000;
/// Updates accepted by the webhook but not yet handled; beyond this Telegram is told to retry.
const WEBHOOK_QUEUE: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    #[error("{key}: {message}")]
    Config { key: &'static str, message: String },
    #[error("cannot build the HTTP client for Telegram: {0}")]
    Http(#[from] reqwest::Error),
}

/// How updates arrive.
enum Mode {
    Polling,
    Webhook {
        url: reqwest::Url,
        secret: Arc<str>,
        queue: mpsc::Sender<Update>,
        /// Taken by [`TelegramChannel::start`], which drains it.
        pending: Mutex<Option<mpsc::Receiver<Update>>>,
    },
}

/// The Telegram [`Channel`].
pub struct TelegramChannel {
    /// For sends: teloxide's default client timeouts (a hung send must not hold a worker).
    bot: Bot,
    /// For long polling: its client waits longer than [`POLL_TIMEOUT`].
    poll_bot: Bot,
    /// For files (`getFile`, downloads, `sendDocument`/`sendPhoto`): a 20 MB file takes longer
    /// than a text, so its client waits up to `FILE_TIMEOUT_SECS`.
    file_bot: Bot,
    clock: SharedClock,
    limiter: Limiter,
    mode: Mode,
    /// Admin user ids, for their command menu.
    admins: Vec<i64>,
    /// The bot's @username (from `getMe`), to tell `/cmd@us` from `/cmd@another_bot`.
    username: OnceLock<String>,
    progress: Mutex<ProgressMessages>,
    /// Campaign files already sent once, by their `file_id`, so each is uploaded once.
    uploads: Uploads,
    /// Admins whose command menu Telegram accepted; an admin who had not started the bot when
    /// herald started gets theirs when they first write.
    menus_set: Mutex<HashSet<i64>>,
    /// The admin commands as `(command, description)`, shown as each admin's menu; handed in
    /// by [`TelegramChannel::start`], since the command layer sits above the channels.
    admin_menu: OnceLock<Vec<(String, String)>>,
}

/// One message per progress key, edited in place.
#[derive(Default)]
struct ProgressMessages {
    by_key: HashMap<String, ProgressMessage>,
    seq: u64,
}

#[derive(Clone, Copy)]
struct ProgressMessage {
    chat: i64,
    message_id: MessageId,
    seq: u64,
}

impl TelegramChannel {
    /// The channel `herald run` uses, on the wall clock; `Ok(None)` without `TELEGRAM_TOKEN`.
    pub fn from_config(config: &Config) -> Result<Option<Arc<TelegramChannel>>, TelegramError> {
        Self::from_config_with_clock(config, Arc::new(SystemClock))
    }

    /// Like [`TelegramChannel::from_config`], pacing on `clock` (tests pass a manual clock, so
    /// the one-message-per-second-per-chat ceiling costs them no real time).
    pub fn from_config_with_clock(
        config: &Config,
        clock: SharedClock,
    ) -> Result<Option<Arc<TelegramChannel>>, TelegramError> {
        let Some(token) = config.telegram_token.as_deref().map(str::trim) else {
            return Ok(None);
        };
        let raw_url = config
            .telegram_api_url
            .as_deref()
            .unwrap_or(DEFAULT_API_URL);
        // A trailing slash would give `//bot<token>/...` once teloxide appends its segments.
        let api_url = reqwest::Url::parse(raw_url.trim().trim_end_matches('/')).map_err(|e| {
            TelegramError::Config {
                key: "TELEGRAM_API_URL",
                message: format!("{raw_url:?} is not a URL: {e}"),
            }
        })?;
        let mut admins = Vec::new();
        for admin in &config.admin_telegram {
            match updates::chat_id(admin) {
                Some(id) => admins.push(id),
                None => {
                    return Err(TelegramError::Config {
                        key: "ADMIN_TELEGRAM",
                        message: format!(
                            "{:?} is not a numeric Telegram user id (the README says how to find yours)",
                            admin.trim_start_matches("tg:")
                        ),
                    })
                }
            }
        }
        let mode = match &config.telegram_webhook_url {
            None => Mode::Polling,
            Some(raw) => {
                let url = reqwest::Url::parse(raw).map_err(|e| TelegramError::Config {
                    key: "TELEGRAM_WEBHOOK_URL",
                    message: format!("{raw:?} is not a URL: {e}"),
                })?;
                let secret = match &config.telegram_secret_token {
                    Some(s) if webhook::valid_secret(s) => s.clone(),
                    Some(_) => {
                        return Err(TelegramError::Config {
                            key: "TELEGRAM_SECRET_TOKEN",
                            message: "use 1-256 characters of A-Z, a-z, 0-9, _ and -".into(),
                        })
                    }
                    None => webhook::random_secret(),
                };
                let (queue, pending) = mpsc::channel(WEBHOOK_QUEUE);
                Mode::Webhook {
                    url,
                    secret: secret.into(),
                    queue,
                    pending: Mutex::new(Some(pending)),
                }
            }
        };
        let send_client = teloxide::net::default_reqwest_settings().build()?;
        let poll_client = teloxide::net::default_reqwest_settings()
            .timeout(POLL_TIMEOUT + Duration::from_secs(15))
            .build()?;
        let file_client = teloxide::net::default_reqwest_settings()
            .timeout(config.file_timeout)
            .build()?;
        Ok(Some(Arc::new(TelegramChannel {
            bot: Bot::with_client(token, send_client).set_api_url(api_url.clone()),
            poll_bot: Bot::with_client(token, poll_client).set_api_url(api_url.clone()),
            file_bot: Bot::with_client(token, file_client).set_api_url(api_url),
            limiter: Limiter::new(clock.clone()),
            clock,
            mode,
            admins,
            username: OnceLock::new(),
            progress: Mutex::new(ProgressMessages::default()),
            uploads: Uploads::default(),
            menus_set: Mutex::new(HashSet::new()),
            admin_menu: OnceLock::new(),
        })))
    }

    /// In webhook mode, the route Telegram POSTs updates to (at the path of
    /// `TELEGRAM_WEBHOOK_URL`), to merge into herald's HTTP server, reading bodies within
    /// `intake`'s limits; `None` when long polling.
    pub fn webhook_router(&self, intake: crate::channels::intake::Intake) -> Option<axum::Router> {
        match &self.mode {
            Mode::Polling => None,
            Mode::Webhook {
                url, secret, queue, ..
            } => Some(webhook::router(
                url.path(),
                secret.clone(),
                queue.clone(),
                intake,
            )),
        }
    }

    /// Starts receiving: registers the command menus, then long-polls (or registers the webhook
    /// and drains what it receives) until `shutdown`. The update being handled when shutdown
    /// comes is finished first.
    pub fn start(
        self: Arc<Self>,
        inbox: Arc<dyn EventSink>,
        admin_menu: Vec<(String, String)>,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        let _ = self.admin_menu.set(admin_menu);
        tokio::spawn(async move {
            let engine = inbox;
            if !self.connect(&shutdown).await {
                return;
            }
            self.register_commands().await;
            match &self.mode {
                Mode::Polling => self.poll(engine.as_ref(), &shutdown).await,
                Mode::Webhook {
                    url,
                    secret,
                    pending,
                    ..
                } => {
                    let rx = crate::lock(pending).take();
                    let Some(rx) = rx else {
                        tracing::error!("telegram: the webhook receiver was already started");
                        return;
                    };
                    self.serve_webhook(engine.as_ref(), url, secret, rx, &shutdown)
                        .await;
                }
            }
            tracing::info!("telegram: stopped");
        })
    }

    /// `getMe`, retried until it answers: it proves the token and names the bot. Returns
    /// `false` when shutdown came first.
    async fn connect(&self, shutdown: &CancellationToken) -> bool {
        let mut backoff = Backoff::default();
        loop {
            let result = tokio::select! {
                _ = shutdown.cancelled() => return false,
                r = self.bot.get_me().send() => r,
            };
            match result {
                Ok(me) => {
                    let username = me.user.username.clone().unwrap_or_default();
                    tracing::info!(bot = %username, "telegram: connected");
                    let _ = self.username.set(username);
                    return true;
                }
                Err(e) => {
                    tracing::error!(error = %e, "telegram: getMe failed; is TELEGRAM_TOKEN right?");
                    if !backoff.wait(shutdown).await {
                        return false;
                    }
                }
            }
        }
    }

    /// The command menu: customers see `/start` and `/stop`; each admin's private chat shows
    /// the admin commands from `commands/`. A failure is logged and harmless (the commands work
    /// when typed either way).
    async fn register_commands(&self) {
        let customer = vec![
            BotCommand::new("start", "Subscribe to our messages"),
            BotCommand::new("stop", "Unsubscribe"),
        ];
        if let Err(e) = self.bot.set_my_commands(customer).send().await {
            tracing::warn!(error = %e, "telegram: setMyCommands (customers) failed");
        }
        for id in &self.admins {
            self.register_admin_menu(*id).await;
        }
    }

    /// The admin commands as the menu of one admin's private chat.
    async fn register_admin_menu(&self, admin: i64) {
        let commands: Vec<BotCommand> = self
            .admin_menu
            .get()
            .into_iter()
            .flatten()
            .map(|(command, description)| BotCommand::new(command, description))
            .collect();
        let scope = BotCommandScope::Chat {
            chat_id: Recipient::Id(ChatId(admin)),
        };
        match self.bot.set_my_commands(commands).scope(scope).send().await {
            Ok(_) => {
                crate::lock(&self.menus_set).insert(admin);
            }
            // Typically "chat not found": that admin has not written to the bot yet; it is
            // tried again when they do.
            Err(e) => tracing::warn!(admin, error = %e, "telegram: setMyCommands (admin) failed"),
        }
    }

    /// Long polling: `getUpdates` with the offset after the last handled update, so an update
    /// is confirmed to Telegram only once it was handled (a crash re-fetches it, and the
    /// engine drops the duplicate by its message id).
    async fn poll(&self, engine: &dyn EventSink, shutdown: &CancellationToken) {
        // getUpdates is refused while a webhook is set (e.g. left by a webhook-mode run).
        if let Err(e) = self.poll_bot.delete_webhook().send().await {
            tracing::warn!(error = %e, "telegram: deleteWebhook failed");
        }
        tracing::info!("telegram: long polling for updates");
        let mut offset: i32 = 0;
        let mut backoff = Backoff::default();
        loop {
            let request = self
                .poll_bot
                .get_updates()
                .offset(offset)
                .timeout(POLL_TIMEOUT.as_secs() as u32)
                .allowed_updates(vec![AllowedUpdate::Message, AllowedUpdate::CallbackQuery]);
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = request.send() => r,
            };
            match result {
                Ok(batch) => {
                    backoff = Backoff::default();
                    for update in batch {
                        offset = offset.max(
                            i32::try_from(update.id.0).map_or(i32::MAX, |id| id.saturating_add(1)),
                        );
                        self.handle_update(engine, update).await;
                    }
                }
                Err(RequestError::RetryAfter(s)) => {
                    tracing::warn!(seconds = s.seconds(), "telegram: getUpdates rate limited");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(s.duration()) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "telegram: getUpdates failed");
                    if !backoff.wait(shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// Webhook mode: registers the webhook (retried until Telegram takes it), then handles the
    /// updates the route queued, in order, until shutdown; what was already accepted is handled
    /// before returning.
    async fn serve_webhook(
        &self,
        engine: &dyn EventSink,
        url: &reqwest::Url,
        secret: &str,
        mut rx: mpsc::Receiver<Update>,
        shutdown: &CancellationToken,
    ) {
        let mut backoff = Backoff::default();
        loop {
            let request = self
                .bot
                .set_webhook(url.clone())
                .secret_token(secret)
                .allowed_updates(vec![AllowedUpdate::Message, AllowedUpdate::CallbackQuery]);
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = request.send() => r,
            };
            match result {
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(error = %e, url = %url, "telegram: setWebhook failed");
                    if !backoff.wait(shutdown).await {
                        return;
                    }
                }
            }
        }
        tracing::info!(url = %url, "telegram: receiving updates by webhook");
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                update = rx.recv() => match update {
                    Some(update) => self.handle_update(engine, update).await,
                    None => break,
                },
            }
        }
        rx.close();
        while let Ok(update) = rx.try_recv() {
            self.handle_update(engine, update).await;
        }
    }

    /// One update, handed to the engine.
    #[tracing::instrument(skip_all, fields(update_id = update.id.0))]
    async fn handle_update(&self, engine: &dyn EventSink, update: Update) {
        let username = self
            .username
            .get()
            .map(String::as_str)
            .filter(|u| !u.is_empty());
        let inbound = match updates::action(&update, username, self.clock.now()) {
            Action::Ignore(why) => {
                tracing::debug!(why, "telegram: update ignored");
                return;
            }
            Action::Inbound(inbound) => inbound,
            Action::Callback { query_id, inbound } => {
                // Answered first: the user's app shows a spinner on the button until then.
                if let Err(e) = self
                    .bot
                    .answer_callback_query(CallbackQueryId(query_id))
                    .send()
                    .await
                {
                    tracing::warn!(error = %e, "telegram: answerCallbackQuery failed");
                }
                inbound
            }
        };
        if let Some(admin) = updates::chat_id(&inbound.from).filter(|id| self.admins.contains(id)) {
            let missing = !crate::lock(&self.menus_set).contains(&admin);
            if missing {
                self.register_admin_menu(admin).await;
            }
        }
        if let Some(text) = inbound.text.as_deref() {
            let command = text.split_whitespace().next().unwrap_or("");
            let customer_command = matches!(command, "/start" | "/stop");
            if command.starts_with('/')
                && !customer_command
                && !updates::chat_id(&inbound.from).is_some_and(|id| self.admins.contains(&id))
            {
                // How an operator finds their own id: write /help to the bot and read this line.
                tracing::warn!(
                    id = %inbound.from.trim_start_matches("tg:"),
                    name = %inbound.name.as_deref().unwrap_or(""),
                    command = %command,
                    "telegram: not answered, the sender is not an admin (add this id to \
                     ADMIN_TELEGRAM to make them one)"
                );
            }
        }
        engine.on_event(ChannelEvent::Inbound(inbound)).await;
    }

    /// `sendMessage` of one piece of text, within the ceilings.
    async fn send_text(
        &self,
        chat: i64,
        text: &str,
        keyboard: Option<InlineKeyboardMarkup>,
    ) -> Result<MessageId, SendError> {
        self.limiter.wait(chat).await;
        let mut request = self.bot.send_message(ChatId(chat), text);
        if let Some(keyboard) = keyboard {
            request = request.reply_markup(keyboard);
        }
        match request.send().await {
            Ok(message) => Ok(message.id),
            Err(e) => Err(self.failed(chat, &e)),
        }
    }

    /// `sendPhoto`, `sendVideo` or `sendDocument` with the text as caption and the keyboard
    /// under it. A link is handed to Telegram to fetch; a campaign's file is uploaded by its
    /// first message (the others wait meanwhile) and shown by the `file_id` Telegram answered
    /// after that. A text too long for a caption follows as its own message, with the keyboard.
    async fn send_media(
        &self,
        chat: i64,
        media: &MediaRef,
        text: &str,
        keyboard: Option<InlineKeyboardMarkup>,
    ) -> Result<MessageId, SendError> {
        let fits = text.chars().count() <= MAX_CAPTION;
        let caption = (fits && !text.trim().is_empty()).then(|| text.to_string());
        let (media_keyboard, after) = if fits {
            (keyboard, None)
        } else {
            (None, Some(keyboard))
        };
        let mut slot = None;
        let input = match &media.source {
            MediaSource::Link(link) => InputFile::url(link.parse().map_err(|_| {
                SendError::new(
                    ErrorClass::PauseCampaign,
                    "invalid_media",
                    format!("the campaign's media link {link:?} is not a URL"),
                )
            })?),
            MediaSource::Id(id) => InputFile::file_id(FileId(id.clone())),
            MediaSource::File(file) => {
                let held = self.uploads.slot(&file.sha256).await;
                match held.as_ref() {
                    Some(up) => InputFile::file_id(FileId(up.id.clone())),
                    None => {
                        slot = Some(held);
                        InputFile::memory(file.bytes.to_vec()).file_name(file.name.clone())
                    }
                }
            }
        };
        // An upload takes longer than a text: it goes through the client that waits for files.
        let bot = if slot.is_some() {
            &self.file_bot
        } else {
            &self.bot
        };
        self.limiter.wait(chat).await;
        let sent = match media.kind {
            MediaKind::Image => {
                let mut request = bot.send_photo(ChatId(chat), input);
                request.caption = caption;
                request.reply_markup = media_keyboard.map(Into::into);
                request.send().await
            }
            MediaKind::Video => {
                let mut request = bot.send_video(ChatId(chat), input);
                request.caption = caption;
                request.reply_markup = media_keyboard.map(Into::into);
                request.send().await
            }
            MediaKind::Document => {
                let mut request = bot.send_document(ChatId(chat), input);
                request.caption = caption;
                request.reply_markup = media_keyboard.map(Into::into);
                request.send().await
            }
        };
        let message = sent.map_err(|e| self.failed(chat, &e))?;
        if let Some(mut slot) = slot {
            *slot = file_id_of(&message).map(|id| Uploaded {
                id,
                at: std::time::Instant::now(),
            });
        }
        match after {
            Some(keyboard) => self.send_text(chat, text, keyboard).await,
            None => Ok(message.id),
        }
    }

    /// `getFile`, then the file route, counting the bytes as they come.
    #[tracing::instrument(skip_all, fields(file_id = %file.id))]
    async fn download(&self, file: &FileRef, limits: FetchLimits) -> Result<Vec<u8>, FetchError> {
        let fetch_error = |error: &reqwest::Error| {
            if error.is_timeout() {
                FetchError::TimedOut(limits.timeout)
            } else if let Some(status) = error.status() {
                FetchError::Refused(format!("HTTP {}", status.as_u16()))
            } else {
                FetchError::Network(crate::error_chain(error))
            }
        };
        if let Some(size) = file.size.filter(|size| *size > limits.max_bytes) {
            return Err(FetchError::TooLarge(size));
        }
        let found = match self.file_bot.get_file(FileId(file.id.clone())).send().await {
            Ok(found) => found,
            Err(RequestError::Network(error)) => return Err(fetch_error(&error)),
            Err(error) => {
                tracing::warn!(error = %error, "telegram: getFile failed");
                return Err(FetchError::Refused(errors::classify(&error).reason));
            }
        };
        if found.meta.size != u32::MAX && u64::from(found.meta.size) > limits.max_bytes {
            return Err(FetchError::TooLarge(u64::from(found.meta.size)));
        }
        let mut chunks = self.file_bot.download_file_stream(&found.path);
        let mut body = LimitedBody::new(limits.max_bytes);
        while let Some(chunk) = chunks.next().await {
            body.push(&chunk.map_err(|e| fetch_error(&e))?)?;
        }
        Ok(body.finish())
    }

    /// Classifies a failed request; a 429 also holds the chat for the time Telegram asked.
    fn failed(&self, chat: i64, e: &RequestError) -> SendError {
        let err = errors::classify(e);
        if err.class == ErrorClass::RateLimited {
            if let Some(wait) = err
                .retry_after
                .and_then(|d| chrono::Duration::from_std(d).ok())
            {
                self.limiter.hold_chat(chat, self.clock.now() + wait);
            }
        }
        err
    }

    fn remember_progress(&self, key: &str, chat: i64, message_id: MessageId) {
        let mut p = crate::lock(&self.progress);
        p.seq += 1;
        let seq = p.seq;
        p.by_key.insert(
            key.to_string(),
            ProgressMessage {
                chat,
                message_id,
                seq,
            },
        );
        if p.by_key.len() > MAX_PROGRESS_MESSAGES {
            let oldest = p
                .by_key
                .iter()
                .min_by_key(|(_, m)| m.seq)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                p.by_key.remove(&oldest);
            }
        }
    }
}

#[async_trait]
impl Channel for TelegramChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Telegram
    }

    /// Sends text with `sendMessage` (plain text: no parse mode, so a customer's `*` or `<`
    /// never breaks a send). A template's rendered body goes as text, its buttons as inline
    /// keyboard buttons whose press comes back as an inbound with the button's title as data.
    #[tracing::instrument(skip_all, fields(to = %msg.to))]
    async fn send(&self, msg: &Outbound) -> Result<Sent, SendError> {
        let chat = chat_of(&msg.to)?;
        let (text, keyboard) = match &msg.body {
            OutboundBody::Text(text) => (text.as_str(), None),
            OutboundBody::Template {
                rendered, buttons, ..
            } => (rendered.as_str(), inline_keyboard(buttons)),
            OutboundBody::Interactive { text, choices, .. } => {
                (text.as_str(), inline_keyboard(choices.titles()))
            }
            OutboundBody::Media { caption, .. } => (caption.as_str(), None),
        };
        if let Some(media) = msg.body.media() {
            let id = self.send_media(chat, media, text, keyboard).await?;
            return Ok(Sent {
                provider_id: Some(format!("tg:{chat}:{}", id.0)),
            });
        }
        if text.trim().is_empty() {
            return Err(SendError::new(
                ErrorClass::Permanent,
                "400",
                "Bad Request: message text is empty",
            ));
        }
        // Admin answers (reports, /help) may exceed Telegram's limit and are split; a customer
        // message is sent whole, and Telegram's refusal of an overlong one is its failure reason.
        let parts = match msg.audience {
            Audience::Admin => split_text(text, MAX_TEXT),
            Audience::Customer => vec![text.to_string()],
        };
        let last = parts.len().saturating_sub(1);
        let mut sent = None;
        for (i, part) in parts.iter().enumerate() {
            let keyboard = if i == last { keyboard.clone() } else { None };
            sent = Some(self.send_text(chat, part, keyboard).await?);
        }
        Ok(Sent {
            provider_id: sent.map(|id| format!("tg:{chat}:{}", id.0)),
        })
    }

    fn progress_interval(&self) -> Option<Duration> {
        Some(PROGRESS_EVERY)
    }

    /// The first call for a `key` sends a message and remembers it; later calls edit it.
    #[tracing::instrument(skip_all, fields(admin = %admin, key = %key))]
    async fn show_progress(&self, admin: &str, key: &str, text: &str) -> Result<(), SendError> {
        let chat = chat_of(admin)?;
        let known = crate::lock(&self.progress)
            .by_key
            .get(key)
            .copied()
            .filter(|m| m.chat == chat);
        if let Some(m) = known {
            self.limiter.wait(chat).await;
            match self
                .bot
                .edit_message_text(ChatId(chat), m.message_id, text)
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                // Same numbers as last time: nothing to show.
                Err(RequestError::Api(ApiError::MessageNotModified)) => return Ok(()),
                // The admin deleted it (or it is too old to edit): start a new one below.
                Err(RequestError::Api(
                    ApiError::MessageToEditNotFound
                    | ApiError::MessageCantBeEdited
                    | ApiError::MessageIdInvalid,
                )) => {}
                Err(e) => return Err(self.failed(chat, &e)),
            }
        }
        let message_id = self.send_text(chat, text, None).await?;
        self.remember_progress(key, chat, message_id);
        Ok(())
    }

    async fn fetch_file(&self, file: &FileRef, limits: FetchLimits) -> Result<Vec<u8>, FetchError> {
        self.download(file, limits).await
    }

    fn carries_files(&self) -> bool {
        true
    }

    /// `sendDocument` (a file to open, with its name), `sendPhoto` or `sendVideo`, multipart,
    /// with the caption.
    #[tracing::instrument(skip_all, fields(to = %to, file = %file.name))]
    async fn send_file(&self, to: &str, file: &OutboundFile) -> Result<Sent, SendError> {
        let chat = chat_of(to)?;
        let input = InputFile::memory(file.bytes.clone()).file_name(file.name.clone());
        let caption = file.caption.clone();
        self.limiter.wait(chat).await;
        let sent = match file.kind {
            FileKind::Document => {
                let mut request = self.file_bot.send_document(ChatId(chat), input);
                if let Some(caption) = caption {
                    request = request.caption(caption);
                }
                request.send().await
            }
            FileKind::Image => {
                let mut request = self.file_bot.send_photo(ChatId(chat), input);
                if let Some(caption) = caption {
                    request = request.caption(caption);
                }
                request.send().await
            }
            FileKind::Video => {
                let mut request = self.file_bot.send_video(ChatId(chat), input);
                if let Some(caption) = caption {
                    request = request.caption(caption);
                }
                request.send().await
            }
        };
        match sent {
            Ok(message) => Ok(Sent {
                provider_id: Some(format!("tg:{chat}:{}", message.id.0)),
            }),
            Err(e) => Err(self.failed(chat, &e)),
        }
    }
}

/// The `file_id` Telegram gave the photo (its largest size), video or document of a message
/// herald sent, to show the same file again without uploading it.
fn file_id_of(message: &teloxide::types::Message) -> Option<String> {
    if let Some(sizes) = message.photo() {
        return sizes.last().map(|p| p.file.id.0.clone());
    }
    if let Some(video) = message.video() {
        return Some(video.file.id.0.clone());
    }
    message.document().map(|d| d.file.id.0.clone())
}

fn chat_of(address: &str) -> Result<i64, SendError> {
    updates::chat_id(address).ok_or_else(|| {
        SendError::new(
            ErrorClass::Permanent,
            "invalid_address",
            format!("{address:?} is not a Telegram chat (tg:<chat id>)"),
        )
    })
}

/// One button per row, so long titles stay readable on a phone. The data is the title (cut to
/// the Bot API's 64 bytes), which is what a press reports back.
fn inline_keyboard(buttons: &[String]) -> Option<InlineKeyboardMarkup> {
    let rows: Vec<Vec<InlineKeyboardButton>> = buttons
        .iter()
        .filter(|b| !b.trim().is_empty())
        .map(|title| {
            vec![InlineKeyboardButton::callback(
                title.clone(),
                truncate_bytes(title, MAX_CALLBACK_DATA),
            )]
        })
        .collect();
    (!rows.is_empty()).then(|| InlineKeyboardMarkup::new(rows))
}

fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Splits text into pieces of at most `max` characters, at line breaks where possible.
fn split_text(text: &str, max: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut current_len = 0;
    for line in text.split_inclusive('\n') {
        let mut line = line;
        loop {
            let len = line.chars().count();
            if current_len + len <= max {
                current.push_str(line);
                current_len += len;
                break;
            }
            if current_len > 0 {
                parts.push(std::mem::take(&mut current));
                current_len = 0;
                continue;
            }
            // A single line longer than a message: cut it.
            let cut = line.char_indices().nth(max).map_or(line.len(), |(i, _)| i);
            parts.push(line[..cut].to_string());
            line = &line[cut..];
        }
    }
    if !current.trim().is_empty() || parts.is_empty() {
        parts.push(current);
    }
    parts
}

/// Exponential backoff for reconnecting (real time: it waits for a network, not a schedule).
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_millis(500),
        }
    }
}

impl Backoff {
    const MAX: Duration = Duration::from_secs(60);

    /// Waits the next delay; `false` when shutdown came first.
    async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_admin_text_splits_at_lines() {
        let text = "aaaa\nbbbb\ncccc\n";
        assert_eq!(split_text(text, 10), vec!["aaaa\nbbbb\n", "cccc\n"]);
        assert_eq!(split_text("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(split_text("short", 4000), vec!["short"]);
    }

    #[test]
    fn buttons_become_one_row_each_with_bounded_data() {
        let long = "é".repeat(40);
        let kb = inline_keyboard(&["Yes".into(), "".into(), long.clone()]).unwrap();
        assert_eq!(kb.inline_keyboard.len(), 2);
        let json = serde_json::to_value(&kb).unwrap();
        assert_eq!(json["inline_keyboard"][0][0]["callback_data"], "Yes");
        let data = json["inline_keyboard"][1][0]["callback_data"]
            .as_str()
            .unwrap();
        assert!(data.len() <= 64 && long.starts_with(data));
        assert!(inline_keyboard(&[]).is_none());
    }

    #[test]
    fn without_a_token_there_is_no_channel() {
        assert!(TelegramChannel::from_config(&Config::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn admin_ids_must_be_numbers() {
        let config = Config {
            telegram_token: Some("1:abc".into()),
            admin_telegram: vec!["tg:@ann".into()],
            ..Config::default()
        };
        let Err(e) = TelegramChannel::from_config(&config) else {
            panic!("accepted a username as an admin id")
        };
        assert!(e.to_string().starts_with("ADMIN_TELEGRAM:"), "{e}");
    }
}
