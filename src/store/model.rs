//! Rows as the engine sees them.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::domain::consent::{ConsentChange, ConsentSource};
use crate::domain::interactive::Choices;
use crate::domain::media::CampaignMedia;
use crate::domain::template::{TemplateSpec, TemplateStatus};
use crate::domain::{Address, AttrKey, Label, Lang, RecipientStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    Unknown,
    OptedIn,
    OptedOut,
}

impl Consent {
    pub fn as_str(self) -> &'static str {
        match self {
            Consent::Unknown => "unknown",
            Consent::OptedIn => "opted_in",
            Consent::OptedOut => "opted_out",
        }
    }

    pub fn from_db(s: &str) -> Consent {
        match s {
            "opted_in" => Consent::OptedIn,
            "opted_out" => Consent::OptedOut,
            _ => Consent::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: i64,
    pub address: Address,
    pub name: Option<String>,
    pub lang: Option<Lang>,
    pub tz: Option<String>,
    pub consent: Consent,
    pub consent_at: Option<DateTime<Utc>>,
    pub last_inbound_at: Option<DateTime<Utc>>,
    pub marketing_stopped: bool,
    pub unreachable: Option<String>,
    pub labels: Vec<Label>,
    pub attrs: BTreeMap<AttrKey, String>,
}

/// What `/contact add` and CSV import write onto a contact; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactUpdate {
    pub name: Option<String>,
    pub lang: Option<Lang>,
    pub tz: Option<String>,
    pub labels: Vec<Label>,
    pub attrs: Vec<(AttrKey, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConsentEvent {
    pub kind: ConsentChange,
    pub source: ConsentSource,
    pub keyword: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CampaignStatus {
    Draft,
    Scheduled,
    Sending,
    Completed,
    Paused,
    Cancelled,
    Failed,
}

impl CampaignStatus {
    pub const ALL: [CampaignStatus; 7] = [
        CampaignStatus::Draft,
        CampaignStatus::Scheduled,
        CampaignStatus::Sending,
        CampaignStatus::Completed,
        CampaignStatus::Paused,
        CampaignStatus::Cancelled,
        CampaignStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Scheduled => "scheduled",
            CampaignStatus::Sending => "sending",
            CampaignStatus::Completed => "completed",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Cancelled => "cancelled",
            CampaignStatus::Failed => "failed",
        }
    }

    pub fn from_db(s: &str) -> Option<CampaignStatus> {
        CampaignStatus::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Ended campaigns take no more changes.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CampaignStatus::Completed | CampaignStatus::Cancelled | CampaignStatus::Failed
        )
    }
}

impl fmt::Display for CampaignStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignKind {
    OneTime,
    Triggered,
    /// Keeps a repeat rule and spawns one run (a one-time child campaign) per occurrence.
    Recurring,
    /// A drip sequence: its steps are child campaigns of kind `DripStep`.
    Drip,
    /// One step of a drip; contacts are queued on it when they reach it.
    DripStep,
}

impl CampaignKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignKind::OneTime => "one_time",
            CampaignKind::Triggered => "triggered",
            CampaignKind::Recurring => "recurring",
            CampaignKind::Drip => "drip",
            CampaignKind::DripStep => "drip_step",
        }
    }

    pub fn from_db(s: &str) -> CampaignKind {
        match s {
            "triggered" => CampaignKind::Triggered,
            "recurring" => CampaignKind::Recurring,
            "drip" => CampaignKind::Drip,
            "drip_step" => CampaignKind::DripStep,
            _ => CampaignKind::OneTime,
        }
    }
}

/// How fast a campaign sends. `rate == 0` means no campaign pacing (channel ceilings still hold).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    pub rate: f64,
    pub delay_min_ms: i64,
    pub delay_max_ms: i64,
    pub batch_size: i64,
    pub batch_pause_ms: i64,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            rate: 20.0,
            delay_min_ms: 0,
            delay_max_ms: 0,
            batch_size: 0,
            batch_pause_ms: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TemplateRef {
    pub name: String,
    pub lang: String,
    pub params: Vec<String>,
    /// A synced NAMED template's parameter names, one per `params` value; empty otherwise.
    pub names: Vec<String>,
    /// A synced template's TEXT header parameter and URL button suffix.
    pub header: Option<String>,
    pub url: Option<String>,
}

impl TemplateRef {
    /// A declared template's mapping: body parameters only.
    pub fn positional(name: String, lang: String, params: Vec<String>) -> TemplateRef {
        TemplateRef {
            name,
            lang,
            params,
            names: Vec::new(),
            header: None,
            url: None,
        }
    }
}

/// The message of a drip step, written with the step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepMessage<'a> {
    Text(&'a str),
    Template(&'a TemplateRef),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    pub id: i64,
    pub title: String,
    pub kind: CampaignKind,
    pub status: CampaignStatus,
    pub owner: Option<String>,
    pub audience: Option<String>,
    pub text: Option<String>,
    pub variants: Vec<String>,
    pub template: Option<TemplateRef>,
    pub pace: Pace,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub status_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// A recurring campaign's rule (`every 1d at 09:00`).
    pub repeat_rule: Option<String>,
    /// For a run of a recurring campaign: the recurring campaign, and which run this is.
    pub parent_id: Option<i64>,
    pub run_no: i64,
    /// For a drip step: how long after the contact's previous step it is sent.
    pub step_delay_ms: i64,
    /// For a drip: whether a contact writing in ends their sequence.
    pub stop_on_reply: bool,
    /// Reply buttons or a list menu under a text campaign's message.
    pub choices: Option<Choices>,
    /// The image, video or document it sends: a text campaign's caption rides on it, a
    /// template's IMAGE/VIDEO/DOCUMENT header takes it.
    pub media: Option<CampaignMedia>,
}

impl Campaign {
    /// All texts a contact may get: the main text first, then the variants.
    pub fn texts(&self) -> Vec<&str> {
        self.text
            .iter()
            .map(String::as_str)
            .chain(self.variants.iter().map(String::as_str))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub id: i64,
    pub name: String,
    pub lang: String,
    pub category: String,
    pub body: String,
    pub params: i64,
    /// Meta's status (a declared template is taken as approved).
    pub status: TemplateStatus,
    /// Meta's whole description, for a template synced from the Business account.
    pub spec: Option<TemplateSpec>,
}

/// A recipient claimed for sending, with what the send rules need to know about the contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub recipient_id: i64,
    pub campaign_id: i64,
    pub attempts: i64,
    pub contact: Contact,
    /// The claim's lease (one per claim): renewed, and ended, as a whole.
    pub lease: i64,
    /// Where the row stood in its campaign's queue.
    pub position: QueuePosition,
}

/// A place in a campaign's queue, which is ordered by due time, then id: a claim can start
/// looking after the rows an earlier claim of the same run took (see
/// [`Store::claim_for_sending`](crate::store::Store::claim_for_sending)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueuePosition {
    /// The due time (ms) the row was claimed at.
    pub due: i64,
    pub id: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub targeted: i64,
    pub queued: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub replied: i64,
    pub failed: i64,
    pub skipped: i64,
    pub unknown: i64,
    pub skipped_by_reason: Vec<(String, i64)>,
    pub failed_by_reason: Vec<(String, i64)>,
    /// Sent messages by template category (`free` for free text), for the cost estimate.
    pub sent_by_category: Vec<(String, i64)>,
    /// Recipients by the button or row they last tapped (a campaign with buttons or a menu).
    pub clicked_by_title: Vec<(String, i64)>,
    /// Messages by the category Meta's `pricing` billed them in (`free` when not billed).
    pub billed_by_category: Vec<(String, i64)>,
    pub first_sent_at: Option<DateTime<Utc>>,
    pub last_sent_at: Option<DateTime<Utc>>,
}

/// One recipient's line in a CSV export.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipientRow {
    pub address: String,
    pub status: RecipientStatus,
    pub reason: Option<String>,
    pub error_code: Option<String>,
    pub attempts: i64,
    pub variant: Option<i64>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
    pub replied_at: Option<DateTime<Utc>>,
    /// The button or row the recipient last tapped.
    pub clicked: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub id: i64,
    pub pattern: String,
    pub is_regex: bool,
    pub campaign_id: i64,
}
