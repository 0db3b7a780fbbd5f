//! Post-campaign triggers (`/on`, SPEC §3): what can happen to a recipient's message, and what
//! herald then does to the contact. Parsed once, when the admin types the rule.

use super::label::{AttrKey, Label};

/// Something that happens to one recipient of a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientEvent {
    Delivered,
    Read,
    Replied,
    /// A quick-reply or inline button was pressed; the payload or title as sent.
    Clicked(String),
    Failed,
}

impl RecipientEvent {
    /// The stored form: `delivered`, `read`, `replied`, `clicked:<button>`, `failed`.
    pub fn key(&self) -> String {
        match self {
            RecipientEvent::Delivered => "delivered".into(),
            RecipientEvent::Read => "read".into(),
            RecipientEvent::Replied => "replied".into(),
            RecipientEvent::Clicked(b) => format!("clicked:{}", b.to_lowercase()),
            RecipientEvent::Failed => "failed".into(),
        }
    }

    pub fn from_key(key: &str) -> Option<RecipientEvent> {
        let lower = key.to_lowercase();
        Some(match lower.as_str() {
            "delivered" => RecipientEvent::Delivered,
            "read" => RecipientEvent::Read,
            "replied" => RecipientEvent::Replied,
            "failed" => RecipientEvent::Failed,
            _ => {
                let button = lower.strip_prefix("clicked:")?.trim();
                if button.is_empty() {
                    return None;
                }
                RecipientEvent::Clicked(button.to_string())
            }
        })
    }
}

/// What a post-campaign trigger does to the contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostAction {
    AddLabel(Label),
    RemoveLabel(Label),
    SetAttr {
        key: AttrKey,
        value: String,
    },
    /// Do-not-disturb: opt the contact out.
    OptOut,
}

impl PostAction {
    /// The stored and shown form: `label+=x`, `label-=x`, `attr.KEY=value`, `optout`.
    pub fn key(&self) -> String {
        match self {
            PostAction::AddLabel(l) => format!("label+={l}"),
            PostAction::RemoveLabel(l) => format!("label-={l}"),
            PostAction::SetAttr { key, value } => format!("attr.{key}={value}"),
            PostAction::OptOut => "optout".into(),
        }
    }

    pub fn from_key(s: &str) -> Option<PostAction> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("optout") {
            return Some(PostAction::OptOut);
        }
        if let Some(l) = s.strip_prefix("label+=") {
            return Label::parse(l).ok().map(PostAction::AddLabel);
        }
        if let Some(l) = s.strip_prefix("label-=") {
            return Label::parse(l).ok().map(PostAction::RemoveLabel);
        }
        let (key, value) = s.strip_prefix("attr.")?.split_once('=')?;
        let key = AttrKey::parse(key).ok()?;
        if value.is_empty() {
            return None;
        }
        Some(PostAction::SetAttr {
            key,
            value: value.to_string(),
        })
    }
}
