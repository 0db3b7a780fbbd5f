//! Admin commands: text -> [`Command`] (pure, in `parse`), then [`Command`] -> reply (in `handlers`).
//! The grammar is documented in the top-level `commands/` folder, from which `/help` is built.

pub mod handlers;
pub mod help;
pub mod parse;

pub use parse::{parse, ParseError};

/// A label expression or explicit addresses, kept as typed; `domain::audience` compiles it.
pub type AudienceSpec = String;

/// One parsed admin command. Everything is validated for shape here (numbers are numbers, times
/// parse, keys are known); whether ids exist is the handler's business.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help {
        topic: Option<String>,
    },
    ContactAdd {
        address: String,
        name: Option<String>,
        labels: Vec<String>,
        lang: Option<String>,
        tz: Option<String>,
        optin: bool,
        /// Extra `attr.KEY=value` pairs.
        attrs: Vec<(String, String)>,
    },
    ContactShow {
        address: String,
    },
    /// `/contact import`: the CSV rides along as an attachment (or follows on the next lines in the
    /// console); `csv` is `None` when nothing was attached.
    ContactImport {
        csv: Option<String>,
    },
    LabelAdd {
        label: String,
        addresses: Vec<String>,
    },
    LabelRemove {
        label: String,
        addresses: Vec<String>,
    },
    OptIn {
        address: String,
    },
    OptOut {
        address: String,
    },
    TemplateAdd {
        name: String,
        lang: String,
        category: TemplateCategory,
        body: String,
    },
    TemplateList,
    CampaignNew {
        title: String,
    },
    CampaignAudience {
        id: i64,
        audience: AudienceSpec,
    },
    CampaignText {
        id: i64,
        text: String,
    },
    CampaignVariant {
        id: i64,
        text: String,
    },
    CampaignTemplate {
        id: i64,
        name: String,
        lang: String,
        /// Literal text, `{{name}}` or `{{attr.KEY}}`, in `{{1}}..{{n}}` order.
        params: Vec<String>,
    },
    CampaignPace {
        id: i64,
        /// Messages per second; `Some(0.0)` turns campaign pacing off (channel ceilings still hold).
        rate: Option<f64>,
        /// Random delay between messages, seconds.
        delay: Option<(f64, f64)>,
        batch: Option<u32>,
        /// Pause between batches, seconds.
        pause: Option<f64>,
    },
    CampaignSchedule {
        id: i64,
        /// Local time as typed, `YYYY-MM-DD HH:MM`.
        at: chrono::NaiveDateTime,
        /// IANA zone if given; the admin's `TZ` otherwise.
        tz: Option<chrono_tz::Tz>,
    },
    /// Turns a campaign into a recurring one: each occurrence is its own run.
    CampaignRepeat {
        id: i64,
        repeat: crate::domain::schedule::Repeat,
    },
    CampaignPreview {
        id: i64,
    },
    CampaignTest {
        id: i64,
    },
    CampaignSend {
        id: i64,
    },
    CampaignPause {
        id: i64,
    },
    CampaignResume {
        id: i64,
    },
    CampaignCancel {
        id: i64,
    },
    CampaignList {
        status: Option<String>,
    },
    CampaignShow {
        id: i64,
    },
    CampaignReport {
        id: i64,
        format: ReportFormat,
    },
    TriggerAdd {
        pattern: TriggerPattern,
        target: TriggerTarget,
    },
    DripNew {
        title: String,
    },
    /// Appends a step: sent `delay_ms` after the previous step (after enrolment for the first).
    DripStep {
        id: i64,
        delay_ms: i64,
        content: StepContent,
    },
    DripEnroll {
        id: i64,
        audience: AudienceSpec,
    },
    DripStopOnReply {
        id: i64,
        on: bool,
    },
    DripShow {
        id: i64,
    },
    /// `/on <campaign> <event> <action>`: what to do to a recipient's contact when it happens.
    On {
        campaign_id: i64,
        event: RecipientEvent,
        action: PostAction,
    },
    TriggerList,
    TriggerRemove {
        id: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateCategory {
    Marketing,
    Utility,
    Authentication,
}

impl TemplateCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateCategory::Marketing => "marketing",
            TemplateCategory::Utility => "utility",
            TemplateCategory::Authentication => "authentication",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "marketing" => Some(TemplateCategory::Marketing),
            "utility" => Some(TemplateCategory::Utility),
            "authentication" => Some(TemplateCategory::Authentication),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Csv,
    Chart,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TriggerPattern {
    /// A whole word anywhere in the text, case-insensitive.
    Keyword(String),
    /// The source between the slashes of `/regex/` (already checked to compile).
    Regex(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerTarget {
    Campaign(i64),
    Drip(i64),
}

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
    AddLabel(String),
    RemoveLabel(String),
    SetAttr {
        key: String,
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
            return crate::domain::audience::normalize_label(l)
                .ok()
                .map(PostAction::AddLabel);
        }
        if let Some(l) = s.strip_prefix("label-=") {
            return crate::domain::audience::normalize_label(l)
                .ok()
                .map(PostAction::RemoveLabel);
        }
        let (key, value) = s.strip_prefix("attr.")?.split_once('=')?;
        let key = crate::domain::audience::normalize_attr_key(key)?;
        if value.is_empty() {
            return None;
        }
        Some(PostAction::SetAttr {
            key,
            value: value.to_string(),
        })
    }
}

/// What one drip step sends.
#[derive(Debug, Clone, PartialEq)]
pub enum StepContent {
    Text(String),
    Template {
        name: String,
        lang: String,
        params: Vec<String>,
    },
}
