//! Meta's webhook body (`object`, `entry[].changes[].field/value`) turned into [`ChannelEvent`]s, and
//! the `GET` verification handshake.
//!
//! Meta adds message types and fields without notice, so parsing is lenient at every level: unknown
//! fields are ignored, each entry, change, message, status and preference is read on its own, and one
//! that does not fit is logged and skipped instead of failing the body (Meta would redeliver a body
//! we refused, forever). Only a body that is not a JSON object at all is an error.
//!
//! What becomes an event (field `messages` unless said otherwise):
//! - every message a user sent, whatever its type (text, button, interactive, media, reaction,
//!   location, contacts, order, `unsupported`, an `edit`...) → [`ChannelEvent::Inbound`]: any of them
//!   is the user writing to us, so it opens the service window even when it carries no text.
//!   `text` is the typed text, a button's visible title, a media caption, or the text of an edited
//!   message; `button` is a quick-reply payload or an interactive reply id; `file` is the media
//!   id of an image, video or document (fetched only if an admin's command needs it).
//! - `revoke` (the user deleted a message) and `system` (number or identity changed) → nothing: they
//!   are not the user writing to the business, so they must not reopen the 24 h window.
//! - `statuses` → [`ChannelEvent::Status`]; `played` counts as read; unknown statuses are skipped.
//! - field `user_preferences`, category `marketing_messages` → [`ChannelEvent::MarketingPreference`]
//!   (`stop` → stop; `resume` and `signup` (joined through a sign-up link) → not stopped).
//! - a status's `pricing` → [`ChannelEvent::Billed`] as well, after the status.
//! - fields `message_template_status_update`, `phone_number_quality_update` and `account_update`
//!   (`ACCOUNT_RESTRICTION`, `ACCOUNT_VIOLATION`, `DISABLED_UPDATE`) → [`ChannelEvent::Account`],
//!   when the entry is for our Business account (or names none, or none is configured).
//! - every other field (`message_template_quality_update`, `calls`, `smb_message_echoes`, ...)
//!   → nothing.
//!
//! One Meta app can serve several business numbers, and Meta signs every number's webhooks with
//! the same app secret and sends them to the same URL. A change whose `metadata.phone_number_id`
//! names another number than ours is therefore left out whole: its messages were not written to
//! us, so they must not run an admin's command, opt anyone out or open a window. A change without
//! metadata (Meta always sends it for these fields) is read: it names no other number.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::channels::{ChannelEvent, DeliveryStatus, FileKind, FileRef, Inbound, StatusUpdate};
use crate::domain::account::{AccountEvent, Billing, MessagingLimit, Pricing, Restriction};
use crate::domain::template::TemplateStatus;

use super::address;

/// Why a webhook body could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook body is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("webhook body is not a JSON object")]
    NotAnObject,
}

/// The whole POST body.
#[derive(Debug, Deserialize)]
pub struct WebhookBody {
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub entry: Vec<Entry>,
}

/// One WhatsApp Business Account's batch.
#[derive(Debug, Deserialize)]
pub struct Entry {
    #[serde(default)]
    pub id: Option<Value>,
    /// Unix seconds of the notification (account and template changes carry no other time).
    #[serde(default)]
    pub time: Option<Value>,
    #[serde(default, deserialize_with = "lenient")]
    pub changes: Vec<Change>,
}

/// One notification: `field` says which kind, `value` its content. `value` stays raw text because
/// its shape depends on `field`; only the fields herald reads are decoded, as [`ChangeValue`].
#[derive(Debug, Deserialize)]
pub struct Change {
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub value: Option<Box<RawValue>>,
}

/// `value` of a `messages` or `user_preferences` change.
#[derive(Debug, Default, Deserialize)]
pub struct ChangeValue {
    #[serde(default)]
    pub messaging_product: Option<String>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default, deserialize_with = "lenient")]
    pub contacts: Vec<Contact>,
    #[serde(default, deserialize_with = "lenient")]
    pub messages: Vec<Message>,
    #[serde(default, deserialize_with = "lenient")]
    pub statuses: Vec<Status>,
    /// Errors about the notification itself (e.g. "Unsupported webhook payload").
    #[serde(default, deserialize_with = "lenient")]
    pub errors: Vec<WaError>,
    #[serde(default, deserialize_with = "lenient")]
    pub user_preferences: Vec<UserPreference>,
}

/// The business number the notification is for.
#[derive(Debug, Default, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub display_phone_number: Option<String>,
    #[serde(default)]
    pub phone_number_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Contact {
    #[serde(default)]
    pub wa_id: Option<String>,
    /// Business-scoped user id (BSUID), sent next to or instead of `wa_id` by newer API versions.
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub profile: Option<Profile>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub name: Option<String>,
}

/// An inbound message. Only the parts herald maps are typed; every type-specific object herald does
/// not read (location, contacts, order, reaction, ...) is simply ignored.
#[derive(Debug, Default, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub from_user_id: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    /// Unix seconds, as a string in Meta's payloads (a number is accepted too).
    #[serde(default)]
    pub timestamp: Option<Value>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub text: Option<TextBody>,
    #[serde(default)]
    pub button: Option<QuickReply>,
    #[serde(default)]
    pub interactive: Option<Interactive>,
    #[serde(default)]
    pub image: Option<Media>,
    #[serde(default)]
    pub video: Option<Media>,
    #[serde(default)]
    pub document: Option<Media>,
    #[serde(default)]
    pub edit: Option<Edit>,
    #[serde(default, deserialize_with = "lenient")]
    pub errors: Vec<WaError>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TextBody {
    #[serde(default)]
    pub body: Option<String>,
}

/// A template quick-reply button press (`type: "button"`).
#[derive(Debug, Default, Deserialize)]
pub struct QuickReply {
    #[serde(default)]
    pub payload: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
}

/// A reply to an interactive message: reply button, list row, flow, call permission...
#[derive(Debug, Default, Deserialize)]
pub struct Interactive {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub button_reply: Option<Reply>,
    #[serde(default)]
    pub list_reply: Option<Reply>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Reply {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
}

/// An image, video or document: `id` is the media id `GET /{media-id}` turns into a download
/// URL; `filename` comes with documents only. (Meta says the size only on that `GET`.)
#[derive(Debug, Default, Deserialize)]
pub struct Media {
    #[serde(default)]
    pub caption: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub filename: Option<String>,
}

/// The user edited an earlier message; `message` is its new content.
#[derive(Debug, Default, Deserialize)]
pub struct Edit {
    #[serde(default)]
    pub original_message_id: Option<String>,
    #[serde(default)]
    pub message: Option<Box<Message>>,
}

/// Delivery progress of a message the business sent.
#[derive(Debug, Default, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub timestamp: Option<Value>,
    #[serde(default)]
    pub recipient_id: Option<String>,
    #[serde(default)]
    pub biz_opaque_callback_data: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub errors: Vec<WaError>,
    /// What Meta bills for the message; a `pricing` of an unexpected shape is left out alone.
    #[serde(default, deserialize_with = "lenient_one")]
    pub pricing: Option<WaPricing>,
}

/// A status's `pricing` (`billable`, `pricing_model`, `category`, `type`).
#[derive(Debug, Default, Deserialize)]
pub struct WaPricing {
    #[serde(default)]
    pub billable: Option<bool>,
    #[serde(default)]
    pub pricing_model: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// `value` of a `message_template_status_update` change.
#[derive(Debug, Default, Deserialize)]
pub struct TemplateStatusValue {
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub message_template_name: Option<String>,
    #[serde(default)]
    pub message_template_language: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub other_info: Option<TemplateInfo>,
    #[serde(default)]
    pub rejection_info: Option<TemplateInfo>,
}

/// Meta's explanation of a template decision (`title`/`description` or `reason`).
#[derive(Debug, Default, Deserialize)]
pub struct TemplateInfo {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `value` of a `phone_number_quality_update` change.
#[derive(Debug, Default, Deserialize)]
pub struct QualityValue {
    #[serde(default)]
    pub event: Option<String>,
    /// Newer payloads: the business portfolio's limit (`TIER_2K`, or a number).
    #[serde(default)]
    pub max_daily_conversations_per_business: Option<Value>,
    /// Older payloads (until 2026): the number's limit.
    #[serde(default)]
    pub current_limit: Option<Value>,
}

/// `value` of an `account_update` change (only the events herald acts on are read).
#[derive(Debug, Default, Deserialize)]
pub struct AccountValue {
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub restriction_info: Vec<RestrictionInfo>,
    #[serde(default)]
    pub violation_info: Option<ViolationInfo>,
    #[serde(default)]
    pub ban_info: Option<BanInfo>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RestrictionInfo {
    #[serde(default)]
    pub restriction_type: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub expiration: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ViolationInfo {
    #[serde(default)]
    pub violation_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct BanInfo {
    #[serde(default)]
    pub waba_ban_state: Option<String>,
}

/// An error as webhooks carry it (`code`, `title`, `message`, `error_data.details`).
#[derive(Debug, Default, Deserialize)]
pub struct WaError {
    #[serde(default)]
    pub code: Option<Value>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub error_data: Option<WaErrorData>,
}

#[derive(Debug, Default, Deserialize)]
pub struct WaErrorData {
    #[serde(default)]
    pub details: Option<String>,
}

/// A user stopping or resuming marketing messages from the business.
#[derive(Debug, Default, Deserialize)]
pub struct UserPreference {
    #[serde(default)]
    pub wa_id: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub timestamp: Option<Value>,
}

const OBJECT_WABA: &str = "whatsapp_business_account";
const FIELD_MESSAGES: &str = "messages";
const FIELD_USER_PREFERENCES: &str = "user_preferences";
const FIELD_TEMPLATE_STATUS: &str = "message_template_status_update";
const FIELD_QUALITY: &str = "phone_number_quality_update";
const FIELD_ACCOUNT: &str = "account_update";
const CATEGORY_MARKETING: &str = "marketing_messages";

/// What a webhook body holds for herald.
#[derive(Debug, Default)]
pub struct Decoded {
    /// herald's events, in the order Meta listed them.
    pub events: Vec<ChannelEvent>,
    /// Changes left out because they are for another business number.
    pub other_number: usize,
}

/// Parses a webhook POST body into herald events for the business number `our_number` (the
/// `phone_number_id`); changes for any other number are counted, not decoded. An empty
/// `our_number` (none configured) is nobody's, so every change that names a number is left out.
///
/// A body that is JSON but carries nothing herald uses (another field, an unknown shape) gives no
/// events, not an error: the caller still answers 200 so Meta stops redelivering it.
pub fn parse_webhook(body: &[u8], our_number: &str) -> Result<Decoded, WebhookError> {
    parse_webhook_for(body, our_number, None)
}

/// [`parse_webhook`] that also knows our Business account id (`our_account`): account and
/// template changes of an entry for another account are left out, like another number's.
pub fn parse_webhook_for(
    body: &[u8],
    our_number: &str,
    our_account: Option<&str>,
) -> Result<Decoded, WebhookError> {
    // Decoded straight from the bytes, never through a `serde_json::Value` tree: a status
    // flood is thousands of bodies a second, and building and copying trees was most of the
    // parsing time. (A struct would also accept a JSON array, hence the check first.)
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        serde_json::from_slice::<serde::de::IgnoredAny>(body)?;
        return Err(WebhookError::NotAnObject);
    }
    let body: WebhookBody = serde_json::from_slice(body)?;
    let mut decoded = Decoded::default();
    if let Some(object) = body.object.as_deref().filter(|o| *o != OBJECT_WABA) {
        tracing::debug!(object, "ignoring webhook for another object type");
        return Ok(decoded);
    }

    let events = &mut decoded.events;
    for (entry, change) in body
        .entry
        .iter()
        .flat_map(|e| e.changes.iter().map(move |c| (e, c)))
    {
        let field = change.field.as_str();
        let raw = change.value.as_deref().map_or("null", RawValue::get);
        if matches!(field, FIELD_TEMPLATE_STATUS | FIELD_QUALITY | FIELD_ACCOUNT) {
            let account = entry.id.as_ref().map(code_string);
            if let (Some(ours), Some(theirs)) = (our_account, account.as_deref()) {
                if ours != theirs {
                    tracing::info!(
                        field,
                        account = theirs,
                        "ignoring a change for another Business account"
                    );
                    decoded.other_number += 1;
                    continue;
                }
            }
            let at = timestamp_or_now(entry.time.as_ref());
            events.extend(account_event(field, raw, at).map(ChannelEvent::Account));
            continue;
        }
        if field != FIELD_MESSAGES && field != FIELD_USER_PREFERENCES {
            tracing::debug!(field, "ignoring webhook field");
            continue;
        }
        let value: ChangeValue = match serde_json::from_str::<Option<ChangeValue>>(raw) {
            Ok(value) => value.unwrap_or_default(),
            Err(error) => {
                tracing::warn!(field, %error, "skipping a webhook change of unexpected shape");
                continue;
            }
        };
        let number = value
            .metadata
            .as_ref()
            .and_then(|m| m.phone_number_id.as_deref());
        if let Some(number) = number.filter(|n| *n != our_number) {
            tracing::info!(
                field,
                phone_number_id = number,
                "ignoring a webhook change for another business number"
            );
            decoded.other_number += 1;
            continue;
        }
        for error in &value.errors {
            tracing::warn!(
                code = %error.code.as_ref().map(code_string).unwrap_or_default(),
                reason = %describe(error),
                "webhook notification carries an error"
            );
        }
        match field {
            FIELD_MESSAGES => {
                events.extend(
                    value
                        .messages
                        .iter()
                        .filter_map(|m| inbound(m, &value.contacts))
                        .map(ChannelEvent::Inbound),
                );
                for status in &value.statuses {
                    let Some(update) = status_update(status) else {
                        continue;
                    };
                    let billed = billing(status, &update);
                    events.push(ChannelEvent::Status(update));
                    events.extend(billed.map(ChannelEvent::Billed));
                }
            }
            _ => events.extend(value.user_preferences.iter().filter_map(preference)),
        }
    }
    Ok(decoded)
}

/// Meta's `GET` verification: echo `hub.challenge` only for `hub.mode=subscribe` with the
/// configured `hub.verify_token`. An empty configured token never matches, so an unconfigured
/// server cannot be subscribed by anyone.
pub fn verify_handshake(
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&str>,
    expected_token: &str,
) -> Option<String> {
    if mode != Some("subscribe") || expected_token.is_empty() {
        return None;
    }
    let token = token?;
    if !constant_time_eq(token.as_bytes(), expected_token.as_bytes()) {
        return None;
    }
    challenge.map(str::to_string)
}

/// Compares without stopping at the first difference, so timing does not reveal a prefix of the
/// verify token. (The length may leak; it is not the secret part.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn inbound(msg: &Message, contacts: &[Contact]) -> Option<Inbound> {
    let kind = msg.kind.as_deref().unwrap_or_default();
    if matches!(kind, "revoke" | "system") {
        tracing::debug!(kind, "ignoring a message that is not the user writing");
        return None;
    }
    let Some(from) = msg.from.as_deref().and_then(address) else {
        tracing::warn!(
            kind,
            "skipping an inbound message without a usable sender number"
        );
        return None;
    };
    Some(Inbound {
        name: sender_name(msg, contacts),
        text: message_text(msg),
        button: message_button(msg),
        at: timestamp_or_now(msg.timestamp.as_ref()),
        provider_id: msg.id.clone(),
        file: message_file(msg),
        from,
    })
}

/// The media a message carried, as a reference herald can fetch when an admin's command needs
/// it. An edit carries none: its media was the original message's.
fn message_file(msg: &Message) -> Option<FileRef> {
    let (kind, media) = match msg.kind.as_deref()? {
        "document" => (FileKind::Document, msg.document.as_ref()?),
        "image" => (FileKind::Image, msg.image.as_ref()?),
        "video" => (FileKind::Video, msg.video.as_ref()?),
        _ => return None,
    };
    Some(FileRef {
        id: media.id.as_deref().and_then(non_empty)?,
        kind,
        name: media.filename.as_deref().and_then(non_empty),
        mime: media.mime_type.as_deref().and_then(non_empty),
        size: None,
    })
}

/// The profile name from the contact that sent the message. Meta lists the sender as the change's
/// contact; matching by number (or BSUID) first keeps a batch with several senders right.
fn sender_name(msg: &Message, contacts: &[Contact]) -> Option<String> {
    let from = msg.from.as_deref().and_then(address);
    let matching = contacts.iter().find(|c| {
        let same_number = from.is_some() && c.wa_id.as_deref().and_then(address) == from;
        let same_user = msg.from_user_id.is_some() && c.user_id == msg.from_user_id;
        same_number || same_user
    });
    let contact = match (matching, contacts) {
        (Some(c), _) => c,
        (None, [only]) => only,
        _ => return None,
    };
    contact
        .profile
        .as_ref()
        .and_then(|p| p.name.as_deref())
        .and_then(non_empty)
}

fn message_text(msg: &Message) -> Option<String> {
    match msg.kind.as_deref()? {
        "text" => msg.text.as_ref()?.body.as_deref().and_then(non_empty),
        "button" => msg.button.as_ref()?.text.as_deref().and_then(non_empty),
        "interactive" => interactive_reply(msg)?.title.as_deref().and_then(non_empty),
        "image" => caption(msg.image.as_ref()),
        "video" => caption(msg.video.as_ref()),
        "document" => caption(msg.document.as_ref()),
        // The new content counts: a user who edits a message into "STOP" has asked to stop. The
        // nested message is read one level deep only (Meta never nests edits).
        "edit" => {
            let edited = msg.edit.as_ref()?.message.as_deref()?;
            (edited.kind.as_deref() != Some("edit"))
                .then(|| message_text(edited))
                .flatten()
        }
        _ => None,
    }
}

fn message_button(msg: &Message) -> Option<String> {
    match msg.kind.as_deref()? {
        "button" => msg.button.as_ref()?.payload.as_deref().and_then(non_empty),
        "interactive" => interactive_reply(msg)?.id.as_deref().and_then(non_empty),
        _ => None,
    }
}

/// The chosen reply button or list row; other interactive replies (flows, call permission) have
/// neither and map to no text and no button.
fn interactive_reply(msg: &Message) -> Option<&Reply> {
    let interactive = msg.interactive.as_ref()?;
    match interactive.kind.as_deref() {
        Some("button_reply") => interactive.button_reply.as_ref(),
        Some("list_reply") => interactive.list_reply.as_ref(),
        _ => interactive
            .button_reply
            .as_ref()
            .or(interactive.list_reply.as_ref()),
    }
}

fn caption(media: Option<&Media>) -> Option<String> {
    media?.caption.as_deref().and_then(non_empty)
}

fn status_update(status: &Status) -> Option<StatusUpdate> {
    let Some(provider_id) = status.id.clone().filter(|id| !id.is_empty()) else {
        tracing::warn!("skipping a status without a message id");
        return None;
    };
    let delivery = match status.status.as_deref() {
        Some("sent") => DeliveryStatus::Sent,
        Some("delivered") => DeliveryStatus::Delivered,
        // `played` is a voice/video message played: the strongest form of read.
        Some("read") | Some("played") => DeliveryStatus::Read,
        Some("failed") => match status.errors.first() {
            Some(error) => DeliveryStatus::Failed {
                code: error
                    .code
                    .as_ref()
                    .map(code_string)
                    .unwrap_or_else(|| "unknown".to_string()),
                title: describe(error),
            },
            None => DeliveryStatus::Failed {
                code: "unknown".to_string(),
                title: "failed without an error from WhatsApp".to_string(),
            },
        },
        other => {
            tracing::debug!(status = ?other, "ignoring an unknown message status");
            return None;
        }
    };
    Some(StatusUpdate {
        provider_id,
        callback: status
            .biz_opaque_callback_data
            .clone()
            .filter(|c| !c.is_empty()),
        status: delivery,
        at: timestamp_or_now(status.timestamp.as_ref()),
        recipient: status.recipient_id.as_deref().and_then(address),
    })
}

/// The `pricing` of a status, for the message the status is about.
fn billing(status: &Status, update: &StatusUpdate) -> Option<Billing> {
    let pricing = status.pricing.as_ref()?;
    Some(Billing {
        provider_id: update.provider_id.clone(),
        callback: update.callback.clone(),
        pricing: Pricing {
            billable: pricing.billable,
            model: pricing.pricing_model.clone(),
            category: pricing.category.clone(),
            kind: pricing.kind.clone(),
        },
    })
}

/// An account or template change; `None` for an event herald does not act on, or a value of
/// an unexpected shape (logged).
fn account_event(field: &str, raw: &str, now: DateTime<Utc>) -> Option<AccountEvent> {
    fn read<T: DeserializeOwned + Default>(field: &str, raw: &str) -> Option<T> {
        match serde_json::from_str::<Option<T>>(raw) {
            Ok(value) => Some(value.unwrap_or_default()),
            Err(error) => {
                tracing::warn!(field, %error, "skipping a webhook change of unexpected shape");
                None
            }
        }
    }
    match field {
        FIELD_TEMPLATE_STATUS => {
            let v: TemplateStatusValue = read(field, raw)?;
            let (Some(name), Some(lang), Some(event)) = (
                v.message_template_name.as_deref().and_then(non_empty),
                v.message_template_language.as_deref().and_then(non_empty),
                v.event.as_deref().and_then(non_empty),
            ) else {
                tracing::warn!("skipping a template status without name, language or event");
                return None;
            };
            if event.eq_ignore_ascii_case("FLAGGED") {
                // A quality warning: the template is still approved and still sends.
                tracing::info!(template = %name, "Meta flagged a template's quality");
                return None;
            }
            let explained = [v.rejection_info.as_ref(), v.other_info.as_ref()]
                .into_iter()
                .flatten()
                .find_map(|i| {
                    i.reason
                        .as_deref()
                        .or(i.description.as_deref())
                        .or(i.title.as_deref())
                        .and_then(non_empty)
                });
            let code = v
                .reason
                .as_deref()
                .and_then(non_empty)
                .filter(|r| !r.eq_ignore_ascii_case("NONE"));
            let reason = match (code, explained) {
                (Some(code), Some(text)) => Some(format!("{code}: {text}")),
                (code, text) => code.or(text),
            };
            Some(AccountEvent::TemplateStatus {
                name,
                lang,
                status: TemplateStatus::parse(&event),
                reason,
            })
        }
        FIELD_QUALITY => {
            let v: QualityValue = read(field, raw)?;
            let limit = [
                v.max_daily_conversations_per_business.as_ref(),
                v.current_limit.as_ref(),
            ]
            .into_iter()
            .flatten()
            .find_map(|l| MessagingLimit::parse(&code_string(l)));
            let event = v.event.as_deref().and_then(non_empty);
            if event.is_none() && limit.is_none() {
                return None;
            }
            Some(AccountEvent::Quality {
                event: event
                    .unwrap_or_else(|| "UPDATE".into())
                    .to_ascii_uppercase(),
                limit,
                at: now,
            })
        }
        _ => {
            let v: AccountValue = read(field, raw)?;
            let event = v.event.as_deref().unwrap_or_default().to_ascii_uppercase();
            match event.as_str() {
                "ACCOUNT_RESTRICTION" => Some(AccountEvent::Restricted {
                    restrictions: v
                        .restriction_info
                        .iter()
                        .filter_map(|r| {
                            Some(Restriction {
                                kind: r.restriction_type.as_deref().and_then(non_empty)?,
                                expires: r.expiration.as_ref().and_then(unix_time),
                            })
                        })
                        .collect(),
                    at: now,
                }),
                "ACCOUNT_VIOLATION" => Some(AccountEvent::Stopped {
                    event,
                    detail: v
                        .violation_info
                        .and_then(|i| i.violation_type)
                        .and_then(|t| non_empty(&t)),
                    at: now,
                }),
                "DISABLED_UPDATE" => {
                    let state = v
                        .ban_info
                        .and_then(|b| b.waba_ban_state)
                        .unwrap_or_default()
                        .to_ascii_uppercase();
                    if state == "REINSTATE" {
                        tracing::info!("Meta reinstated the Business account");
                        return None;
                    }
                    Some(AccountEvent::Stopped {
                        event,
                        detail: non_empty(&state),
                        at: now,
                    })
                }
                other => {
                    tracing::debug!(event = other, "ignoring an account_update event");
                    None
                }
            }
        }
    }
}

/// Unix seconds as a number or a string.
fn unix_time(value: &Value) -> Option<DateTime<Utc>> {
    let secs = match value {
        Value::String(s) => s.trim().parse::<i64>().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }?;
    DateTime::from_timestamp(secs, 0)
}

fn preference(pref: &UserPreference) -> Option<ChannelEvent> {
    // The category is Meta's only one today; a missing one is read as it, a different one is not.
    if pref
        .category
        .as_deref()
        .is_some_and(|c| c != CATEGORY_MARKETING)
    {
        tracing::debug!(category = ?pref.category, "ignoring a user preference of another category");
        return None;
    }
    let stop = match pref.value.as_deref() {
        Some("stop") => true,
        Some("resume") | Some("signup") => false,
        other => {
            tracing::debug!(value = ?other, "ignoring an unknown marketing preference");
            return None;
        }
    };
    let Some(from) = pref.wa_id.as_deref().and_then(address) else {
        tracing::warn!("skipping a marketing preference without a usable number");
        return None;
    };
    Some(ChannelEvent::MarketingPreference {
        from,
        stop,
        at: timestamp_or_now(pref.timestamp.as_ref()),
    })
}

/// `title` (or `message`) plus `details` when it says more.
fn describe(error: &WaError) -> String {
    let head = error
        .title
        .as_deref()
        .or(error.message.as_deref())
        .and_then(non_empty);
    let details = error
        .error_data
        .as_ref()
        .and_then(|d| d.details.as_deref())
        .and_then(non_empty);
    match (head, details) {
        (Some(head), Some(details)) if head != details => format!("{head}: {details}"),
        (Some(head), _) => head,
        (None, Some(details)) => details,
        (None, None) => String::new(),
    }
}

fn code_string(code: &Value) -> String {
    match code {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Unix seconds as a string or a number. A missing or broken timestamp falls back to the time of
/// receipt: close enough for the service window, and better than dropping the message.
fn timestamp_or_now(value: Option<&Value>) -> DateTime<Utc> {
    let secs = match value {
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    match secs.and_then(|s| DateTime::from_timestamp(s, 0)) {
        Some(at) => at,
        None => {
            tracing::debug!(timestamp = ?value, "webhook item without a usable timestamp");
            Utc::now()
        }
    }
}

fn non_empty(s: &str) -> Option<String> {
    let trimmed = s.trim();
    (!trimmed.is_empty()).then(|| s.to_string())
}

/// Reads a list item by item, dropping (and logging) the items that do not fit `T` and reading a
/// non-list as empty, so one odd item never costs the rest of the body.
fn lenient<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    // Each item is kept as raw text and decoded on its own, so one odd item is skipped alone.
    let raw = <Box<RawValue>>::deserialize(deserializer)?;
    let items: Vec<Box<RawValue>> = match raw.get().as_bytes().first() {
        Some(b'[') => serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?,
        Some(b'n') => return Ok(Vec::new()),
        first => {
            tracing::warn!(found = %kind_of(first), "expected a list in the webhook body");
            return Ok(Vec::new());
        }
    };
    Ok(items
        .iter()
        .filter_map(|item| match serde_json::from_str(item.get()) {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                tracing::warn!(%error, item = std::any::type_name::<T>(), "skipping a webhook item");
                None
            }
        })
        .collect())
}

/// Reads one optional object, leaving it out (logged) when it does not fit `T` instead of
/// failing the whole status.
fn lenient_one<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let raw = <Box<RawValue>>::deserialize(deserializer)?;
    match serde_json::from_str::<Option<T>>(raw.get()) {
        Ok(value) => Ok(value),
        Err(error) => {
            tracing::warn!(%error, item = std::any::type_name::<T>(), "skipping a webhook object");
            Ok(None)
        }
    }
}

/// What kind of JSON value starts with this byte (raw values carry no leading whitespace).
fn kind_of(first: Option<&u8>) -> &'static str {
    match first {
        Some(b'n') => "null",
        Some(b't' | b'f') => "bool",
        Some(b'"') => "string",
        Some(b'[') => "array",
        Some(b'{') => "object",
        _ => "number",
    }
}

#[cfg(test)]
mod tests;
