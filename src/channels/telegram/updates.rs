//! Telegram updates in herald's terms: a message becomes an [`Inbound`] from `tg:<chat_id>`, an
//! inline-button press becomes an [`Inbound`] carrying the button's data (after the callback
//! query is answered). Pure functions, so the mapping is tested without a network.

use chrono::{DateTime, Utc};
use teloxide::types::{CallbackQuery, Message, MessageKind, Update, UpdateKind};

use crate::channels::{FileKind, FileRef, Inbound};

/// What to do with one update.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Hand it to the engine.
    Inbound(Inbound),
    /// Answer the callback query (Telegram shows a spinner until then), then hand the press to
    /// the engine.
    Callback { query_id: String, inbound: Inbound },
    /// Nothing for herald (service messages, edits, commands for another bot...).
    Ignore(&'static str),
}

/// The address of a chat.
pub fn address(chat_id: i64) -> String {
    format!("tg:{chat_id}")
}

/// The chat id of an address (`tg:<chat_id>`).
pub fn chat_id(address: &str) -> Option<i64> {
    address.strip_prefix("tg:")?.trim().parse().ok()
}

/// Turns an update into what herald does with it. `bot_username` (without `@`) tells which
/// `/command@bot` mentions are ours; `now` timestamps button presses, which carry no date.
pub fn action(update: &Update, bot_username: Option<&str>, now: DateTime<Utc>) -> Action {
    match &update.kind {
        UpdateKind::Message(msg) => message(msg, bot_username),
        UpdateKind::CallbackQuery(q) => callback(q, now),
        UpdateKind::EditedMessage(_) => Action::Ignore("edited message"),
        _ => Action::Ignore("update kind herald does not use"),
    }
}

fn message(msg: &Message, bot_username: Option<&str>) -> Action {
    if !matches!(msg.kind, MessageKind::Common(_)) {
        // Joins, leaves, pins, title changes: nothing a person wrote to us.
        return Action::Ignore("service message");
    }
    if msg.from.as_ref().is_some_and(|u| u.is_bot) {
        return Action::Ignore("message from a bot");
    }
    let chat = msg.chat.id.0;
    let text = match msg.text().or_else(|| msg.caption()) {
        Some(t) => match normalize_command(t, bot_username) {
            Some(t) => Some(t),
            None => return Action::Ignore("command for another bot"),
        },
        // A sticker or a photo without caption still opens the window and counts as a reply.
        None => None,
    };
    let name = match &msg.from {
        Some(user) => Some(user.full_name()),
        None => msg.chat.title().map(str::to_string),
    }
    .filter(|n| !n.trim().is_empty());
    Action::Inbound(Inbound {
        from: address(chat),
        name,
        text,
        button: None,
        at: msg.date,
        provider_id: Some(format!("tg:{chat}:{}", msg.id.0)),
        file: message_file(msg),
    })
}

/// The document, photo or video a message carried, by its `file_id` (`getFile` turns it into a
/// download path). A photo comes in several sizes: the largest is the one sent.
fn message_file(msg: &Message) -> Option<FileRef> {
    // teloxide reads a missing `file_size` as u32::MAX: that is "not said", not a size.
    let size = |size: u32| (size != u32::MAX).then_some(u64::from(size));
    if let Some(doc) = msg.document() {
        return Some(FileRef {
            id: doc.file.id.0.clone(),
            kind: FileKind::Document,
            name: doc.file_name.clone().filter(|n| !n.trim().is_empty()),
            mime: doc.mime_type.as_ref().map(|m| m.essence_str().to_string()),
            size: size(doc.file.size),
        });
    }
    if let Some(photo) = msg.photo().and_then(|sizes| {
        sizes
            .iter()
            .max_by_key(|p| u64::from(p.width) * u64::from(p.height))
    }) {
        return Some(FileRef {
            id: photo.file.id.0.clone(),
            kind: FileKind::Image,
            name: None,
            mime: Some("image/jpeg".into()),
            size: size(photo.file.size),
        });
    }
    let video = msg.video()?;
    Some(FileRef {
        id: video.file.id.0.clone(),
        kind: FileKind::Video,
        name: video.file_name.clone().filter(|n| !n.trim().is_empty()),
        mime: video
            .mime_type
            .as_ref()
            .map(|m| m.essence_str().to_string()),
        size: size(video.file.size),
    })
}

fn callback(q: &CallbackQuery, now: DateTime<Utc>) -> Action {
    let Some(data) = q.data.clone().filter(|d| !d.is_empty()) else {
        return Action::Ignore("callback query without data");
    };
    // The press belongs to the chat the button's message is in; inline-mode buttons have no
    // chat, and then the pressing user's private chat is the closest address.
    let chat = q
        .message
        .as_ref()
        .map(|m| m.chat().id.0)
        .unwrap_or(q.from.id.0 as i64);
    let name = Some(q.from.full_name()).filter(|n| !n.trim().is_empty());
    Action::Callback {
        query_id: q.id.0.clone(),
        inbound: Inbound {
            from: address(chat),
            name,
            text: None,
            button: Some(data),
            at: now,
            provider_id: Some(format!("tg:cb:{}", q.id.0)),
            file: None,
        },
    }
}

/// Makes a Telegram command read like the engine's: `/stop@herald_bot` is `/stop`, and
/// `/start <deep-link payload>` is `/start` (the payload is not used, and the engine matches
/// `/start` and `/stop` exactly). `None` when the command names another bot (in a group,
/// `/help@other_bot` is not for us).
pub fn normalize_command(text: &str, bot_username: Option<&str>) -> Option<String> {
    let trimmed = text.trim();
    if !trimmed.starts_with('/') {
        return Some(text.to_string());
    }
    let (head, rest) = match trimmed.split_once(char::is_whitespace) {
        Some((h, r)) => (h, r.trim_start()),
        None => (trimmed, ""),
    };
    let command = match head.split_once('@') {
        Some((command, mention)) => {
            if let Some(me) = bot_username {
                if !mention.eq_ignore_ascii_case(me.trim_start_matches('@')) {
                    return None;
                }
            }
            command
        }
        None => head,
    };
    if command.eq_ignore_ascii_case("/start") || command.eq_ignore_ascii_case("/stop") {
        return Some(command.to_ascii_lowercase());
    }
    Some(if rest.is_empty() {
        command.to_string()
    } else {
        format!("{command} {rest}")
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
    }

    /// From text, as updates arrive (teloxide's `Update` does not deserialize from a `Value`).
    fn update(v: serde_json::Value) -> Update {
        serde_json::from_str(&v.to_string()).unwrap()
    }

    fn text_update(chat: i64, text: &str) -> Update {
        update(json!({
            "update_id": 10,
            "message": {
                "message_id": 5,
                "from": {"id": chat, "is_bot": false, "first_name": "Ann", "last_name": "Lee"},
                "chat": {"id": chat, "type": "private", "first_name": "Ann", "last_name": "Lee"},
                "date": 1_800_000_000,
                "text": text
            }
        }))
    }

    #[test]
    fn a_private_message_is_inbound_from_the_chat() {
        let got = action(&text_update(4242, "hi there"), Some("herald_bot"), now());
        let Action::Inbound(i) = got else {
            panic!("not inbound: {got:?}")
        };
        assert_eq!(i.from, "tg:4242");
        assert_eq!(i.name.as_deref(), Some("Ann Lee"));
        assert_eq!(i.text.as_deref(), Some("hi there"));
        assert_eq!(i.button, None);
        assert_eq!(i.at, DateTime::from_timestamp(1_800_000_000, 0).unwrap());
        assert_eq!(i.provider_id.as_deref(), Some("tg:4242:5"));
    }

    #[test]
    fn a_document_or_photo_carries_its_file_and_caption() {
        let u = update(json!({
            "update_id": 13,
            "message": {
                "message_id": 7,
                "from": {"id": 42, "is_bot": false, "first_name": "Ada"},
                "chat": {"id": 42, "type": "private", "first_name": "Ada"},
                "date": 1_800_000_000,
                "document": {
                    "file_id": "BQACAgQAAxkBAAIB", "file_unique_id": "AgADBQAC",
                    "file_name": "contacts.csv", "mime_type": "text/csv", "file_size": 1234
                },
                "caption": "/contact import"
            }
        }));
        let Action::Inbound(i) = action(&u, Some("herald_bot"), now()) else {
            panic!("not inbound")
        };
        assert_eq!(i.text.as_deref(), Some("/contact import"));
        assert_eq!(
            i.file,
            Some(FileRef {
                id: "BQACAgQAAxkBAAIB".into(),
                kind: FileKind::Document,
                name: Some("contacts.csv".into()),
                mime: Some("text/csv".into()),
                size: Some(1234),
            })
        );
        let photo = update(json!({
            "update_id": 14,
            "message": {
                "message_id": 8,
                "from": {"id": 42, "is_bot": false, "first_name": "Ada"},
                "chat": {"id": 42, "type": "private", "first_name": "Ada"},
                "date": 1_800_000_000,
                "photo": [
                    {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 60, "file_size": 900},
                    {"file_id": "large", "file_unique_id": "l", "width": 1280, "height": 853}
                ]
            }
        }));
        let Action::Inbound(i) = action(&photo, None, now()) else {
            panic!("not inbound")
        };
        assert_eq!(i.text, None);
        let file = i.file.unwrap();
        assert_eq!(
            (file.id.as_str(), file.kind, file.size),
            ("large", FileKind::Image, None)
        );
        assert_eq!(action_file(&text_update(1, "hi")), None);
    }

    fn action_file(u: &Update) -> Option<FileRef> {
        match action(u, None, now()) {
            Action::Inbound(i) => i.file,
            _ => None,
        }
    }

    #[test]
    fn a_button_press_carries_its_data_and_the_message_chat() {
        let u = update(json!({
            "update_id": 11,
            "callback_query": {
                "id": "cbq-1",
                "from": {"id": 4242, "is_bot": false, "first_name": "Ann"},
                "chat_instance": "ci",
                "data": "Yes",
                "message": {
                    "message_id": 9,
                    "from": {"id": 777, "is_bot": true, "first_name": "Herald", "username": "herald_bot"},
                    "chat": {"id": 4242, "type": "private", "first_name": "Ann"},
                    "date": 1_800_000_000,
                    "text": "Want it?"
                }
            }
        }));
        let got = action(&u, None, now());
        let Action::Callback { query_id, inbound } = got else {
            panic!("not a callback: {got:?}")
        };
        assert_eq!(query_id, "cbq-1");
        assert_eq!(inbound.from, "tg:4242");
        assert_eq!(inbound.button.as_deref(), Some("Yes"));
        assert_eq!(inbound.at, now());
    }

    #[test]
    fn commands_lose_their_mention_and_deep_link_payload() {
        let me = Some("herald_bot");
        assert_eq!(
            normalize_command("/start abc123", me).as_deref(),
            Some("/start")
        );
        assert_eq!(
            normalize_command("/STOP@Herald_Bot", me).as_deref(),
            Some("/stop")
        );
        assert_eq!(
            normalize_command("/campaign@herald_bot report 3", me).as_deref(),
            Some("/campaign report 3")
        );
        assert_eq!(normalize_command("/help@other_bot", me), None);
        assert_eq!(normalize_command("STOP", me).as_deref(), Some("STOP"));
    }

    #[test]
    fn service_messages_are_ignored() {
        let u = update(json!({
            "update_id": 12,
            "message": {
                "message_id": 6,
                "from": {"id": 1, "is_bot": false, "first_name": "Ann"},
                "chat": {"id": -100, "type": "group", "title": "Fans"},
                "date": 1_800_000_000,
                "new_chat_members": [{"id": 2, "is_bot": false, "first_name": "Bob"}]
            }
        }));
        assert!(matches!(action(&u, None, now()), Action::Ignore(_)));
    }

    #[test]
    fn addresses_round_trip() {
        assert_eq!(chat_id(&address(-1001234)), Some(-1001234));
        assert_eq!(chat_id("wa:15550001"), None);
        assert_eq!(chat_id("tg:abc"), None);
    }
}
