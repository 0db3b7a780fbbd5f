//! The channel interface: every channel (console, WhatsApp, Telegram) turns its wire format into the
//! same [`ChannelEvent`]s and sends the same [`Outbound`] messages, so the engine never names one.

pub mod console;
pub mod files;
pub mod intake;
pub mod telegram;
pub mod whatsapp;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use crate::domain::account::{AccountEvent, Billing};
pub use crate::domain::delivery::{DeliveryStatus, StatusUpdate};
use crate::domain::interactive::Choices;
pub use crate::domain::media::{MediaFile, MediaKind, MediaRef, MediaSource};
use crate::domain::template::{HeaderParam, TemplateParts, TemplateSpec};
pub use files::{FetchError, FetchLimits, FileKind, FileRef, OutboundFile};

/// Which network an address lives on. The console stands in for WhatsApp, so it keeps WhatsApp's
/// rules (24 h window, templates) to make demos honest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    Console,
    WhatsApp,
    Telegram,
}

impl ChannelKind {
    /// Whether free text needs an open 24 h service window (WhatsApp's rule).
    pub fn has_service_window(self) -> bool {
        matches!(self, ChannelKind::Console | ChannelKind::WhatsApp)
    }

    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::Console => "console",
            ChannelKind::WhatsApp => "whatsapp",
            ChannelKind::Telegram => "telegram",
        }
    }
}

/// Something that happened on a channel, already in herald's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelEvent {
    Inbound(Inbound),
    Status(StatusUpdate),
    /// WhatsApp `user_preferences`: the user stopped (`stop = true`) or resumed marketing messages.
    MarketingPreference {
        from: String,
        stop: bool,
        at: DateTime<Utc>,
    },
    /// What the channel billed for a message herald sent (WhatsApp `pricing`).
    Billed(Billing),
    /// Something the WhatsApp Business account's owner (Meta) said about the account or its
    /// templates.
    Account(AccountEvent),
}

/// A message from a contact (or an admin) to the business.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// Channel-qualified address (`tg:42`, `wa:15550001`, or whatever was typed on the console).
    pub from: String,
    /// Profile name when the channel tells it.
    pub name: Option<String>,
    /// The text, a button's visible title, or a caption; `None` for media without caption.
    pub text: Option<String>,
    /// Payload of a pressed button (quick reply, inline keyboard), if this was a button press.
    pub button: Option<String>,
    /// The message's own time: it opens the service window.
    pub at: DateTime<Utc>,
    /// The channel's message id; a redelivered message with the same id is ignored.
    pub provider_id: Option<String>,
    /// The document, photo or video the message carried (its caption is `text`).
    pub file: Option<FileRef>,
}

/// What a message to someone is for: customer messages follow the campaign rules, admin replies
/// do not (and the console prints them differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Customer,
    Admin,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    pub to: String,
    pub audience: Audience,
    pub body: OutboundBody,
    /// Opaque data the channel attaches so statuses can be matched to a recipient even when the
    /// send's answer was lost (WhatsApp `biz_opaque_callback_data`).
    pub callback: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutboundBody {
    Text(String),
    /// An approved template: channels that know templates send name + parameters, the others send
    /// the rendered text. `buttons` are quick-reply button titles.
    Template {
        name: String,
        lang: String,
        params: Vec<String>,
        rendered: String,
        buttons: Vec<String>,
        /// A synced template's header, named parameters and button parameters (boxed: most
        /// messages have none, and every message in flight carries this enum).
        parts: Box<TemplateParts>,
    },
    /// Free text with reply buttons or a list menu under it (WhatsApp `interactive`, Telegram
    /// an inline keyboard). A tap comes back as an [`Inbound`] whose `button` is the title.
    Interactive {
        text: String,
        choices: Choices,
        /// An image, video or document shown above the text (reply buttons only).
        header: Option<MediaRef>,
    },
    /// An image, video or document with the text as its caption; free form, like text.
    Media {
        media: MediaRef,
        caption: String,
    },
}

impl OutboundBody {
    /// The media the message carries: a media message's, a media header's, a template's.
    pub fn media(&self) -> Option<&MediaRef> {
        match self {
            OutboundBody::Media { media, .. } => Some(media),
            OutboundBody::Interactive { header, .. } => header.as_ref(),
            OutboundBody::Template { parts, .. } => match &parts.header {
                Some(HeaderParam::Media(media)) => Some(media),
                _ => None,
            },
            OutboundBody::Text(_) => None,
        }
    }

    /// The text a person sees.
    pub fn rendered(&self) -> &str {
        match self {
            OutboundBody::Text(t) => t,
            OutboundBody::Template { rendered, .. } => rendered,
            OutboundBody::Interactive { text, .. } => text,
            OutboundBody::Media { caption, .. } => caption,
        }
    }
}

impl Outbound {
    /// The same message with its media taken from `source` (a channel showing an uploaded file
    /// by the id it got for it).
    pub fn with_media_source(&self, source: MediaSource) -> Outbound {
        let mut shown = self.clone();
        match &mut shown.body {
            OutboundBody::Media { media, .. }
            | OutboundBody::Interactive {
                header: Some(media),
                ..
            } => media.source = source,
            OutboundBody::Template { parts, .. } => {
                if let Some(HeaderParam::Media(media)) = &mut parts.header {
                    media.source = source;
                }
            }
            OutboundBody::Text(_) | OutboundBody::Interactive { header: None, .. } => {}
        }
        shown
    }

    pub fn admin(to: &str, text: impl Into<String>) -> Self {
        Outbound {
            to: to.to_string(),
            audience: Audience::Admin,
            body: OutboundBody::Text(text.into()),
            callback: None,
        }
    }
}

/// A message the channel accepted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sent {
    pub provider_id: Option<String>,
}

/// How the dispatcher must react to a failed send (SPEC section 3, "Errors from the channel").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throughput or rate limit: wait (`retry_after` if given) and slow down; not a failure.
    RateLimited,
    /// 5xx answers and errors that prove nothing left (connection refused, DNS, a timeout while
    /// connecting): retry with backoff a bounded number of times.
    Transient,
    /// The request may have reached the channel but its answer never came (a timeout or a reset
    /// after the request was written): recorded `unknown` and never re-sent on its own; a status
    /// webhook reconciles it, or an admin's `/campaign retry <id> unknown` sends it again.
    Unknown,
    /// Per-user marketing limit: try that recipient again hours later, a bounded number of times.
    Defer,
    /// Never retried: the recipient fails with this code and reason.
    Permanent,
    /// Permanent, and the contact can no longer be reached (blocked the bot, deactivated).
    Unreachable,
    /// Permanent, and the contact stopped marketing messages (WhatsApp 131050).
    MarketingStopped,
    /// Something is wrong for the whole campaign (spam limit, policy, payment, template): pause it
    /// and tell the admin.
    PauseCampaign,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct SendError {
    pub class: ErrorClass,
    /// The channel's error code (`131026`, `429`, `403`, `timeout`).
    pub code: String,
    /// Human-readable reason as the channel gave it.
    pub reason: String,
    pub retry_after: Option<Duration>,
}

impl SendError {
    pub fn new(class: ErrorClass, code: impl Into<String>, reason: impl Into<String>) -> Self {
        SendError {
            class,
            code: code.into(),
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// One network herald talks on.
#[async_trait]
pub trait Channel: Send + Sync {
    fn kind(&self) -> ChannelKind;
    /// Sends one message. Channel-wide ceilings (WhatsApp per-number throughput, Telegram 30/s and
    /// 1/s per chat) are the channel's own business and are enforced here.
    async fn send(&self, msg: &Outbound) -> Result<Sent, SendError>;

    /// How often an admin on this channel wants a sending campaign's progress; `None` for never.
    fn progress_interval(&self) -> Option<Duration> {
        None
    }

    /// What a failure the channel reported after accepting a message (a `failed` delivery
    /// status with this error code) means beyond "this message failed": the contact stopped
    /// marketing, cannot be reached, or the whole campaign must pause. `None` when nothing more.
    fn classify_failure(&self, code: &str) -> Option<ErrorClass> {
        let _ = code;
        None
    }

    /// Shows a campaign's live progress to an admin. Channels that can edit a message keep one
    /// message per `key` and edit it in place; the default sends a new message each time.
    async fn show_progress(&self, admin: &str, key: &str, text: &str) -> Result<(), SendError> {
        let _ = key;
        self.send(&Outbound::admin(admin, text)).await.map(|_| ())
    }

    /// Downloads a file someone attached, within `limits`: refused before the download when
    /// the channel declares a larger size, and stopped while downloading when it grows past it.
    async fn fetch_file(&self, file: &FileRef, limits: FetchLimits) -> Result<Vec<u8>, FetchError> {
        let _ = (file, limits);
        Err(FetchError::Unsupported)
    }

    /// Whether [`Channel::send_file`] delivers files (the console cannot: it prints lines).
    fn carries_files(&self) -> bool {
        false
    }

    /// Sends a file (a report) to an admin.
    async fn send_file(&self, to: &str, file: &OutboundFile) -> Result<Sent, SendError> {
        let _ = (to, file);
        Err(SendError::new(
            ErrorClass::Permanent,
            "unsupported",
            "this channel cannot carry files",
        ))
    }
}

/// Why the templates of the Business account could not be read, as an admin should hear it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CatalogError(pub String);

/// Where the approved templates come from (the WhatsApp Business account's
/// `message_templates`): the engine syncs its store from it, the application wires it.
#[async_trait]
pub trait TemplateCatalog: Send + Sync {
    /// Every template of the account, all pages read.
    async fn templates(&self) -> Result<Vec<TemplateSpec>, CatalogError>;
}

/// Where channels deliver what they receive (the engine implements it).
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn on_event(&self, event: ChannelEvent);
}

/// Picks the channel for an address by its prefix (`tg:`, `wa:`) when that channel is registered;
/// anything else goes to the fallback channel (the console when it runs, WhatsApp otherwise).
#[derive(Clone, Default)]
pub struct ChannelRouter {
    by_kind: HashMap<ChannelKind, Arc<dyn Channel>>,
    fallback: Option<Arc<dyn Channel>>,
}

impl ChannelRouter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, channel: Arc<dyn Channel>) {
        if self.fallback.is_none() || channel.kind() == ChannelKind::Console {
            self.fallback = Some(channel.clone());
        }
        self.by_kind.insert(channel.kind(), channel);
    }

    pub fn for_address(&self, address: &str) -> Option<Arc<dyn Channel>> {
        let wanted = if address.starts_with("tg:") {
            Some(ChannelKind::Telegram)
        } else if address.starts_with("wa:") {
            Some(ChannelKind::WhatsApp)
        } else {
            None
        };
        // A network that is really there takes its own addresses, so one engine can run the
        // console next to Telegram and a campaign reaches both.
        if let Some(channel) = wanted.and_then(|kind| self.by_kind.get(&kind)) {
            return Some(channel.clone());
        }
        // Otherwise the console stands in for every network in demos, so it takes the rest.
        if let Some(console) = self.by_kind.get(&ChannelKind::Console) {
            return Some(console.clone());
        }
        match wanted {
            Some(kind) => self.by_kind.get(&kind).cloned(),
            None => self.fallback.clone(),
        }
    }

    pub fn kinds(&self) -> Vec<ChannelKind> {
        self.by_kind.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Stub(ChannelKind);

    #[async_trait]
    impl Channel for Stub {
        fn kind(&self) -> ChannelKind {
            self.0
        }
        async fn send(&self, _msg: &Outbound) -> Result<Sent, SendError> {
            Ok(Sent::default())
        }
    }

    fn kind_for(router: &ChannelRouter, address: &str) -> Option<ChannelKind> {
        router.for_address(address).map(|c| c.kind())
    }

    #[test]
    fn registered_networks_take_their_addresses_and_the_console_the_rest() {
        let mut router = ChannelRouter::new();
        router.add(Arc::new(Stub(ChannelKind::Console)));
        router.add(Arc::new(Stub(ChannelKind::Telegram)));
        assert_eq!(kind_for(&router, "tg:42"), Some(ChannelKind::Telegram));
        assert_eq!(kind_for(&router, "+15550001"), Some(ChannelKind::Console));
        // No WhatsApp channel: the console stands in for it.
        assert_eq!(kind_for(&router, "wa:15550001"), Some(ChannelKind::Console));
    }

    #[test]
    fn without_a_console_unknown_networks_have_no_channel() {
        let mut router = ChannelRouter::new();
        router.add(Arc::new(Stub(ChannelKind::Telegram)));
        assert_eq!(kind_for(&router, "tg:42"), Some(ChannelKind::Telegram));
        assert_eq!(kind_for(&router, "wa:15550001"), None);
    }
}
